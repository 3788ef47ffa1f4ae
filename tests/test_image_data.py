"""Image readers: exact round trips in every format, caching, subsets, bad input, and the shared CIFAR-10."""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

import ensplit.data.images as images_module
from ensplit.data import load_dataset
from ensplit.data.images import channel_mean_std, load_image_dataset
from ensplit.errors import EnsplitError

CLASSES = ("cat", "dog", "emu")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENSPLIT_CACHE", str(tmp_path / "cache"))


def _images(n: int, channels: int = 3, h: int = 6, w: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images `[N, C, H, W]` (non-square, to catch transposes) and labels cycling the classes."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, channels, h, w), dtype=np.uint8), np.arange(n) % len(CLASSES)


def _encode(image: np.ndarray, fmt: str = "PNG") -> bytes:
    pil = Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))
    buffer = io.BytesIO()
    pil.save(buffer, format=fmt)
    return buffer.getvalue()


def _write_folder(root: Path, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Write `root/<class>/<i>.png`; return the arrays in the loader's order (class, then file name)."""
    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        (root / CLASSES[label]).mkdir(parents=True, exist_ok=True)
        (root / CLASSES[label] / f"{i:04d}.png").write_bytes(_encode(image))
    order = np.lexsort((np.arange(len(y)), y))
    return x[order], y[order]


def _write_parquet(file: Path, x: np.ndarray, y: np.ndarray, split: str = "train", names: bool = False) -> None:
    paths = [f"{split}/{CLASSES[label]}/{i:04d}.png" for i, label in enumerate(y)]
    img = pa.StructArray.from_arrays(
        [pa.array([_encode(im) for im in x], pa.binary()), pa.array(paths, pa.string())], names=["bytes", "path"]
    )
    table = pa.table({"img": img, "label": pa.array(y, pa.int64())})
    if names:
        features = {"img": {"_type": "Image"}, "label": {"names": list(CLASSES), "_type": "ClassLabel"}}
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    pq.write_table(table, file)


def _assert_round_trip(ds, x_train, y_train, x_test, y_test) -> None:  # noqa: ANN001
    assert ds.kind == "image" and ds.x_train.dtype == torch.uint8
    assert torch.equal(ds.x_train, torch.from_numpy(x_train))
    assert torch.equal(ds.y_train, torch.from_numpy(y_train.astype(np.int64)))
    assert torch.equal(ds.x_test, torch.from_numpy(x_test))
    assert torch.equal(ds.y_test, torch.from_numpy(y_test.astype(np.int64)))


# ---------------------------------------------------------------- round trips


def test_image_folder_train_test_round_trip(tmp_path: Path) -> None:
    x, y = _images(12)
    xt, yt = _images(6, seed=1)
    expected_train = _write_folder(tmp_path / "d" / "train", x, y)
    expected_test = _write_folder(tmp_path / "d" / "test", xt, yt)
    ds = load_image_dataset(tmp_path / "d")
    _assert_round_trip(ds, *expected_train, *expected_test)
    assert ds.class_names == CLASSES and ds.num_classes == 3 and ds.in_shape == (3, 6, 5)
    mean, std = channel_mean_std(expected_train[0])
    manual = torch.from_numpy(expected_train[0]).double().div(255)
    assert np.allclose(mean, manual.mean(dim=(0, 2, 3))) and np.allclose(ds.mean, mean)
    assert np.allclose(std, manual.std(dim=(0, 2, 3), unbiased=False))


def test_single_folder_holds_out_a_seeded_test_split(tmp_path: Path) -> None:
    x, y = _images(20, channels=1)
    all_x, _ = _write_folder(tmp_path / "d", x, y)
    ds = load_image_dataset(tmp_path / "d", test_fraction=0.25, seed=3)
    assert ds.x_train.shape == (15, 1, 6, 5) and ds.x_test.shape == (5, 1, 6, 5)  # grayscale: C = 1
    together = torch.cat([ds.x_train, ds.x_test]).flatten(1)
    assert sorted(map(tuple, together.tolist())) == sorted(map(tuple, torch.from_numpy(all_x).flatten(1).tolist()))
    again = load_image_dataset(tmp_path / "d", test_fraction=0.25, seed=3, cache=False)
    assert torch.equal(again.x_test, ds.x_test)
    other = load_image_dataset(tmp_path / "d", test_fraction=0.25, seed=4, cache=False)
    assert not torch.equal(other.x_test, ds.x_test)


def test_train_folder_without_test_folder_is_one_split(tmp_path: Path) -> None:
    x, y = _images(10)
    _write_folder(tmp_path / "d" / "train", x, y)
    ds = load_image_dataset(tmp_path / "d", test_fraction=0.2)
    assert ds.class_names == CLASSES and len(ds.y_train) == 8 and len(ds.y_test) == 2


def test_parquet_hf_layout_round_trip_with_class_names(tmp_path: Path) -> None:
    x, y = _images(10)
    xt, yt = _images(4, seed=1)
    (tmp_path / "d").mkdir()
    _write_parquet(tmp_path / "d" / "train.parquet", x, y, names=True)
    _write_parquet(tmp_path / "d" / "test.parquet", xt, yt, "test", names=True)
    ds = load_dataset(str(tmp_path / "d"))
    _assert_round_trip(ds, x, y, xt, yt)
    assert ds.class_names == CLASSES and ds.name == "d"


def test_parquet_shards_and_class_names_from_paths(tmp_path: Path) -> None:
    x, y = _images(12)
    xt, yt = _images(3, seed=1)
    (tmp_path / "d" / "data").mkdir(parents=True)
    _write_parquet(tmp_path / "d" / "data" / "train-00000-of-00002.parquet", x[:7], y[:7])
    _write_parquet(tmp_path / "d" / "data" / "train-00001-of-00002.parquet", x[7:], y[7:])
    _write_parquet(tmp_path / "d" / "data" / "test-00000-of-00001.parquet", xt, yt, "test")
    ds = load_image_dataset(tmp_path / "d")
    _assert_round_trip(ds, x, y, xt, yt)
    assert ds.class_names == CLASSES  # no HF metadata: recovered from `split/<class>/file` paths


def test_single_parquet_file_and_string_labels(tmp_path: Path) -> None:
    x, y = _images(10)
    img = pa.StructArray.from_arrays(
        [pa.array([_encode(im) for im in x]), pa.array([None] * 10, pa.string())], names=["bytes", "path"]
    )
    pq.write_table(pa.table({"image": img, "labels": pa.array([CLASSES[i] for i in y])}), tmp_path / "one.parquet")
    ds = load_image_dataset(tmp_path / "one.parquet", test_fraction=0.3)
    assert ds.class_names == CLASSES and len(ds.y_train) == 7 and len(ds.y_test) == 3
    every = torch.cat([ds.y_train, ds.y_test]).sort().values
    assert torch.equal(every, torch.from_numpy(np.sort(y)))


def _cifar_records(x: np.ndarray, labels: list[np.ndarray]) -> bytes:
    return np.concatenate([*[lab[:, None].astype(np.uint8) for lab in labels], x.reshape(len(x), -1)], 1).tobytes()


def test_cifar10_binary_round_trip(tmp_path: Path) -> None:
    x, y = _images(9, h=32, w=32)
    xt, yt = _images(4, h=32, w=32, seed=1)
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    (d / "data_batch_1.bin").write_bytes(_cifar_records(x[:5], [y[:5]]))
    (d / "data_batch_2.bin").write_bytes(_cifar_records(x[5:], [y[5:]]))
    (d / "test_batch.bin").write_bytes(_cifar_records(xt, [yt]))
    (d / "batches.meta.txt").write_text("\n".join(CLASSES) + "\n\n")
    ds = load_image_dataset(tmp_path)  # the folder the tarball unpacks into is found one level down
    _assert_round_trip(ds, x, y, xt, yt)
    assert ds.class_names == CLASSES and ds.name == "cifar-10-batches-bin"


def test_cifar100_binary_fine_and_coarse(tmp_path: Path) -> None:
    x, fine = _images(6, h=32, w=32)
    coarse = (fine + 1) % 2
    (tmp_path / "train.bin").write_bytes(_cifar_records(x, [coarse, fine]))
    (tmp_path / "test.bin").write_bytes(_cifar_records(x[:2], [coarse[:2], fine[:2]]))
    (tmp_path / "fine_label_names.txt").write_text("\n".join(CLASSES))
    ds = load_image_dataset(tmp_path)
    _assert_round_trip(ds, x, fine, x[:2], fine[:2])
    assert ds.class_names == CLASSES
    coarse_ds = load_image_dataset(tmp_path, label_column="coarse_label")
    assert torch.equal(coarse_ds.y_train, torch.from_numpy(coarse)) and coarse_ds.num_classes == 2


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize("gzipped", [True, False])
def test_idx_round_trip(tmp_path: Path, gzipped: bool) -> None:
    x, y = _images(8, channels=1, h=7, w=4)
    xt, yt = _images(3, channels=1, h=7, w=4, seed=1)
    files = {"train-images-idx3-ubyte": x[:, 0], "train-labels-idx1-ubyte": y,
             "t10k-images-idx3-ubyte": xt[:, 0], "t10k-labels-idx1-ubyte": yt}
    for name, array in files.items():
        data = _idx(array)
        if gzipped:
            (tmp_path / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (tmp_path / name).write_bytes(data)
    ds = load_image_dataset(tmp_path)
    _assert_round_trip(ds, x, y, xt, yt)
    assert ds.in_shape == (1, 7, 4) and ds.num_classes == 3 and ds.class_names is None


def test_subsets_are_seeded_and_keep_labels_with_images(tmp_path: Path) -> None:
    x, y = _images(30)
    (tmp_path / "d").mkdir()
    _write_parquet(tmp_path / "d" / "train.parquet", x, y)
    _write_parquet(tmp_path / "d" / "test.parquet", x[:10], y[:10], "test")
    ds = load_image_dataset(tmp_path / "d", train_subset=8, test_subset=4, seed=1)
    assert ds.x_train.shape[0] == 8 and ds.x_test.shape[0] == 4
    rows = {tuple(im.flatten().tolist()): int(lab) for im, lab in zip(x, y, strict=True)}
    for im, lab in zip(ds.x_train, ds.y_train, strict=True):
        assert rows[tuple(im.flatten().tolist())] == int(lab)
    same = load_image_dataset(tmp_path / "d", train_subset=8, test_subset=4, seed=1, cache=False)
    assert torch.equal(same.x_train, ds.x_train)


def test_mixed_modes_and_sizes(tmp_path: Path) -> None:
    gray, _ = _images(1, channels=1)
    colour, _ = _images(1, channels=3, h=8, w=8, seed=1)
    for cls, image in (("a", gray), ("b", colour)):
        (tmp_path / "d" / cls).mkdir(parents=True)
        (tmp_path / "d" / cls / "0.png").write_bytes(_encode(image[0]))
        (tmp_path / "d" / cls / "1.png").write_bytes(_encode(image[0]))
    with pytest.raises(EnsplitError, match=r"b/[01].png is 8x8 but the first is 5x6; resize them to one size"):
        load_image_dataset(tmp_path / "d", workers=1)
    ds = load_image_dataset(tmp_path / "d", image_size=(6, 5), test_fraction=0.5, seed=0)
    assert ds.in_shape == (3, 6, 5)  # the gray image is decoded again in colour once a colour one shows up
    every = torch.cat([ds.x_train, ds.x_test])[torch.cat([ds.y_train, ds.y_test]) == 0]
    assert torch.equal(every[0], torch.from_numpy(gray[0]).expand(3, -1, -1))


# ---------------------------------------------------------------- caching


def test_second_load_hits_the_cache_and_a_changed_file_invalidates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = _images(6)
    (tmp_path / "d").mkdir()
    _write_parquet(tmp_path / "d" / "train.parquet", x, y)
    _write_parquet(tmp_path / "d" / "test.parquet", x[:2], y[:2], "test")
    calls = []
    decode = images_module._decode
    monkeypatch.setattr(images_module, "_decode", lambda *a, **k: calls.append(1) or decode(*a, **k))
    first = load_image_dataset(tmp_path / "d")
    second = load_image_dataset(tmp_path / "d")
    assert len(calls) == 1 and torch.equal(first.x_train, second.x_train)
    assert second.class_names == first.class_names == CLASSES
    assert len(list((tmp_path / "cache").glob("images-d-*.npz"))) == 1
    x2 = 255 - x
    _write_parquet(tmp_path / "d" / "train.parquet", x2, y)
    os.utime(tmp_path / "d" / "train.parquet", ns=(1, 1))  # a different mtime even on coarse clocks
    third = load_image_dataset(tmp_path / "d")
    assert len(calls) == 2 and torch.equal(third.x_train, torch.from_numpy(x2))


# ---------------------------------------------------------------- bad input


def _message(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_in_a_folder_names_the_file(tmp_path: Path, fmt: str) -> None:
    x, y = _images(6, h=16, w=16)
    _write_folder(tmp_path / "d", x, y)
    bad = tmp_path / "d" / "dog" / f"broken.{fmt.lower()}"
    data = _encode(x[0], fmt)
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(EnsplitError) as excinfo:
        load_image_dataset(tmp_path / "d")
    assert str(bad) in _message(excinfo)


def test_corrupt_image_in_parquet_names_file_and_row(tmp_path: Path) -> None:
    x, y = _images(5)
    img = pa.StructArray.from_arrays(
        [pa.array([_encode(im) for im in x[:3]] + [b"not an image", _encode(x[4])[:20]]),
         pa.array(["a.png"] * 5)], names=["bytes", "path"])
    pq.write_table(pa.table({"img": img, "label": pa.array(y)}), tmp_path / "train.parquet")
    pq.write_table(pa.table({"img": img.slice(0, 2), "label": pa.array(y[:2])}), tmp_path / "test.parquet")
    with pytest.raises(EnsplitError) as excinfo:
        load_image_dataset(tmp_path, workers=1)
    assert f"{tmp_path / 'train.parquet'} row 3" in _message(excinfo)


@pytest.mark.parametrize("drop", ["img", "label"])
def test_parquet_without_expected_columns_names_the_file(tmp_path: Path, drop: str) -> None:
    x, y = _images(3)
    columns = {"img": pa.array([_encode(im) for im in x]), "label": pa.array(y), "other": pa.array([1.0] * 3)}
    del columns[drop]
    pq.write_table(pa.table(columns), tmp_path / "bad.parquet")
    with pytest.raises(EnsplitError) as excinfo:
        load_image_dataset(tmp_path / "bad.parquet")
    message = _message(excinfo)
    assert str(tmp_path / "bad.parquet") in message and ("image column" if drop == "img" else "label column") in message


def test_empty_or_unrecognised_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(EnsplitError, match="unrecognised data folder .*empty"):
        load_image_dataset(tmp_path / "empty")
    (tmp_path / "no_images" / "cat").mkdir(parents=True)
    (tmp_path / "no_images" / "cat" / "notes.txt").write_text("hi")
    with pytest.raises(EnsplitError, match="no images"):
        load_image_dataset(tmp_path / "no_images")
    with pytest.raises(EnsplitError, match="does not exist"):
        load_image_dataset(tmp_path / "missing")


def test_truncated_binary_releases(tmp_path: Path) -> None:
    x, y = _images(3, h=32, w=32)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "data_batch_1.bin").write_bytes(_cifar_records(x, [y])[:-10])
    (tmp_path / "c" / "test_batch.bin").write_bytes(_cifar_records(x, [y]))
    with pytest.raises(EnsplitError, match="data_batch_1.bin is truncated"):
        load_image_dataset(tmp_path / "c")
    (tmp_path / "m").mkdir()
    for name, array in {"train-images-idx3-ubyte": x[:, 0], "train-labels-idx1-ubyte": y,
                        "t10k-images-idx3-ubyte": x[:, 0], "t10k-labels-idx1-ubyte": y}.items():
        (tmp_path / "m" / name).write_bytes(_idx(array)[: -5 if name.startswith("train-images") else None])
    with pytest.raises(EnsplitError, match="train-images-idx3-ubyte is truncated"):
        load_image_dataset(tmp_path / "m")


# ---------------------------------------------------------------- the shared CIFAR-10


def _shared_cifar10() -> Path | None:
    root = os.environ.get("ENSPLIT_TEST_DATA")
    base = Path(root) if root else Path(__file__).resolve().parents[2] / "shared" / "data"
    path = base / "cifar10" if (base / "cifar10").is_dir() else base
    return path if (path / "train.parquet").is_file() and (path / "test.parquet").is_file() else None


def test_shared_cifar10_parquet_subset() -> None:
    path = _shared_cifar10()
    if path is None:
        pytest.skip("shared CIFAR-10 Parquet not found at ../shared/data/cifar10 (or $ENSPLIT_TEST_DATA)")
    ds = load_dataset(str(path), train_subset=500, test_subset=100)
    assert ds.x_train.shape == (500, 3, 32, 32) and ds.x_test.shape == (100, 3, 32, 32)
    assert ds.num_classes == 10 and ds.class_names is not None and ds.class_names[0] == "airplane"
    assert int(ds.y_train.min()) >= 0 and int(ds.y_train.max()) <= 9 and len(ds.y_train.unique()) == 10
    assert all(0.3 < m < 0.6 for m in ds.mean) and all(0.15 < s < 0.35 for s in ds.std)
    batch = ds.prepare(ds.x_train[:64])
    assert batch.dtype == torch.float32 and abs(float(batch.mean())) < 0.3


def test_bad_images_and_labels_are_named_plainly(tmp_path: Path) -> None:
    x, y = _images(6)
    y[2] = -3
    (tmp_path / "neg").mkdir()
    _write_parquet(tmp_path / "neg" / "train.parquet", x, y)
    _write_parquet(tmp_path / "neg" / "test.parquet", x[:3], np.zeros(3, np.int64), "test")
    with pytest.raises(EnsplitError, match=r"neg: the train labels include -3; labels must be class indices >= 0"):
        load_image_dataset(tmp_path / "neg")
    img = pa.StructArray.from_arrays([pa.array([b"not an image"] * 4, pa.binary()),
                                      pa.array([f"{i}.png" for i in range(4)], pa.string())], names=["bytes", "path"])
    pq.write_table(pa.table({"img": img, "label": pa.array([0, 1, 0, 1], pa.int64())}), tmp_path / "junk.parquet")
    with pytest.raises(EnsplitError) as error:
        load_image_dataset(tmp_path / "junk.parquet", test_fraction=0.5)
    assert "cannot decode image" in str(error.value) and "BytesIO" not in str(error.value)
