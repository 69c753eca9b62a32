"""Atomic file output, safe output paths, HDF5 shards and JSON documents.

Every file colorspark writes goes to a hidden temporary name in its final directory and is renamed into place, so a
reader (or a rerun after a crash or a Spark task retry) sees either the old file or the complete new one. Temporary
names share one marker (`TMP_MARK`) so a job can sweep what killed tasks left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import re
import shutil
import unicodedata
import uuid
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

TMP_MARK = ".cs-tmp-"


def temp_path_for(path: Path) -> Path:
    return path.with_name(f"{TMP_MARK}{uuid.uuid4().hex[:12]}-{path.name}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it over `path`, on failure remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            if tmp.is_dir():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | Path, document) -> None:
    write_bytes_atomic(path, (json.dumps(document, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def save_npy_atomic(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def sweep_temp_files(root: str | Path) -> int:
    """Remove temporaries that killed tasks left under `root`; returns how many were removed."""
    removed = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in list(dirnames):
            if name.startswith(TMP_MARK):
                shutil.rmtree(os.path.join(dirpath, name), ignore_errors=True)
                dirnames.remove(name)
                removed += 1
        for name in filenames:
            if name.startswith(TMP_MARK):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(dirpath, name))
                removed += 1
    return removed


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- paths -----------------------------------------------------------------------------------------------------------

_GLOB_CHARS = set("*?[{")


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def uri_to_posix(uri: str) -> str:
    """The path part of a Hadoop path string ('file:/a/b c.jpg', 'hdfs://nn:8020/x').

    Spark's `path` column is already decoded, so no %-unquoting here (a file may really be named 'a%20b.jpg'), and
    no urlparse (a '#' or '?' in a file name is not a fragment or a query).
    """
    match = _SCHEME.match(uri)
    if not match or len(match.group(0)) == 2:  # no scheme, or a Windows drive letter
        return uri
    rest = uri[match.end():]
    if rest.startswith("//"):
        slash = rest.find("/", 2)
        rest = rest[slash:] if slash >= 0 else "/"
    return rest


def local_uri(path: str | Path) -> str:
    """A 'file://' URI for a local output path, so Spark's readers and writers use the same filesystem as the
    executors' own file writes even where Hadoop's default filesystem is HDFS. Not percent-encoded: Hadoop's Path
    parses the string itself and would encode a '%' again."""
    return "file://" + str(Path(path).resolve())


def input_root(input_path: str) -> str:
    """The directory that output paths are made relative to: the input up to its first glob component."""
    path = uri_to_posix(input_path).rstrip("/") or "/"
    parts = path.split("/")
    for i, part in enumerate(parts):
        if _GLOB_CHARS & set(part):
            return "/".join(parts[:i]) or "/"
    return path


def _clean_component(part: str) -> str:
    part = unicodedata.normalize("NFC", part)
    part = "".join("_" if (unicodedata.category(c).startswith("C") or c in "\\:") else c for c in part)
    part = part.strip()
    if part in ("", ".", ".."):
        part = "_" + part.replace(".", "_")
    return _fit_name(part)


def _fit_name(part: str, limit: int = 200) -> str:
    """Keep a component within `limit` UTF-8 bytes (filesystems allow 255); a shortened name keeps its extension
    and gains a hash of the full name, so two long names that differ only at the end stay distinct."""
    if len(part.encode("utf-8")) <= limit:
        return part
    stem, ext = posixpath.splitext(part)
    ext = ext if len(ext.encode("utf-8")) <= 16 else ""
    suffix = "~" + hashlib.sha1(part.encode("utf-8")).hexdigest()[:10] + ext
    budget = limit - len(suffix.encode("utf-8"))
    return stem.encode("utf-8")[:budget].decode("utf-8", "ignore") + suffix


def relative_output_path(file_uri: str, root: str) -> str:
    """A safe POSIX path for `file_uri` relative to `root`, used under OUT/ subfolders.

    Only the part below the input root is kept; '.', '..', empty and control-character components are neutralised,
    so the result can never climb out of the folder it is joined to. A file that is not below the root (a symlinked
    or odd input) keeps its base name under '_outside/' with a hash of its full path to stay unique.
    """
    path = posixpath.normpath(uri_to_posix(file_uri))
    root = posixpath.normpath(root)
    if path.startswith(root.rstrip("/") + "/"):
        rel = path[len(root.rstrip("/")) + 1:]
    elif path == root:  # the input was a single file
        rel = posixpath.basename(path)
    else:
        digest = hashlib.sha1(path.encode()).hexdigest()[:10]
        rel = f"_outside/{digest}/{posixpath.basename(path)}"
    return "/".join(_clean_component(p) for p in rel.split("/") if p != "")


def join_inside(base: str | Path, rel: str) -> Path:
    """`base/rel`, refusing anything that would resolve outside `base` (defence in depth after sanitising)."""
    base = Path(base).resolve()
    target = (base / rel).resolve()
    if target != base and base not in target.parents:
        raise ValueError(f"output path {rel!r} escapes {base}")
    return target


def replace_with_extension(rel: str, extension: str) -> str:
    stem, _ = posixpath.splitext(rel)
    return stem + extension


# --- HDF5 shards -----------------------------------------------------------------------------------------------------

def write_hdf5_shard(path: str | Path, arrays: dict[str, np.ndarray], attrs: dict | None = None) -> None:
    """One HDF5 file of equally long datasets (strings as UTF-8), written atomically; readable by plain h5py."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            for name, values in arrays.items():
                if values.dtype.kind in ("U", "O"):
                    h5.create_dataset(name, data=np.array([str(v) for v in values], dtype=object),
                                      dtype=h5py.string_dtype("utf-8"))
                else:
                    h5.create_dataset(name, data=values, compression="gzip", compression_opts=1,
                                      chunks=True if values.ndim > 1 else None)
            for key, value in (attrs or {}).items():
                h5.attrs[key] = value
