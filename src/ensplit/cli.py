"""The `ensplit` command line: subcommands are discovered in `ensplit.commands`.

Each module there defines `NAME`, `HELP`, `add_arguments(parser)`, `run(args) -> result` (the experiment's
result object, whose `to_json()` is the machine-readable answer) and optionally `render(json) -> str` for
humans, which formats that same JSON, so the printed table and `--json` cannot drift. With `--json` the
result goes to stdout as JSON and nothing else does; progress and logs go to stderr. Bad input exits 2
with one line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, NoReturn

from pydantic import ValidationError

from ensplit.errors import EnsplitDeprecationWarning, EnsplitError
from ensplit.jsonable import to_jsonable
from ensplit.layers import conv_strategy
from ensplit.parsing import describe_validation_error
from ensplit.train import allocator

DESCRIPTION = ("Given a parameter budget: one wide network, an ensemble of thinner ones (how many), or a "
               "parameter-sharing ensemble? `ensplit recommend` answers it; the other commands run the studies "
               "behind the answer.")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a single line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _command_modules() -> list[ModuleType]:
    import ensplit.commands as package

    modules = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"ensplit.commands.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            modules.append(module)
    return modules


def build_parser() -> tuple[OneLineParser, dict[str, ModuleType]]:
    parser = OneLineParser(prog="ensplit", description=DESCRIPTION)
    from ensplit._version import __version__

    parser.add_argument("--version", action="version", version=f"ensplit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    by_name: dict[str, ModuleType] = {}
    for module in _command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        if not any(a.dest == "json" for a in p._actions):
            p.add_argument("--json", action="store_true", help="print the machine-readable result to stdout")
        by_name[module.NAME] = module
    return parser, by_name


def check_environment() -> None:
    """Settings read from the environment are input too: a bad one is refused before any work starts."""
    allocator.enabled()  # ENSPLIT_KEEP_FREED_MEMORY must be a boolean
    if os.environ.get(conv_strategy.ENV_VAR):
        conv_strategy.active_table()  # ENSPLIT_CONV_TABLE must name a readable table


@contextmanager
def deprecations_on_stderr(command: str) -> Iterator[None]:
    """Each deprecated spelling used (a config key, a keyword) as one line on stderr, every time:
    `ensplit compare: param_budget is deprecated; use budget`. Other warnings are shown as before."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", EnsplitDeprecationWarning)
        shown = warnings.showwarning

        def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if issubclass(category, EnsplitDeprecationWarning):
                print(f"ensplit {command}: {message}", file=sys.stderr)
            else:
                shown(message, category, *args, **kwargs)

        warnings.showwarning = show
        yield


def main(argv: list[str] | None = None) -> int:
    parser, commands = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit as exit_:  # --help, --version, or a one-line usage error (code 2)
        return int(exit_.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if unknown:  # named by the subcommand, like its other usage errors
        print(f"ensplit {args.command}: error: unrecognized arguments: {' '.join(unknown)}", file=sys.stderr)
        return 2
    module = commands[args.command]
    try:
        check_environment()
        with deprecations_on_stderr(args.command):
            result = to_jsonable(module.run(args))
    except EnsplitError as error:
        print(f"ensplit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except ValidationError as error:  # a typed config built outside `ensplit.recipe.build`
        print(f"ensplit {args.command}: error: {describe_validation_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ensplit: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - last resort: never a traceback unless asked
        if os.environ.get("ENSPLIT_DEBUG"):
            raise
        print(
            f"ensplit {args.command}: internal error: {type(error).__name__}: {error} "
            "(set ENSPLIT_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    try:
        if getattr(args, "json", False):
            print(json.dumps(result, indent=2))
        elif result is not None and hasattr(module, "render"):
            print(module.render(result))
        sys.stdout.flush()
    except BrokenPipeError:  # `ensplit ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
