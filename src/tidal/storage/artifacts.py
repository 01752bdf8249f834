"""Content-addressed artifact storage on fsspec: a local folder by default, any fsspec URL by configuration.

Layout: ``<root>/<digest[:2]>/<digest>``, where ``digest`` is the sha256 hex of the bytes. The first two
characters fan the files out over 256 folders, so no folder grows huge.

A local folder is written atomically (a temporary file in the same folder, flushed to disk, then
renamed over the final name), so a reader never sees half an artifact even if the writer crashes. On
object stores (``s3://``, ``gs://``) a single PUT is already atomic; the bytes are read back and checked
after writing instead. Every read is verified against the digest, so a file changed on disk is reported,
never silently used.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any

from tidal.core.errors import ArtifactNotFound, IntegrityError, StorageError
from tidal.core.hashing import sha256_bytes

_DIGEST = re.compile(r"[0-9a-f]{64}")


def _redact(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


class FsspecArtifactStore:
    """The :class:`~tidal.core.ports.ArtifactStore` on a local folder (created if missing) or any fsspec
    URL (``memory://bucket``, ``s3://bucket/prefix``, ...)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._local: Path | None = None
        self._fs: Any = None
        self._root = ""
        if url.startswith("file://"):
            url = url[len("file://"):]
        if "://" not in url:
            self._local = Path(url).expanduser().resolve()
            self._url = str(self._local)
            try:
                self._local.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"cannot create the artifact folder {self._url!r}: {exc.strerror or exc}",
                    hint="choose a writable folder with TIDAL_ARTIFACTS_URL",
                ) from exc
            return
        self._fs, self._root = _filesystem(url)
        self._root = self._root.rstrip("/")

    @property
    def local(self) -> bool:
        """Whether the artifacts are in a local folder: :meth:`exists` is then a ``stat``, cheap enough to call
        on a server's event loop (a remote store's is a round trip)."""
        return self._local is not None

    @property
    def url(self) -> str:
        """Where the artifacts live, for display (credentials hidden)."""
        return _redact(self._url)

    def __repr__(self) -> str:
        return f"FsspecArtifactStore({self.url!r})"

    def path(self, digest: str) -> str:
        """Where the bytes of ``digest`` are (or would be) stored."""
        if self._local is not None:
            return str(self._local / digest[:2] / digest)
        return f"{self._root}/{digest[:2]}/{digest}"

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its sha256 digest; a no-op when it is stored already."""
        digest = sha256_bytes(data)
        if self.exists(digest):
            return digest
        path = self.path(digest)
        try:
            if self._local is not None:
                _write_atomic(Path(path), data)
            else:
                self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                self._fs.pipe_file(path, data)
                # Check what the filesystem now holds, rather than trusting the write call.
                if sha256_bytes(self._fs.cat_file(path)) != digest:
                    raise StorageError(f"artifact {digest} was stored at {path} but reads back different",
                                       hint="check the storage backend, then store it again")
        except OSError as exc:
            raise StorageError(f"cannot store artifact {digest} at {path}: {exc}",
                               hint="check that the artifact location is writable and has space") from exc
        return digest

    def get(self, digest: str) -> bytes:
        """The bytes stored under ``digest``, verified.

        Raises ArtifactNotFound when absent and IntegrityError when the stored bytes no longer match the digest.
        """
        if not _DIGEST.fullmatch(digest):
            raise ArtifactNotFound(f"no artifact {digest!r}: not a sha256 hex digest")
        path = self.path(digest)
        try:
            data = Path(path).read_bytes() if self._local is not None else self._fs.cat_file(path)
        except FileNotFoundError:
            raise ArtifactNotFound(f"no artifact {digest} (looked at {path})") from None
        except OSError as exc:
            raise StorageError(f"cannot read artifact {digest} at {path}: {exc}",
                               hint="check that the artifact location is reachable and readable") from exc
        actual = sha256_bytes(data)
        if actual != digest:
            raise IntegrityError(
                f"artifact {digest} at {path} does not match its digest (its bytes hash to {actual}): "
                "it was modified or corrupted after it was stored",
                hint="re-run the step that made it to re-create it, or restore the file from a backup",
            )
        return data

    def exists(self, digest: str) -> bool:
        """Whether bytes are stored under ``digest`` (not verified: :meth:`get` verifies)."""
        if not _DIGEST.fullmatch(digest):
            return False
        path = self.path(digest)
        if self._local is not None:
            return os.path.isfile(path)
        try:
            return bool(self._fs.exists(path))
        except OSError as exc:
            raise StorageError(f"cannot reach the artifact store {self.url}: {exc}",
                               hint="check the artifact location and its credentials") from exc


def _filesystem(url: str) -> tuple[Any, str]:
    protocol = url.split("://", 1)[0]
    try:
        import fsspec.core

        fs, root = fsspec.core.url_to_fs(url)
        return fs, str(root)
    except ImportError as exc:
        extra = {"s3": "pip install 'tidal[s3]'", "s3a": "pip install 'tidal[s3]'"}.get(
            protocol, f"install the fsspec implementation for {protocol}:// (e.g. gcsfs, adlfs)")
        raise StorageError(f"no filesystem support installed for the artifact store {_redact(url)}",
                           hint=extra) from exc
    except (ValueError, OSError) as exc:
        raise StorageError(f"cannot open the artifact store {_redact(url)}: {exc}",
                           hint="use a local folder or an fsspec URL such as s3://bucket/prefix") from exc


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            # Flush before the rename: otherwise a power loss can leave the final name with no content.
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
