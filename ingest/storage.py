"""The object store: one interface for frames, manifests and tiles, whatever backend holds them.

`ObjectStore` is the interface the whole system codes against; `LocalObjectStore` keeps objects in a
folder on disk (the embedded default). Keys follow S3's rules, tightened so that no key can name a
file outside the store: see `validate_key`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from ingest.errors import InvalidObjectKeyError, ObjectNotFoundError

MAX_KEY_BYTES = 1024
"""S3's limit on a key, in UTF-8 bytes; every backend enforces it so keys stay portable."""

DEFAULT_CONTENT_TYPE = "application/octet-stream"
CHUNK_BYTES = 1024 * 1024

# Local store layout: metadata lives in a hidden tree so that listing the object tree never sees it;
# keys may not have segments starting with '.', so no key can reach it or a temporary file.
META_DIR = ".meta"
META_SUFFIX = ".meta.json"
TMP_SUFFIX = ".tmp"
# File names are limited to 255 bytes; leave room for the sidecar and temporary-file affixes.
MAX_LOCAL_SEGMENT_BYTES = 200
# Objects are meant to be served (tile server, imagery API), so not mkstemp's owner-only 0o600.
OBJECT_FILE_MODE = 0o644
# A concurrent delete may prune the folder a write is about to use; recreating it is enough.
FOLDER_RACE_RETRIES = 3


@dataclass(frozen=True)
class StoredObject:
    """What the store knows about an object: key, size in bytes, sha256 (hex) and media type."""

    key: str
    size: int
    sha256: str
    content_type: str


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a safe object key, else raise `InvalidObjectKeyError`.

    A key is non-empty, at most 1024 UTF-8 bytes, relative and '/'-separated, with no empty, '.' or
    '..' segment, no segment starting with '.', no backslash and no NUL or other control character.
    """
    problem = _key_problem(key)
    if problem is not None:
        msg = (
            f"Invalid object key {key!r}: {problem}. "
            "Use a relative '/'-separated key such as 'frames/ab/abcd.jpg'."
        )
        raise InvalidObjectKeyError(msg)
    return key


def validate_prefix(prefix: str) -> str:
    """Return `prefix` unchanged if it can start a valid key ('' lists everything), else raise."""
    body = prefix.removesuffix("/")
    if prefix and _key_problem(body) is not None:
        msg = f"Invalid object key prefix {prefix!r}: {_key_problem(body)}."
        raise InvalidObjectKeyError(msg)
    return prefix


def _key_problem(key: str) -> str | None:
    """Say what is wrong with `key`, or None when it is valid."""
    if not key:
        return "it is empty"
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid Unicode text"
    if len(encoded) > MAX_KEY_BYTES:
        return f"it is longer than {MAX_KEY_BYTES} bytes"
    if "\\" in key:
        return "it contains a backslash ('/' is the only separator)"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in key):
        return "it contains a NUL or another control character"
    if key.startswith("/"):
        return "it is absolute (starts with '/')"
    return _segment_problem(key.split("/"))


def _segment_problem(segments: Iterable[str]) -> str | None:
    """Say what is wrong with the '/'-separated segments of a key, or None when they are valid."""
    for segment in segments:
        if not segment:
            return "it has an empty segment ('//' or a trailing '/')"
        if segment in (".", ".."):
            return f"it contains a '{segment}' segment"
        if segment.startswith("."):
            return "a segment starts with '.' (such names are reserved for the store's own files)"
    return None


class ObjectStore(ABC):
    """A flat namespace of immutable-once-written blobs addressed by '/'-separated keys."""

    @abstractmethod
    def put_bytes(
        self, key: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> StoredObject:
        """Store `data` under `key`, replacing any previous object, and describe what was stored."""

    @abstractmethod
    def put_file(
        self, key: str, path: Path, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> StoredObject:
        """Store the contents of the file at `path` under `key`, replacing any previous object."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Return the object's bytes; raise `ObjectNotFoundError` when there is none."""

    @abstractmethod
    def head(self, key: str) -> StoredObject | None:
        """Describe the object under `key`, or return None when there is none."""

    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""
        return self.head(key) is not None

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object under `key`; deleting a missing key is not an error (as in S3)."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Yield every object whose key starts with `prefix`, in lexicographic key order."""


