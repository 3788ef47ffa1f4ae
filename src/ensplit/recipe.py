"""The recipe: what is trained and how, shared by every training command and every experiment.

One typed, validated object: the data set and its subsets, the model family and its options, the training
hyper-parameters (`TrainConfig`, the `[train]` table), the base seed, the device and the CPU threads. Its
defaults are re-derived on a validation split (benchmarks/results/default_recipe.md): SGD with momentum 0.9,
lr 0.1 (it was 0.05, below every recommend candidate's optimum; 0.2 is better for all but the mixture, which
diverges there), weight decay 5e-4, cosine, 40 epochs, batch
128; so `study`, `compare`, `designspace`, `landscape` and `recommend` train the same way
unless told otherwise.

Config files and Python mappings share one layout, read by `build_settings`:
- recipe fields at the top level (`dataset = "mnist1d"`, `family = "mlp"`, `seed = 0`, ...);
- training fields in a `[train]` table (or at the top level);
- an experiment's own fields in a table named after it (`[study]`, `[compare]`, ...) or at the top level;
  tables of other experiments are ignored, so one file serves every command.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import torch
from pydantic import Field

from ensplit.data.dataset import Dataset
from ensplit.data.spec import DataSpec, load_data
from ensplit.errors import EnsplitError
from ensplit.models import count_params, get_family, with_dropout
from ensplit.parsing import FALSE, TRUE, typed_options
from ensplit.settings import (
    DeviceFields,
    closest,
    config_class,
    field_annotations,
    field_default,
    field_help,
    load_toml,
    loads_toml,
    settings_to_toml,
)
from ensplit.settings import build as build_fields
from ensplit.settings.options import MAX_SEED, Seed
from ensplit.train.config import TrainConfig
from ensplit.train.device import resolve_device

EXPERIMENT_TABLES = ("study", "compare", "designspace", "landscape", "collegial", "recommend")


@config_class(groups=(DeviceFields,))
class Recipe:
    """What is trained and how (see the module docstring). Build one from a mapping with `Recipe.from_mapping`,
    or directly: `Recipe(family="cnn1d", train=TrainConfig(epochs=20))`."""

    dataset: Annotated[str, Field(min_length=1, description="mnist1d or a data folder/file (Parquet, image "
                                                             "folders, CIFAR binary, IDX)")] = "mnist1d"
    num_samples: Annotated[int, Field(ge=50, le=1_000_000, description="MNIST-1D samples generated (about 0.4 ms each; "
                                                                      "cached)")] = 5000
    data_seed: Annotated[Seed, Field(description="seed of the generated data and of the subsets")] = 42
    train_subset: Annotated[int, Field(ge=1, description="train on N seeded training examples")] | None = None
    test_subset: Annotated[int, Field(ge=2, description="evaluate on N seeded test examples (at least 2: CNLL's "
                                                        "test-time cross-validation halves them)")] | None = None
    validation_fraction: Annotated[float, Field(ge=0, le=0.9, description="training share held out as a "
                                                                          "validation split")] = 0.0
    family: Annotated[str, Field(description="model family (see `ensplit budget`)")] = "mlp"
    depth: Annotated[int, Field(ge=1, le=10_000, description="family depth (family default if unset)")] | None = None
    family_options: Annotated[dict[str, Any], Field(description="family option KEY=VALUE (repeatable)")] = (
        dataclasses.field(default_factory=dict))
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    seed: Annotated[Seed, Field(description="base seed of every member's initialisation")] = 0
    if TYPE_CHECKING:  # appended by DeviceFields (ensplit.settings.groups), the device name checked first
        device: str
        threads: int | None

    def __post_init__(self) -> None:
        family = get_family(self.family)
        if self.depth is not None and not family.valid_depth(self.depth):
            raise EnsplitError(f"depth = {self.depth}: family {self.family!r} needs {family.depth_rule}")
        object.__setattr__(self, "family_options", typed_options(family.options, dict(self.family_options),
                                                                 f"family {self.family!r}"))
        with_dropout(self.family, self.family_options, self.train.dropout)
        if self.dataset != "mnist1d" and not Path(self.dataset).exists():
            raise EnsplitError(f"dataset = {self.dataset!r}: neither 'mnist1d' nor an existing file or folder")

    # -- views ------------------------------------------------------------------------------------------
    @property
    def data(self) -> DataSpec:
        """The data part, as stored in job identities."""
        return DataSpec(self.dataset, self.num_samples, self.data_seed, self.train_subset, self.test_subset,
                        self.validation_fraction)

    @property
    def options(self) -> dict[str, Any]:
        """The family options the networks are built with: the given ones plus the training dropout."""
        return with_dropout(self.family, self.family_options, self.train.dropout)

    def model_kwargs(self, dataset: Dataset | None = None) -> dict[str, Any]:
        """Family keyword arguments (depth, input shape, classes, options with the training dropout) for
        `create` and `count_params`."""
        kwargs: dict[str, Any] = {"depth": self.depth, **self.options}
        if dataset is not None:
            kwargs.update(in_shape=tuple(dataset.in_shape), num_classes=dataset.num_classes)
        return kwargs

    def params(self, width: int, dataset: Dataset | None = None, depth: int | None = None) -> int:
        """Parameters of one network of the recipe's family at `width` (and `depth`, default the recipe's):
        exact, from the family's closed form."""
        kwargs = self.model_kwargs(dataset)
        if depth is not None:
            kwargs["depth"] = depth
        return count_params(self.family, width, **kwargs)

    def with_train(self, **changes: Any) -> Recipe:
        """A copy with some training fields changed (validated)."""
        return dataclasses.replace(self, train=dataclasses.replace(self.train, **changes))

    def to_json(self) -> dict[str, Any]:
        """Flat recipe fields plus the `train` table: what every stored result records."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=list))

    # -- running ----------------------------------------------------------------------------------------
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def apply_threads(self) -> None:
        """Set torch's CPU threads of this process when the recipe says how many."""
        if self.threads is not None:
            torch.set_num_threads(self.threads)

    def load_data(self) -> Dataset:
        """Threads applied, device resolved, the data set loaded (cached) and moved to the device."""
        self.apply_threads()
        device = self.torch_device()
        return load_data(self.data).to(device)

    # -- building ---------------------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Recipe:
        """A recipe from recipe keys and a `train` table (or flat training keys); other keys are errors."""
        recipe, rest = split_recipe(values)
        if rest:
            raise EnsplitError(f"unknown recipe field {sorted(rest)[0]!r}; known: {', '.join(recipe_names())}")
        return recipe


