"""The storage layer: every byte the jobs read or write outside Spark's DataFrame I/O, on any filesystem by URI.

Built on `pyarrow.fs`, so the same code serves local disks (`file://` or a plain path), HDFS (libhdfs), S3, GCS and
ABFS; credentials come from each filesystem's standard sources (for S3 the AWS variables, profiles and instance
roles). Every function takes a URI string, so what a driver hands to its executors is plain picklable text that
names the same place everywhere.

Atomicity. A reader never sees a partial file: where a rename is atomic (local disks, HDFS) a file is written under a
hidden temporary name (`TMP_MARK`) in its final folder and renamed into place; on object stores the whole object is
sent in one upload, which the store makes visible only once complete. Temporaries left by killed tasks carry the
marker, so `sweep_temp_files` can remove them.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import JobError

TMP_MARK = ".cs-tmp-"
STAGING_MARK = ".staging-"
UPLOAD_CHUNK = 8 << 20
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# Hadoop's names for S3 map to Arrow's `s3`: the same bucket and key, served without Hadoop's connector jars.
_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3"}
_RENAMES_ATOMICALLY = ("local", "hdfs")


class StorageError(JobError):
    """A location that cannot be used as given (scheme, URI form, bucket, credentials): a usage error, exit code 2."""

    exit_code = 2


# --- URIs ------------------------------------------------------------------------------------------------------------

def scheme_of(uri: str) -> str:
    """The URI's scheme ('file' for a plain local path), lower case."""
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match and len(match.group(1)) > 1 else "file"


def is_local(uri: str) -> bool:
    return scheme_of(uri) == "file"


def to_uri(location: str | Path) -> str:
    """A URI for a plain path or a URI: plain and `file:` paths become absolute `file:///...` URIs (relative ones
    against the current directory), anything else is kept as given, without a trailing slash."""
    text = str(location)
    if not is_local(text):
        return text.rstrip("/") if not text.endswith("://") else text
    match = _SCHEME.match(text)
    path = text[match.end():] if match else text
    if path.startswith("//"):  # file://host/path: only the local host is meaningful
        slash = path.find("/", 2)
        path = path[slash:] if slash >= 0 else "/"
    return "file://" + os.path.abspath(path)


def display(uri: str) -> str:
    """What a person reads in logs, results and manifests: local files as plain paths, everything else as its URI,
    with any password written into it (`s3://KEY:SECRET@bucket/...`) masked, even in a URI too malformed to use."""
    uri = str(uri)
    if uri.startswith("file://"):
        return uri[len("file://"):]
    scheme, separator, rest = uri.partition("://")
    userinfo, at, host_and_path = rest.rpartition("@")
    if separator and at and ":" in userinfo:
        return f"{scheme}://***@{host_and_path}"
    return uri


def join(uri: str | Path, *parts: str) -> str:
    return "/".join([str(uri).rstrip("/"), *(p.strip("/") for p in parts if p)])


def basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


# --- filesystems -----------------------------------------------------------------------------------------------------

_filesystems: dict = {}


def filesystem(uri: str):
    """(pyarrow FileSystem, path inside it) for `uri`; one FileSystem per scheme and authority in each process,
    since building one can cost a network round trip (S3 resolves the bucket's region)."""
    from pyarrow import fs as pafs

    uri = to_uri(uri)
    scheme = scheme_of(uri)
    arrow_uri = _SCHEME_ALIASES[scheme] + uri[len(scheme):] if scheme in _SCHEME_ALIASES else uri
    authority = arrow_uri.split("/", 3)[2] if arrow_uri.count("/") >= 2 else ""
    key = (scheme, authority)
    if key not in _filesystems:  # from the scheme and authority alone: Arrow cannot parse a key with spaces or é
        root = f"{arrow_uri.split('://', 1)[0]}://{authority}" if scheme != "file" and authority else arrow_uri
        _filesystems[key] = _open_filesystem(root, pafs)
    return _filesystems[key], _path_of(arrow_uri, scheme)


def forget_filesystems() -> None:
    """Drop the cached filesystems, so the next use reads credentials and endpoints from the environment again."""
    _filesystems.clear()