@dataclass(frozen=True)
class _Sidecar:
    """Metadata kept next to a local object, with the file identity it was computed for."""

    obj: StoredObject
    fingerprint: tuple[int, int, int]

    def to_json(self) -> bytes:
        """Serialize for the sidecar file."""
        return json.dumps({**asdict(self.obj), "fingerprint": self.fingerprint}).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> _Sidecar | None:
        """Parse a sidecar file; None when it is unreadable (a crash or a foreign file)."""
        try:
            data = json.loads(raw)
            obj = StoredObject(data["key"], data["size"], data["sha256"], data["content_type"])
            size, mtime_ns, inode = (int(value) for value in data["fingerprint"])
            return cls(obj, (size, mtime_ns, inode))
        except (ValueError, KeyError, TypeError):
            return None


class LocalObjectStore(ObjectStore):
    """Objects as files in a folder: `<root>/<key>`, metadata in `<root>/.meta/<key>.meta.json`.

    Writes are atomic (temporary file in the same folder, fsync, rename), so readers never see a
    partial object. The sha256 is computed while writing; the sidecar records the file's identity
    (size, mtime, inode) so that a sidecar left stale by a crash is detected and rebuilt on read.
    """

    def __init__(self, root: Path) -> None:
        """Use (and create if needed) the folder `root`."""
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        """Name the store by its folder, for error messages and logs."""
        return f"LocalObjectStore({str(self.root)!r})"

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> StoredObject:
        """Store `data` under `key` atomically and record its sha256."""
        return self._put(key, [data], content_type)

    def put_file(
        self, key: str, path: Path, *, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> StoredObject:
        """Copy the file at `path` under `key` atomically, in chunks, and record its sha256."""
        with Path(path).open("rb") as source:
            return self._put(key, _chunks(source), content_type)

    def get_bytes(self, key: str) -> bytes:
        """Return the object's bytes; raise `ObjectNotFoundError` when there is none."""
        try:
            return self._object_path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            msg = f"No object {key!r} in {self!r}: check the key, or upload the object first."
            raise ObjectNotFoundError(msg) from None

    def head(self, key: str) -> StoredObject | None:
        """Describe the object under `key` from its sidecar, rebuilding a stale sidecar first."""
        path = self._object_path(key)
        info = _regular_file_stat(path)
        if info is None:
            return None
        sidecar = self._read_sidecar(key)
        if sidecar is not None and sidecar.fingerprint == _fingerprint(info):
            return sidecar.obj
        content_type = sidecar.obj.content_type if sidecar else DEFAULT_CONTENT_TYPE
        return self._rebuild_sidecar(key, path, content_type)

    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key` (without reading its metadata)."""
        return _regular_file_stat(self._object_path(key)) is not None

    def delete(self, key: str) -> None:
        """Remove the object and its sidecar, then prune folders left empty."""
        path = self._object_path(key)
        # Data first: a crash in between leaves an orphan sidecar, which `head` ignores.
        _unlink_quietly(path)
        _unlink_quietly(self._sidecar_path(key))
        _prune_empty_folders(path.parent, self.root)
        _prune_empty_folders(self._sidecar_path(key).parent, self.root / META_DIR)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Yield every object whose key starts with `prefix`, in lexicographic key order."""
        # Validate now, not at the first `next()`, so a bad prefix fails where it is passed.
        validate_prefix(prefix)
        return self._iter_objects(prefix)

    def _iter_objects(self, prefix: str) -> Iterator[StoredObject]:
        """Describe the keys under `prefix`, skipping any deleted while we iterate."""
        for key in sorted(self._keys_under(prefix)):
            obj = self.head(key)
            if obj is not None:
                yield obj

    def _keys_under(self, prefix: str) -> Iterator[str]:
        """Keys of the regular files below the deepest folder that `prefix` names."""
        base = self.root.joinpath(*prefix.rpartition("/")[0].split("/"))
        for folder, subfolders, files in os.walk(base):
            # Hidden names are the metadata tree and temporary files, never objects.
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
            for name in files:
                key = (Path(folder) / name).relative_to(self.root).as_posix()
                if not name.startswith(".") and key.startswith(prefix):
                    yield key

    def _put(self, key: str, chunks: Iterable[bytes], content_type: str) -> StoredObject:
        """Write the object, then its sidecar, each atomically."""
        path = self._object_path(key)
        self._check_no_clash(key, path)
        size, digest = _write_atomic(path, chunks)
        obj = StoredObject(key, size, digest, content_type)
        self._write_sidecar(_Sidecar(obj, _fingerprint(path.stat())))
        return obj

    def _rebuild_sidecar(self, key: str, path: Path, content_type: str) -> StoredObject:
        """Hash the object again and rewrite its sidecar (after a crash or a concurrent write)."""
        with path.open("rb") as source:
            info = os.fstat(source.fileno())
            size, digest = _hash_chunks(_chunks(source))
        obj = StoredObject(key, size, digest, content_type)
        self._write_sidecar(_Sidecar(obj, _fingerprint(info)))
        return obj

    def _object_path(self, key: str) -> Path:
        """The file that holds `key`, after checking the key is valid here."""
        validate_key(key)
        segments = key.split("/")
        if any(len(segment.encode()) > MAX_LOCAL_SEGMENT_BYTES for segment in segments):
            msg = (
                f"Invalid object key {key!r}: a segment is longer than {MAX_LOCAL_SEGMENT_BYTES} "
                "bytes, which a folder-backed store cannot hold. Shorten the key."
            )
            raise InvalidObjectKeyError(msg)
        return self.root.joinpath(*segments)

    def _sidecar_path(self, key: str) -> Path:
        """The metadata file of `key`."""
        return self.root.joinpath(META_DIR, *key.split("/")).with_name(
            key.rpartition("/")[2] + META_SUFFIX
        )

    def _read_sidecar(self, key: str) -> _Sidecar | None:
        """The sidecar of `key`, or None when it is missing or unreadable."""
        try:
            return _Sidecar.from_json(self._sidecar_path(key).read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _write_sidecar(self, sidecar: _Sidecar) -> None:
        """Write the sidecar atomically."""
        _write_atomic(self._sidecar_path(sidecar.obj.key), [sidecar.to_json()])

    def _check_no_clash(self, key: str, path: Path) -> None:
        """Refuse a key that a folder cannot hold beside existing ones ('a' and 'a/b')."""
        clash = path.is_dir() or any(parent.is_file() for parent in _parents_below(path, self.root))
        if clash:
            msg = (
                f"Object key {key!r} clashes with an existing key: a folder-backed store cannot "
                "hold both 'a' and 'a/b'. Choose a key that is not a prefix folder of another."
            )
            raise InvalidObjectKeyError(msg)


def _chunks(source: BinaryIO) -> Iterator[bytes]:
    """Read `source` in chunks so large files are never held in memory whole."""
    while chunk := source.read(CHUNK_BYTES):
        yield chunk


def _hash_chunks(chunks: Iterable[bytes]) -> tuple[int, str]:
    """Size and sha256 (hex) of the concatenated chunks."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _write_atomic(target: Path, chunks: Iterable[bytes]) -> tuple[int, str]:
    """Write `chunks` to `target` via a synced temporary file and a rename; return size, sha256."""
    fd, tmp_name = _mkstemp_beside(target)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), OBJECT_FILE_MODE)
            size, digest = _hash_chunks(_tee(chunks, out))
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # The rename itself must reach the disk too, or a power cut can undo it.
    _fsync_folder(target.parent)
    return size, digest


def _mkstemp_beside(target: Path) -> tuple[int, str]:
    """Create a hidden temporary file beside `target`: same filesystem, so the rename is atomic."""
    for _ in range(FOLDER_RACE_RETRIES):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            return tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
        except FileNotFoundError:
            continue
    target.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)


def _tee(chunks: Iterable[bytes], out: BinaryIO) -> Iterator[bytes]:
    """Write each chunk to `out` and pass it on (to be hashed in the same pass)."""
    for chunk in chunks:
        out.write(chunk)
        yield chunk


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (renames, creations) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fingerprint(info: os.stat_result) -> tuple[int, int, int]:
    """Identity of a file version: every atomic write makes a new inode."""
    return (info.st_size, info.st_mtime_ns, info.st_ino)


def _regular_file_stat(path: Path) -> os.stat_result | None:
    """`stat` of `path` when it is a regular file, else None."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return info if stat.S_ISREG(info.st_mode) else None


def _unlink_quietly(path: Path) -> None:
    """Remove a file if it is there; a folder or a missing path means there is no object."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
        path.unlink()


def _parents_below(path: Path, root: Path) -> Iterator[Path]:
    """The folders between `root` (excluded) and `path` (excluded)."""
    parent = path.parent
    while parent != root and root in parent.parents:
        yield parent
        parent = parent.parent


def _prune_empty_folders(folder: Path, stop: Path) -> None:
    """Remove `folder` and its parents up to `stop` while they are empty.

    An empty folder left behind would stop a later key with the same name from being written.
    """
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (or already gone): parents are not empty either
            return
        folder = folder.parent
