"""The ArtifactStore contract, over a local folder and an fsspec filesystem (``memory://``)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidal.core.errors import ArtifactNotFound, IntegrityError, StorageError
from tidal.core.ports import ArtifactStore
from tidal.storage import FsspecArtifactStore, open_artifact_store

ARTIFACT_IMPLEMENTATIONS = ["local", "fsspec-memory"]


@pytest.fixture(params=ARTIFACT_IMPLEMENTATIONS)
def artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FsspecArtifactStore]:
    if request.param == "local":
        yield FsspecArtifactStore(str(tmp_path / "not" / "yet" / "there"))
        return
    import fsspec

    root = f"memory://tidal-test-{uuid.uuid4().hex}"
    yield FsspecArtifactStore(root)
    fs = fsspec.filesystem("memory")
    if fs.exists(root.removeprefix("memory://")):
        fs.rm(root.removeprefix("memory://"), recursive=True)


def overwrite(store: FsspecArtifactStore, digest: str, data: bytes) -> None:
    """Change the stored bytes behind the store's back, as a user or a failing disk would."""
    path = store.path(digest)
    if "://" in store.url:
        import fsspec

        fsspec.filesystem("memory").pipe_file(path, data)
    else:
        Path(path).write_bytes(data)


def test_is_an_artifact_store(artifacts: FsspecArtifactStore) -> None:
    assert isinstance(artifacts, ArtifactStore)


def test_local_says_whether_exists_is_a_stat(artifacts: FsspecArtifactStore) -> None:
    # a server checks a local store for images on its event loop, a remote one only in a thread
    assert artifacts.local is ("://" not in artifacts.url)
    digest = artifacts.put(b"an image")
    assert artifacts.exists(digest) and not artifacts.exists(hashlib.sha256(b"another").hexdigest())


def test_round_trip_and_digest(artifacts: FsspecArtifactStore) -> None:
    data = b"model bytes \x00\xff" * 1000
    digest = artifacts.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert artifacts.exists(digest)
    assert artifacts.get(digest) == data
    assert artifacts.path(digest).endswith(f"/{digest[:2]}/{digest}")


def test_empty_bytes(artifacts: FsspecArtifactStore) -> None:
    digest = artifacts.put(b"")
    assert artifacts.get(digest) == b""


def test_put_is_idempotent(artifacts: FsspecArtifactStore, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = artifacts.put(b"once")
    writes: list[str] = []
    monkeypatch.setattr("tidal.storage.artifacts._write_atomic", lambda path, data: writes.append(str(path)))
    if artifacts._fs is not None:
        monkeypatch.setattr(artifacts._fs, "pipe_file", lambda path, data: writes.append(path))
    assert artifacts.put(b"once") == digest
    assert writes == []  # nothing was written the second time
    assert artifacts.get(digest) == b"once"


def test_absent_digest_raises_artifact_not_found(artifacts: FsspecArtifactStore) -> None:
    missing = hashlib.sha256(b"never stored").hexdigest()
    assert not artifacts.exists(missing)
    with pytest.raises(ArtifactNotFound):
        artifacts.get(missing)


@pytest.mark.parametrize("bad", ["", "abc", "../../etc/passwd", "A" * 64, "g" * 64])
def test_malformed_digest_is_absent(artifacts: FsspecArtifactStore, bad: str) -> None:
    assert not artifacts.exists(bad)
    with pytest.raises(ArtifactNotFound):
        artifacts.get(bad)


def test_tampered_bytes_raise_integrity_error(artifacts: FsspecArtifactStore) -> None:
    digest = artifacts.put(b"the real model")
    overwrite(artifacts, digest, b"the real modeL")
    with pytest.raises(IntegrityError) as info:
        artifacts.get(digest)
    message = str(info.value)
    assert digest in message
    assert artifacts.path(digest) in message
    assert "modified or corrupted" in message
    assert "re-run" in message and "backup" in message


def test_truncated_file_raises_integrity_error(artifacts: FsspecArtifactStore) -> None:
    digest = artifacts.put(b"x" * 10_000)
    overwrite(artifacts, digest, b"x" * 10)
    with pytest.raises(IntegrityError):
        artifacts.get(digest)


def test_local_folder_is_created_and_no_temp_files_remain(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b"
    store = FsspecArtifactStore(str(root))
    assert root.is_dir()
    assert store.url == str(root.resolve())
    digests = [store.put(bytes([i]) * 100) for i in range(20)]
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert sorted(str(p) for p in files) == sorted(store.path(d) for d in digests)
    assert all(p.parent.name == p.name[:2] for p in files)


def test_file_url_is_a_local_folder(tmp_path: Path) -> None:
    store = FsspecArtifactStore(f"file://{tmp_path / 'arts'}")
    digest = store.put(b"abc")
    assert (tmp_path / "arts" / digest[:2] / digest).read_bytes() == b"abc"


def test_factory_opens_local_and_fsspec_urls(tmp_path: Path) -> None:
    local = open_artifact_store(str(tmp_path / "arts"))
    memory = open_artifact_store(f"memory://factory-{uuid.uuid4().hex}")
    for store in (local, memory):
        digest = store.put(b"shared")
        assert store.get(digest) == b"shared"
    assert memory.url.startswith("memory://")


def test_unknown_protocol_raises_storage_error() -> None:
    with pytest.raises(StorageError, match="nosuchfs"):
        FsspecArtifactStore("nosuchfs://bucket/prefix")


def test_unwritable_local_folder_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="cannot create the artifact folder"):
        FsspecArtifactStore(str(blocker / "arts"))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096))
def test_any_bytes_round_trip(artifacts: FsspecArtifactStore, data: bytes) -> None:
    digest = artifacts.put(data)
    assert artifacts.put(data) == digest
    assert artifacts.get(digest) == data


def test_concurrent_puts_of_the_same_bytes(artifacts: FsspecArtifactStore) -> None:
    import threading

    data = b"same" * 50_000
    results: list[str] = []
    run: Callable[[], None] = lambda: results.append(artifacts.put(data))  # noqa: E731
    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 8
    assert artifacts.get(results[0]) == data