def _path_of(uri: str, scheme: str) -> str:
    """The path Arrow uses for `uri` on its filesystem: bucket/key on object stores, the absolute path elsewhere."""
    if scheme == "file":
        return uri[len("file://"):]
    authority, _, rest = uri.split("://", 1)[1].partition("/")
    if scheme in ("hdfs", "viewfs"):
        return "/" + rest
    if scheme in ("abfs", "abfss"):  # abfs://container@account.dfs.core.windows.net/path -> container/path
        authority = authority.split("@", 1)[0]
    else:  # s3://KEY:SECRET@bucket/key -> bucket/key (Arrow reads the credentials from the URI itself)
        authority = authority.rsplit("@", 1)[-1]
    return f"{authority}/{rest}".rstrip("/")


def _open_filesystem(uri: str, pafs):
    scheme = scheme_of(uri)
    if scheme == "file":
        return pafs.LocalFileSystem()
    from .runtime import stderr_silenced

    try:
        with stderr_silenced():  # libhdfs reports every libjvm location it tries on the process's stderr
            return pafs.FileSystem.from_uri(uri)[0]
    except Exception as exc:
        raise StorageError(_explain_open_error(uri, scheme, exc)) from None


def _explain_open_error(uri: str, scheme: str, exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = text.replace(uri, display(uri))  # Arrow quotes the URI it could not use, password and all
    if scheme in ("hdfs", "viewfs"):
        return (f"cannot open {display(uri)}: {text}. Reading and writing hdfs:// from Python needs libhdfs and a "
                "JVM on every node: set JAVA_HOME, ARROW_LIBHDFS_DIR (the folder of libhdfs.so, e.g. "
                "$HADOOP_HOME/lib/native), HADOOP_HOME, and CLASSPATH=$(hadoop classpath --glob); see docs/clusters.md")
    if "Unrecognized filesystem type" in text:
        return (f"cannot use {display(uri)}: no filesystem here serves the scheme '{scheme}:' (supported: local "
                "paths and file://, hdfs://, s3:// (also s3a://), gs://, abfs://)")
    return f"cannot use {display(uri)}: {text}"


# --- reading ---------------------------------------------------------------------------------------------------------

def _info(uri: str):
    fs, path = filesystem(uri)
    return fs.get_file_info(path)


def exists(uri: str) -> bool:
    from pyarrow.fs import FileType

    return _info(uri).type != FileType.NotFound


def is_file(uri: str) -> bool:
    from pyarrow.fs import FileType

    return _info(uri).type == FileType.File


def read_bytes(uri: str, limit: int | None = None) -> bytes:
    """The file's bytes; with `limit`, at most that many, so that a caller who refuses larger files never holds a
    huge one whole."""
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as stream:
        return stream.read() if limit is None else stream.read(limit)


@contextlib.contextmanager
def open_input_file(uri: str) -> Iterator:
    """A seekable binary file object over `uri` (Arrow's random-access file: ranged reads on object stores), for a
    library that reads containers by seeking (PyAV); closed when the block ends."""
    fs, path = filesystem(uri)
    with fs.open_input_file(path) as handle:
        yield handle


def size(uri: str) -> int:
    return _info(uri).size


def sizes(uris: list[str]) -> list[int]:
    """The sizes of files on one filesystem, in one request where the filesystem allows it; 0 for a missing one."""
    if not uris:
        return []
    fs, _ = filesystem(uris[0])
    return [info.size or 0 for info in fs.get_file_info([filesystem(uri)[1] for uri in uris])]


def read_json(uri: str):
    return json.loads(read_bytes(uri).decode("utf-8"))


def list_files(uri: str) -> list[tuple[str, int]]:
    """(URI, size) of every file below `uri` (or of `uri` itself if it is a file), sorted; [] when nothing is there.
    Temporaries and staging folders (`TMP_MARK`, `STAGING_MARK`) are left out."""
    from pyarrow.fs import FileSelector, FileType

    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == FileType.File:
        return [(to_uri(uri), info.size)]
    if info.type == FileType.NotFound:
        return []
    base = to_uri(uri).rstrip("/")
    found = []
    for entry in fs.get_file_info(FileSelector(path, recursive=True, allow_not_found=True)):
        rel = entry.path[len(path.rstrip("/")) + 1:]
        if entry.type == FileType.File and not any(p.startswith((TMP_MARK, STAGING_MARK)) for p in rel.split("/")):
            found.append((f"{base}/{rel}", entry.size))
    return sorted(found)


def children(uri: str) -> list[str]:
    """Names of the files and folders directly in folder `uri`, temporaries included ([] if it does not exist)."""
    from pyarrow.fs import FileSelector

    fs, path = filesystem(uri)
    return sorted(posixpath.basename(e.path) for e in fs.get_file_info(FileSelector(path, allow_not_found=True)))


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[Path]:
    """A local path with the content of `uri`: the file itself on a local disk, else a temporary download."""
    if is_local(uri):
        yield Path(filesystem(uri)[1])
        return
    with tempfile.TemporaryDirectory(prefix="colorspark-") as folder:
        target = Path(folder) / basename(uri)
        fs, path = filesystem(uri)
        with fs.open_input_stream(path) as source, open(target, "wb") as sink:
            shutil.copyfileobj(source, sink, UPLOAD_CHUNK)
        yield target


@contextlib.contextmanager
def local_file_holding(data: bytes, suffix: str = "") -> Iterator[Path]:
    """A private temporary file holding `data`, for a library that reads only from a path (Keras's model loader);
    removed when the block ends."""
    with tempfile.TemporaryDirectory(prefix="colorspark-") as folder:
        target = Path(folder) / ("data" + suffix)
        target.write_bytes(data)
        yield target


# --- writing ---------------------------------------------------------------------------------------------------------

def temp_name(name: str) -> str:
    return f"{TMP_MARK}{uuid.uuid4().hex[:12]}-{name}"


def make_dirs(uri: str) -> None:
    fs, path = filesystem(uri)
    if fs.type_name in _RENAMES_ATOMICALLY:  # object stores have no folders to make
        fs.create_dir(path, recursive=True)


def write_bytes(uri: str, data: bytes) -> None:
    """Write `data` to `uri` so that no reader ever sees part of it (see the module docstring)."""
    fs, path = filesystem(uri)
    if fs.type_name not in _RENAMES_ATOMICALLY:
        with fs.open_output_stream(path) as stream:  # all bytes are in hand: one whole-object upload
            stream.write(data)
        return
    tmp = posixpath.join(posixpath.dirname(path), temp_name(posixpath.basename(path)))
    try:
        try:
            stream = fs.open_output_stream(tmp)
        except FileNotFoundError:  # the folder is new: made only then, which saves its look-ups on every write
            fs.create_dir(posixpath.dirname(path), recursive=True)
            stream = fs.open_output_stream(tmp)
        with stream:
            stream.write(data)
        fs.move(tmp, path)
    except BaseException:  # only a failed write leaves a temporary to remove: no extra look-up per file otherwise
        with contextlib.suppress(OSError):
            fs.delete_file(tmp)
        raise


def write_json(uri: str, document) -> None:
    write_bytes(uri, (json.dumps(document, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


@contextlib.contextmanager
def local_file_for(uri: str, suffix: str = "") -> Iterator[Path]:
    """A local path to write a file that a library can only write to disk (HDF5, a Keras archive); when the block
    ends without an error the file is published to `uri` atomically, otherwise it is dropped. On a local disk the
    file is written next to its target under a temporary name and renamed, so nothing is copied."""
    fs, path = filesystem(uri)
    if is_local(uri):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = Path(os.path.dirname(path)) / (temp_name(os.path.basename(path)) + suffix)
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return
    with tempfile.TemporaryDirectory(prefix="colorspark-") as folder:
        tmp = Path(folder) / ("upload" + suffix)
        yield tmp
        upload_file(tmp, uri)


def upload_file(local: Path, uri: str) -> None:
    """Publish a complete local file at `uri`: streamed in one upload (object stores) or to a temporary name that is
    then renamed (HDFS)."""
    fs, path = filesystem(uri)
    target = path
    if fs.type_name in _RENAMES_ATOMICALLY:
        fs.create_dir(posixpath.dirname(path), recursive=True)
        target = posixpath.join(posixpath.dirname(path), temp_name(posixpath.basename(path)))
    with open(local, "rb") as source, fs.open_output_stream(target) as sink:
        for block in iter(lambda: source.read(UPLOAD_CHUNK), b""):
            sink.write(block)
    if target != path:
        fs.move(target, path)


def delete(uri: str) -> None:
    """Remove a file or a whole tree; nothing there is fine."""
    from pyarrow.fs import FileType

    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == FileType.File:
        fs.delete_file(path)
    elif info.type == FileType.Directory:
        fs.delete_dir(path)


def sweep_temp_files(root: str) -> int:
    """Remove the temporaries that killed tasks left below `root`; returns how many were removed."""
    from pyarrow.fs import FileSelector, FileType

    fs, path = filesystem(root)
    if fs.get_file_info(path).type != FileType.Directory:
        return 0
    removed = 0
    for entry in fs.get_file_info(FileSelector(path, recursive=True, allow_not_found=True)):
        parts = entry.path[len(path.rstrip("/")) + 1:].split("/")
        if not parts[-1].startswith(TMP_MARK) or any(p.startswith(TMP_MARK) for p in parts[:-1]):
            continue  # not a temporary, or inside a temporary folder that goes as a whole
        with contextlib.suppress(FileNotFoundError, OSError):  # inside a temporary folder already removed
            if entry.type == FileType.Directory:
                fs.delete_dir(entry.path)
            else:
                fs.delete_file(entry.path)
            removed += 1
    return removed


def publish(staging: str, target: str, names) -> None:
    """Make the staged outputs `names` (files or folders below `staging`) visible under `target`, replacing older
    ones, then remove `staging`.

    Where renames are atomic each output appears in one step, old ones having been moved aside first, so no mix of
    two runs is ever visible. Object stores have no rename: old objects are deleted and the new ones copied in; the
    job's marker file (`manifest.json`, `summary.json`) is removed before and written after, so it is what tells a
    reader that the whole dataset is there.
    """
    fs, staging_path = filesystem(staging)
    _, target_path = filesystem(target)
    atomic = fs.type_name in _RENAMES_ATOMICALLY
    trash = posixpath.join(target_path, temp_name("old"))
    for name in names:
        source, dest = posixpath.join(staging_path, name), posixpath.join(target_path, name)
        if fs.get_file_info(source).type.name == "NotFound":
            delete(join(target, name))
            continue
        if atomic:
            if fs.get_file_info(dest).type.name != "NotFound":
                fs.create_dir(trash, recursive=True)
                fs.move(dest, posixpath.join(trash, name))
            fs.move(source, dest)
        else:
            delete(join(target, name))
            _copy_tree(fs, source, dest)
    delete(join(target, basename(trash)))
    delete(staging)


def _copy_tree(fs, source: str, dest: str) -> None:
    from pyarrow.fs import FileSelector, FileType

    if fs.get_file_info(source).type == FileType.File:
        fs.copy_file(source, dest)
        return
    for entry in fs.get_file_info(FileSelector(source, recursive=True)):
        if entry.type == FileType.File:
            fs.copy_file(entry.path, dest + entry.path[len(source):])


# --- checks before a job starts ---------------------------------------------------------------------------------------

def check_location(uri: str, *, what: str, cluster: bool, output: bool) -> str:
    """Resolve a location given on the command line and check it can be used, before any work starts.

    Returns its URI. Raises StorageError (exit code 2) for an unknown scheme, a malformed URI, a missing filesystem
    library, a bucket that does not exist or refused credentials, and, with `cluster` (the location must name one
    place for every node), for a plain path: that would name each machine's own disk, so a shared one must be asked
    for explicitly with file://.
    """
    if cluster and _SCHEME.match(uri) is None:
        raise StorageError(
            f"{what} {uri} is a plain path, but the master is a cluster: each executor would write to its own local "
            f"disk. Give a URI that names one place for all of them: hdfs://..., s3://bucket/..., gs://..., "
            f"abfs://..., or file://{os.path.abspath(uri)} for a disk that every node mounts at that path")
    resolved = to_uri(uri)
    fs, path = filesystem(resolved)
    try:
        info = fs.get_file_info(path)
        if fs.type_name not in _RENAMES_ATOMICALLY and path.strip("/"):
            bucket = path.strip("/").split("/", 1)[0]
            if fs.get_file_info(bucket).type.name == "NotFound":
                raise StorageError(f"{what} {display(resolved)}: the bucket '{bucket}' does not exist (or these "
                                   "credentials may not see it)")
    except StorageError:
        raise
    except OSError as exc:
        raise StorageError(f"{what} {display(resolved)}: {_explain_access_error(exc)}") from None
    if output and info.type.name == "File":
        raise StorageError(f"{what} {display(resolved)} is a file; it must be a folder (or not exist yet)")
    return resolved


def _explain_access_error(exc: OSError) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if any(code in text for code in ("SIGNATURE_DOES_NOT_MATCH", "InvalidAccessKeyId", "INVALID_ACCESS_KEY",
                                     "ACCESS_DENIED", "AccessDenied", "403")):
        return ("the storage refused the credentials (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the profile "
                f"or the instance role; for GCS the application default credentials): {text}")
    return text