def recipe_names() -> list[str]:
    return [n for n in field_annotations(Recipe) if n != "train"] + list(field_annotations(TrainConfig))


def build(cls: type, values: Mapping[str, Any], where: str = "") -> Any:
    """`cls(**values)` from config-file or command-line values (`ensplit.settings.build`); a misspelt name of an
    experiment's settings is matched against the recipe's fields and the file's tables too."""
    if "recipe" not in field_annotations(cls):
        return build_fields(cls, values, where)
    return build_fields(cls, values, where, also=[*recipe_names(), "train", *EXPERIMENT_TABLES],
                        also_words="; and the recipe's fields (see --help)")


def split_recipe(values: Mapping[str, Any]) -> tuple[Recipe, dict[str, Any]]:
    """The recipe of a flat mapping (recipe keys, a `train` table, flat or `train.`-prefixed training keys)
    and the keys left over for the experiment."""
    recipe_fields = set(field_annotations(Recipe)) - {"train"}
    train_fields = set(field_annotations(TrainConfig))
    recipe_values: dict[str, Any] = {}
    train_values: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in values.items():
        if key == "train" and (isinstance(value, bool) or str(value).lower() in (*TRUE, *FALSE)):
            rest[key] = value  # an experiment's own `train` switch (collegial --train), not the [train] table
        elif key == "train":
            if isinstance(value, TrainConfig):
                train_values.update(dataclasses.asdict(value))
                continue
            if not isinstance(value, Mapping):
                raise EnsplitError(f"train = {value!r}: must be a table of training fields ([train] in TOML)")
            train_values.update(value)
        elif key in recipe_fields:
            recipe_values[key] = value
        elif key.removeprefix("train.") in train_fields:
            name = key.removeprefix("train.")
            table = values.get("train")
            if isinstance(table, Mapping) and name in table and table[name] != value:
                raise EnsplitError(f"{name} is given twice, {key} = {value!r} and [train] {name} = {table[name]!r}; "
                                   "keep one")
            train_values[name] = value
        else:
            rest[key] = value
    train = build(TrainConfig, train_values, "train.")
    return build(Recipe, {**recipe_values, "train": train}), rest


def build_settings(cls: type, table: str, values: Mapping[str, Any]) -> Any:
    """An experiment's settings (a validated dataclass with a `recipe` field) from a config mapping: the
    recipe from its keys, the experiment's fields from the `table` table or the top level."""
    values = dict(values)
    own = values.pop(table, {}) or {}
    if not isinstance(own, Mapping):
        raise EnsplitError(f"{table} = {own!r}: must be a table of {table} fields ([{table}] in TOML)")
    for other in EXPERIMENT_TABLES:
        if other != table and isinstance(values.get(other), Mapping):
            values.pop(other)
    given = values.pop("recipe", None)
    recipe, rest = split_recipe(values)
    if given is None:
        return build(cls, {**rest, **own, "recipe": recipe})
    if isinstance(given, Mapping):  # e.g. a Recipe's to_json()
        given, unknown = split_recipe(given)
        if unknown:
            name = sorted(unknown)[0]
            raise EnsplitError(f"recipe has unknown field {name!r}{closest(name, [*recipe_names(), 'train'])}; known: "
                               + ", ".join(n for n in field_annotations(Recipe)) + " and the training fields")
    if not isinstance(given, Recipe):
        raise EnsplitError(f"recipe = {given!r}: must be a Recipe (ensplit.Recipe(...)) or a mapping of its fields")
    doubled = [key for key in values if key not in rest]
    if doubled:
        raise EnsplitError(f"{doubled[0]} is given both as a keyword and inside recipe; give the recipe's fields "
                           "in one place")
    return build(cls, {**rest, **own, "recipe": given})


# field_annotations ... settings_to_toml and MAX_SEED live in ensplit.settings; re-exported for old imports
__all__ = ["EXPERIMENT_TABLES", "MAX_SEED", "Recipe", "TrainConfig", "build", "build_settings", "field_annotations",
           "field_default", "field_help", "load_toml", "loads_toml", "recipe_names", "settings_to_toml",
           "split_recipe"]
