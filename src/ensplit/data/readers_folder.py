"""Image folders: `root/<class>/*.png|jpg` (one split), or `root/train/<class>/...` + `root/test/<class>/...`.

Class names are the sorted class-folder names (the torchvision ImageFolder convention), shared by both
splits so that a label means the same class in each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ensplit.data.image_source import FoundImages, ImageSplit, ImageSplits
from ensplit.errors import EnsplitError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
_TEST_NAMES = ("test", "val", "valid", "validation")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _class_folders(root: Path) -> dict[str, list[Path]]:
    """{class name: sorted image files} for every sub-folder of `root` (hidden folders skipped)."""
    return {d.name: _images_in(d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")}


def find_image_folder(path: Path) -> FoundImages | None:
    """Recognise `path` as an image folder; None if it holds no class folders at all."""
    if not path.is_dir():
        return None
    train_dir = path / "train"
    test_dir = next((path / n for n in _TEST_NAMES if (path / n).is_dir()), None)
    if train_dir.is_dir() and test_dir is not None:
        train, test = _class_folders(train_dir), _class_folders(test_dir)
        if not any(train.values()):
            raise EnsplitError(f"no images (*.png, *.jpg, ...) in the class folders of {train_dir}")
        if not any(test.values()):
            raise EnsplitError(f"no images (*.png, *.jpg, ...) in the class folders of {test_dir}")
        unknown = sorted(set(test) - set(train))
        if unknown:
            raise EnsplitError(f"class folders {unknown} in {test_dir} have no counterpart in {train_dir}")
    else:  # one split: `root/<class>/...`, or `root/train/<class>/...` with no test folder beside it
        train, test = _class_folders(train_dir if train_dir.is_dir() else path), None
        if not train:
            return None
        if not any(train.values()):
            raise EnsplitError(f"no images (*.png, *.jpg, ...) in the class folders of {path}")
    class_names = tuple(sorted(train))
    files = [f for group in (train, test or {}) for fs in group.values() for f in fs]
    return FoundImages(
        "folder", path.resolve().name, files,
        lambda: ImageSplits(_split(train, class_names), _split(test, class_names) if test else None, class_names),
    )


def _split(classes: dict[str, list[Path]], class_names: tuple[str, ...]) -> ImageSplit:
    files = [f for name in class_names for f in classes.get(name, [])]
    labels = np.array([i for i, name in enumerate(class_names) for _ in classes.get(name, [])], dtype=np.int64)
    return ImageSplit(labels, encoded=files, describe=lambda i: str(files[i]))
