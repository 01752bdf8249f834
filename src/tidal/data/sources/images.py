"""The image source: a folder of class folders, or a glob of PNG/JPEG files, read into a table.

``data/train/`` (a path with no file extension, or ending in ``/``) is read the way torchvision's
``ImageFolder`` reads it: every ``.png``/``.jpg``/``.jpeg`` file in a sub-folder is one row, and the
sub-folder's name is its class. A glob (``data/train/*/*.png``) reads the files it matches, each labelled
with the name of the folder that holds it. Images directly in the folder have no class (a null label);
their labels, like those of a flat glob, come from a labels file (``data.images.labels``, see
:mod:`tidal.data.images.collect`), which takes over from the folder names.

The table has three columns, rows in sorted path order: ``path`` (the file's path below the folder, with
``/``), ``label`` (the class, or null) and ``image`` (the file's bytes, as they are on disk: decoding and
checking them is the collect step's work, by ``data.checks.images``).
"""

from __future__ import annotations

import glob as globlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tidal.core.errors import SourceError
from tidal.data.images.codec import IMAGE_EXTENSIONS
from tidal.data.sources.base import SPEC_HINT, EmptySourceError, Source, resolve_local_path, url_scheme

_GLOB_CHARS = re.compile(r"[*?\[]")
PATH, LABEL, IMAGE = "path", "label", "image"


@dataclass
class ImageFiles:
    """What a folder or glob holds: ``(relative path, class or None, absolute path)`` per image, sorted by
    path, and the class folders that hold no image."""

    root: Path
    files: list[tuple[str, str | None, Path]] = field(default_factory=list)
    empty_classes: list[str] = field(default_factory=list)


def is_image_name(name: str) -> bool:
    """Whether ``name`` ends with an image extension (:data:`IMAGE_EXTENSIONS`, any case)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


class ImageFolderSource(Source):
    """A folder of class folders (``data/train/``) or a glob of images (``data/train/*/*.png``)."""

    name = "images"
    formats = ("a folder of class folders of .png/.jpg images (data/train/)",
               "a glob of images (data/train/*/*.png)")

    def can_read(self, uri: str) -> bool:
        if not isinstance(uri, str) or not uri.strip() or url_scheme(uri) is not None:
            return False
        if _GLOB_CHARS.search(uri):
            return is_image_name(uri)
        return uri.endswith(("/", "\\")) or (not Path(uri).suffix and "\\" not in uri)

    def read(self, uri: str, *, base_dir: Path, query: str | None = None) -> pd.DataFrame:
        if query is not None:
            raise SourceError(f"a query was given, but {uri!r} names images: a query is only for SQL sources",
                              hint="remove data.query from tidal.yaml")
        found = self.scan(uri, base_dir)
        return pd.DataFrame({PATH: [rel for rel, _, _ in found.files],
                             LABEL: pd.Series([label for _, label, _ in found.files], dtype=object),
                             IMAGE: [_read_bytes(path) for _, _, path in found.files]})

    def scan(self, uri: str, base_dir: Path | str) -> ImageFiles:
        """The image files ``uri`` names (see the module docstring); ``SourceError`` if there are none."""
        if _GLOB_CHARS.search(uri):
            return _scan_glob(uri, Path(base_dir))
        return _scan_folder(resolve_local_path(uri, base_dir))


def _scan_folder(root: Path) -> ImageFiles:
    if not root.is_dir():
        raise SourceError(f"{root} is not a folder of images",
                          hint="name a folder of class folders (data/train/), or a glob such as data/*.png")
    found = ImageFiles(root=root)
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue  # .DS_Store, .ipynb_checkpoints: never a class
        if entry.is_file() and is_image_name(entry.name):
            found.files.append((entry.name, None, entry))
        elif entry.is_dir():
            images = sorted(p for p in entry.rglob("*") if p.is_file() and is_image_name(p.name)
                            and not any(part.startswith(".") for part in p.relative_to(entry).parts))
            if not images:
                found.empty_classes.append(entry.name)
            found.files += [(p.relative_to(root).as_posix(), entry.name, p) for p in images]
    found.files.sort(key=lambda item: item[0])
    if not found.files:
        raise EmptySourceError(f"no .png or .jpg images in {root} or its class folders", hint=SPEC_HINT)
    return found


def _scan_glob(uri: str, base_dir: Path) -> ImageFiles:
    pattern = resolve_local_path(uri, base_dir, must_exist=False)
    text = str(pattern)
    fixed = text[: _GLOB_CHARS.search(text).start()]  # type: ignore[union-attr]
    # the folder the pattern starts in: data/train/ of data/train/*/*.png, data/ of data/img_*.png
    root = Path(fixed) if fixed.endswith(("/", "\\")) else Path(fixed).parent
    matches = sorted(Path(p) for p in globlib.glob(text, recursive=True) if Path(p).is_file())
    if not matches:
        raise SourceError(f"no files match {pattern}", hint=SPEC_HINT)
    files = [(p.relative_to(root).as_posix() if p.is_relative_to(root) else p.name,
              p.parent.name, p) for p in matches]
    return ImageFiles(root=root, files=sorted(files, key=lambda item: item[0]))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}", hint="check the file's permissions") from exc


__all__ = ["IMAGE", "LABEL", "PATH", "ImageFiles", "ImageFolderSource", "is_image_name"]
