"""Command-line options generated from the typed settings, so every command speaks one dialect.

Every training command gets the same recipe options (data, model, training, runtime), spelled after the
recipe's fields: `--dataset`, `--train-subset`, `--family-option KEY=VALUE`, `--epochs`, `--lr`,
`--device auto`, `--threads`, ... An experiment's own settings become options the same way. Lists are
comma-separated (`--widths 16,32,64`); a boolean option alone means true (`--compile`), or takes a value
(`--augment false`); a dictionary option is repeated `KEY=VALUE`. Values reach the typed settings as text
and are converted and validated there, in one place; a command-line value beats the `--config` file.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from typing import Any

from ensplit import reports
from ensplit.parsing import key_value
from ensplit.recipe import Recipe, build_settings
from ensplit.settings import DeviceFields, field_annotations, field_groups, load_toml, option_help
from ensplit.train.config import TrainConfig

PREFIX = "setting__"
RECIPE_GROUPS = {
    "data": ("dataset", "num_samples", "data_seed", "train_subset", "test_subset", "validation_fraction"),
    "model": ("family", "depth", "family_options"),
    "runtime": ("seed", *DeviceFields.names()),
}


def _flag(name: str, annotation: Any) -> str:
    if typing.get_origin(annotation) is dict or annotation is dict:
        name = name.removesuffix("s")  # repeated KEY=VALUE: --family-option, --method-option
    return "--" + name.replace("_", "-")


def _is_bool(annotation: Any) -> bool:
    """bool, or `bool | None` (possibly with its constraints inside an Annotated)."""
    options = [a for a in typing.get_args(annotation) if a is not type(None)] if typing.get_origin(annotation) in (
        typing.Union, types.UnionType) else [annotation]
    while options and typing.get_origin(options[0]) is typing.Annotated:
        options = [typing.get_args(options[0])[0]]
    return len(options) == 1 and options[0] is bool


def _add(group: argparse._ArgumentGroup, cls: type, names: typing.Iterable[str], where: str) -> None:
    """One option per field in `names`, its help the field's (with default and range, `option_help`)."""
    names = list(names)
    annotations, helps = field_annotations(cls), option_help(cls, names)
    for name in names:
        annotation = annotations[name][0]
        flag, dest = _flag(name, annotation), f"{PREFIX}{where}{name}"
        text = helps[name]
        if _is_bool(annotation):
            group.add_argument(flag, dest=dest, default=None, nargs="?", const="true", metavar="BOOL",
                               help=text + "; alone: true")
        elif typing.get_origin(annotation) is dict:
            group.add_argument(flag, dest=dest, default=None, action="append", type=key_value,
                               metavar="KEY=VALUE", help=text)
        else:
            group.add_argument(flag, dest=dest, default=None, metavar="VALUE", help=text)


class DeprecatedFlag(argparse.Action):
    """An old spelling of an option (docs/glossary.md): stores into the new option's place and says so in one
    line on stderr (`ensplit compare: --param-budget is deprecated; use --budget`)."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup, old: str, new: str,
                        dest: str, **kwargs: Any) -> None:
    """`old` (e.g. `--param-budget`) as a hidden alias of the option `new` whose value lands in `dest`."""
    parser.add_argument(old, dest=dest, action=DeprecatedFlag, new=new, **kwargs)


def _add_renamed(group: argparse._ArgumentGroup, cls: type, where: str) -> None:
    """The deprecated flag of each renamed field of `cls` (its `RENAMED`, old -> new)."""
    annotations = field_annotations(cls)
    for old, new in getattr(cls, "RENAMED", {}).items():
        if new in annotations:
            add_deprecated_flag(group, _flag(old, annotations[new][0]), _flag(new, annotations[new][0]),
                                f"{PREFIX}{where}{new}", default=None, metavar="VALUE")


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """The recipe's options, in four groups: data, model, training and runtime."""
    for title, names in RECIPE_GROUPS.items():
        _add(parser.add_argument_group(f"recipe: {title}"), Recipe, names, "recipe.")
    _add(parser.add_argument_group("recipe: training"), TrainConfig, field_annotations(TrainConfig), "train.")


