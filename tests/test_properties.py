"""Property tests (Hypothesis): whatever the command line, a config mapping or an `.npz` file holds, the result
is a valid object or a one-line EnsplitError, never an internal error."""

from __future__ import annotations

import argparse
import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ensplit.cli import OneLineParser
from ensplit.commands import compare, designspace, landscape, study
from ensplit.errors import EnsplitError
from ensplit.experiments.compare import CompareConfig
from ensplit.experiments.study_config import StudyConfig
from ensplit.recipe import build_settings
from ensplit.settings import field_annotations
from ensplit.store.npz_pools import load_pool

FIELDS = sorted({*field_annotations(StudyConfig), *field_annotations(CompareConfig), "epochs", "lr", "momentum",
                 "family", "dataset", "train_subset", "device", "precision", "step_milestones", "family_options",
                 "train", "study", "bogus"} - {"recipe"})
SCALARS = (st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12) | st.sampled_from(["", "none", "4,8", "1e3", "true", "mlp", "cnn1d", "sgd", "cuda",
                                                   "23k", "0.5,0.75", "norm=true", "{}", "nan"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                          max_size=3), max_leaves=6)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def one_line(error: EnsplitError) -> None:
    assert str(error) and "\n" not in str(error)


@FAST
@given(st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6))
def test_any_config_mapping_gives_settings_or_one_line(values):
    for cls, table in ((StudyConfig, "study"), (CompareConfig, "compare")):
        try:
            settings_object = build_settings(cls, table, values)
        except EnsplitError as error:
            one_line(error)
        else:
            assert isinstance(settings_object, cls)


def _flags(module) -> list[str]:
    parser = OneLineParser()
    module.add_arguments(parser)
    return sorted({f for a in parser._actions for f in a.option_strings if f.startswith("--") and f != "--help"})


FLAG_VALUES = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=10) | st.sampled_from(
    ["0", "-1", "1", "2", "1e9", "nan", "inf", "4,8", "true", "off", "x=1", "norm=true", "mimo.batch_repetitions=2",
     "auto", "cpu", "cuda:7", "sgd", "adam", "single,deep", "23k", "0.1"])


@pytest.mark.parametrize("module", [study, compare, designspace, landscape], ids=lambda m: m.NAME)
@FAST
@given(data=st.data())
def test_any_command_line_gives_settings_or_one_line(module, data):
    flags = _flags(module)
    pairs = data.draw(st.lists(st.tuples(st.sampled_from(flags), FLAG_VALUES), max_size=5))
    argv = [part for flag, value in pairs for part in (flag, value)]
    parser = OneLineParser(prog="ensplit")
    module.add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        assert exit_.code == 2
        return
    assert isinstance(args, argparse.Namespace)
    if args.config:  # a generated --config names no real file
        args.config = None
    try:
        module.settings(args)
    except EnsplitError as error:
        one_line(error)


DTYPES = st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.bool_, np.complex64, "U3", np.uint16])
SHAPES = st.lists(st.integers(0, 4), max_size=3).map(tuple)


@st.composite
def arrays(draw):
    dtype = draw(DTYPES)
    shape = draw(SHAPES)
    size = int(np.prod(shape))
    values = draw(st.lists(st.floats(-50, 5) | st.sampled_from([float("nan"), float("inf"), -float("inf")]),
                           min_size=size, max_size=size))
    raw = np.asarray(values, dtype=np.float64).reshape(shape)
    if np.dtype(dtype).kind == "U":
        return raw.astype(str).astype(dtype)
    with np.errstate(all="ignore"):
        return raw.astype(dtype)


@FAST
@given(st.dictionaries(st.sampled_from(["log_probs", "logits", "labels", "params_per_member", "other"]), arrays(),
                       max_size=4), st.booleans())
def test_any_npz_gives_a_pool_or_one_line(contents, need_params):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pool.npz"
        np.savez(path, **contents)
        try:
            pool = load_pool(path, need_params=need_params)
        except EnsplitError as error:
            one_line(error)
        else:
            assert pool.log_probs.dim() == 3 and pool.log_probs.shape[0] >= 1


@FAST
@given(st.binary(max_size=300), st.booleans())
def test_any_bytes_give_a_pool_or_one_line(content, zipped):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pool.npz"
        if zipped:  # a zip whose members hold arbitrary bytes, including broken .npy headers
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                archive.writestr("log_probs.npy", b"\x93NUMPY\x01\x00" + content)
                archive.writestr("labels.npy", content)
            content = buffer.getvalue()
        path.write_bytes(content)
        try:
            load_pool(path)
        except EnsplitError as error:
            one_line(error)
