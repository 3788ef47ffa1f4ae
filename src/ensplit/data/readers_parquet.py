"""Parquet image-classification tables as Hugging Face `datasets` exports them.

Layout: an image column that is a struct {bytes: binary, path: string} (or plain binary) holding the
encoded file, and a label column (integer, or strings turned into sorted class names). A folder holds
`train.parquet` / `test.parquet` or shards `train-00000-of-00004.parquet` (also under `data/` or one
folder per split); a single file is one split.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ensplit.data.image_source import FoundImages, ImageSplit, ImageSplits
from ensplit.errors import EnsplitError

IMAGE_COLUMNS = ("img", "image", "images", "pixel_values")
LABEL_COLUMNS = ("label", "labels", "fine_label", "coarse_label", "target", "class")
_SPLIT_WORDS = {"train": "train", "test": "test", "validation": "val", "valid": "val", "val": "val"}


def find_parquet(path: Path, image_column: str | None = None, label_column: str | None = None) -> FoundImages | None:
    """Recognise `path` (a .parquet file, or a folder with Parquet files up to two levels down)."""
    if path.is_file():
        if path.suffix != ".parquet":
            return None
        splits = {"train": [path]}
        name = path.stem
    else:
        files = sorted(p for p in path.rglob("*.parquet") if len(p.relative_to(path).parts) <= 3)
        if not files:
            return None
        splits = _assign_splits(path, files)
        name = path.name
    columns = (image_column, label_column)
    every = [f for group in splits.values() for f in group]
    return FoundImages("parquet", name, every, lambda: _read(splits, *columns))


def _assign_splits(root: Path, files: list[Path]) -> dict[str, list[Path]]:
    """Group files by the split named in their file name or folder; one unnamed file is the train split."""
    splits: dict[str, list[Path]] = {}
    for f in files:
        words = re.split(r"[-_.]", f.stem.lower()) + [p.lower() for p in f.relative_to(root).parts[:-1]]
        split = next((_SPLIT_WORDS[w] for w in words if w in _SPLIT_WORDS), None)
        if split is None:
            if len(files) == 1:
                split = "train"
            else:
                raise EnsplitError(f"cannot tell which split {f} holds: name files train*/test*.parquet")
        splits.setdefault(split, []).append(f)
    if "train" not in splits:
        raise EnsplitError(f"no training Parquet file (train*.parquet) in {root}")
    if "test" not in splits and "val" in splits:  # HF sets without a test split publish a validation split
        splits["test"] = splits.pop("val")
    splits.pop("val", None)
    return splits


def _pick_columns(file: Path, schema: pa.Schema, image: str | None, label: str | None) -> tuple[str, str]:
    names = schema.names

    def holds_images(n: str) -> bool:
        t = schema.field(n).type
        if pa.types.is_struct(t):
            return t.get_field_index("bytes") >= 0
        return pa.types.is_binary(t) or pa.types.is_large_binary(t)

    def holds_labels(n: str) -> bool:
        t = schema.field(n).type
        return pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)

    if image is None:
        candidates = [n for n in IMAGE_COLUMNS if n in names and holds_images(n)]
        candidates = candidates or [n for n in names if holds_images(n)]
        image = candidates[0] if candidates else None
    if image is None or image not in names or not holds_images(image):
        raise EnsplitError(
            f"Parquet file {file} has no image column (a struct with 'bytes', e.g. 'img'); columns: {names}"
        )
    if label is None:
        label = next((n for n in LABEL_COLUMNS if n in names and holds_labels(n)), None)
    if label is None or label not in names or not holds_labels(label):
        raise EnsplitError(
            f"Parquet file {file} has no label column (integer or string, e.g. 'label'); columns: {names}"
        )
    return image, label


def _read_file(file: Path, image: str | None, label: str | None) -> tuple[pa.Table, str, str, dict]:
    try:
        schema = pq.read_schema(file)
        image, label = _pick_columns(file, schema, image, label)
        table = pq.read_table(file, columns=[image, label])
    except (pa.ArrowException, OSError) as error:
        raise EnsplitError(f"cannot read Parquet file {file}: {str(error).splitlines()[0]}") from None
    meta = (schema.metadata or {}).get(b"huggingface")
    try:
        info = json.loads(meta) if meta else {}
    except ValueError:
        info = {}
    return table, image, label, info


def _read(splits: dict[str, list[Path]], image: str | None, label: str | None) -> ImageSplits:
    tables: dict[str, list[tuple[Path, pa.Table]]] = {}
    names_from_meta: list[str] | None = None
    for split, files in splits.items():
        for f in files:
            table, image_col, label_col, info = _read_file(f, image, label)
            tables.setdefault(split, []).append((f, table.rename_columns(["image", "label"])))
            features = info.get("info", {}).get("features", {}) if isinstance(info, dict) else {}
            feature = features.get(label_col, {}) if isinstance(features, dict) else {}
            if isinstance(feature, dict) and isinstance(feature.get("names"), list):
                names_from_meta = [str(n) for n in feature["names"]]
    string_labels = any(pa.types.is_string(t.schema.field("label").type) or
                        pa.types.is_large_string(t.schema.field("label").type)
                        for parts in tables.values() for _, t in parts)
    vocabulary: list[str] | None = None
    if string_labels:  # class names are the sorted distinct strings over every split
        seen = {s for parts in tables.values() for _, t in parts for s in t.column("label").to_pylist()}
        vocabulary = sorted(str(s) for s in seen)
    built = {split: _split(parts, vocabulary) for split, parts in tables.items()}
    class_names = tuple(vocabulary) if vocabulary else None
    if class_names is None and names_from_meta:
        class_names = tuple(names_from_meta)
    if class_names is None:
        class_names = _names_from_paths([t for parts in tables.values() for _, t in parts])
    return ImageSplits(built["train"], built.get("test"), class_names)


def _split(parts: list[tuple[Path, pa.Table]], vocabulary: list[str] | None) -> ImageSplit:
    encoded: list[bytes] = []
    labels: list[np.ndarray] = []
    origin: list[tuple[Path, int]] = []  # (file, first index in `encoded`) to name a row in errors
    for f, table in parts:
        column = table.column("image").combine_chunks()
        data = column.field("bytes") if pa.types.is_struct(column.type) else column
        if data.null_count:
            row = int(np.flatnonzero(data.is_null().to_numpy(zero_copy_only=False))[0])
            raise EnsplitError(f"Parquet file {f} row {row}: image bytes are missing (only a path is stored)")
        if table.column("label").null_count:
            raise EnsplitError(f"Parquet file {f}: the label column has missing values")
        origin.append((f, len(encoded)))
        encoded.extend(data.to_pylist())
        if vocabulary is not None:
            index = pc.index_in(table.column("label").cast(pa.string()), value_set=pa.array(vocabulary))
            labels.append(index.to_numpy().astype(np.int64))
        else:
            labels.append(table.column("label").to_numpy().astype(np.int64))

    def describe(i: int) -> str:
        f, start = next((f, s) for f, s in reversed(origin) if s <= i)
        return f"{f} row {i - start}"

    return ImageSplit(np.concatenate(labels), encoded=encoded, describe=describe)


def _names_from_paths(tables: list[pa.Table]) -> tuple[str, ...] | None:
    """Class names from stored file paths like `train/airplane/0000.jpg`, when label ↔ folder is one-to-one."""
    mapping: dict[int, str] = {}
    for table in tables:
        column = table.column("image").combine_chunks()
        if not pa.types.is_struct(column.type) or column.type.get_field_index("path") < 0:
            return None
        if not pa.types.is_integer(table.column("label").type):
            return None
        folders = pc.call_function("split_pattern", [column.field("path")], pc.SplitPatternOptions("/"))
        for label, parts in zip(table.column("label").to_pylist(), folders.to_pylist(), strict=True):
            if not parts or len(parts) < 2 or mapping.setdefault(label, parts[-2]) != parts[-2]:
                return None
    if not mapping or sorted(mapping) != list(range(len(mapping))):
        return None
    names = [mapping[i] for i in range(len(mapping))]
    return tuple(names) if len(set(names)) == len(names) else None