def add_settings_arguments(parser: argparse.ArgumentParser, cls: type, title: str,
                           skip: typing.Iterable[str] = ()) -> None:
    """One option per field of an experiment's settings (all but `recipe` and `skip`): its own fields under
    `title`, each shared field group's under the group's title (`runner: where the training jobs run`)."""
    skipped = {"recipe", *skip}
    shared = {name for group in field_groups(cls) for name in group.names()}
    group = parser.add_argument_group(title)
    _add(group, cls, [n for n in field_annotations(cls) if n not in skipped and n not in shared], "own.")
    _add_renamed(group, cls, "own.")
    for fields in field_groups(cls):
        names = [n for n in fields.names() if n not in skipped]
        if names:
            _add(parser.add_argument_group(fields.title or fields.__name__), cls, names, "own.")


def add_common_arguments(parser: argparse.ArgumentParser, out: str | None = None) -> None:
    """--config and --quiet for every training command, and --out where it writes a folder."""
    parser.add_argument("--config", metavar="FILE", help="TOML file: recipe fields, a [train] table and a table "
                        "per experiment (command-line options beat it)")
    if out is not None:
        parser.add_argument("--out", default=out, help=f"output folder (default: ./{out})")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or progress lines on stderr")


def given_values(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The options given on the command line: (recipe fields, training fields, experiment fields)."""
    recipe: dict[str, Any] = {}
    train: dict[str, Any] = {}
    own: dict[str, Any] = {}
    targets = {"recipe.": recipe, "train.": train, "own.": own}
    for dest, value in vars(args).items():
        if not dest.startswith(PREFIX) or value is None:
            continue
        where, _, name = dest.removeprefix(PREFIX).partition(".")
        targets[where + "."][name] = dict(value) if isinstance(value, list) else value
    return recipe, train, own


def settings_from_args(cls: type, table: str, args: argparse.Namespace) -> Any:
    """The experiment's settings from `--config` and the options given (options win)."""
    values: dict[str, Any] = load_toml(args.config) if getattr(args, "config", None) else {}
    recipe, train, own = given_values(args)
    values.update(recipe)
    file_train = values.get("train", {})
    if train and isinstance(file_train, dict):  # a malformed [train] is left for the validation to refuse
        values["train"] = {**file_train, **train}
        for name in train:  # the option beats the file's flat spellings too (`epochs = 1`, `train.epochs = 1`)
            values.pop(name, None)
            values.pop(f"train.{name}", None)
    file_own = values.get(table, {})
    if own and isinstance(file_own, dict):
        values[table] = {**file_own, **own}
    return build_settings(cls, table, values)


def experiment_command(cls: type, table: str, pipeline: Any, out: str | None,
                       extra: Any = None, writes: str = "OUT/report.html") -> tuple[Any, Any, Any]:
    """The three functions of a training command, which only parse, call the pipeline and print:
    `add_arguments(parser)` (common options, `extra(parser)` if given, the experiment's settings, the recipe),
    `settings(args)` (the typed settings) and `run(args)` (`pipeline(settings, args.out, progress=...)`, then
    the page `OUT/report.html` from its result unless there is no `--out` or `--no-report` was given)."""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        add_common_arguments(parser, out)
        if out is None:
            parser.add_argument("--out", default=None, help=f"write {writes} (default: no files)")
        if extra is not None:
            extra(parser)
        add_settings_arguments(parser, cls, table)
        add_recipe_arguments(parser)

    def settings(args: argparse.Namespace) -> Any:
        return settings_from_args(cls, table, args)

    def run(args: argparse.Namespace) -> Any:
        options = {"repair": args.repair} if hasattr(args, "repair") else {}
        result = pipeline(settings(args), args.out, progress=not args.quiet, **options)
        if args.out is not None and not getattr(args, "no_report", False):
            reports.write(result, args.out, None if args.quiet else table)
        return result

    return add_arguments, settings, run
