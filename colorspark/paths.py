"""Output names: where each input's outputs go below OUT/, whatever its name, and on whatever filesystem.

Names come only from each file's path below the input root. Components are cleaned ('.', '..', control characters,
':' and '\\'), shortened to fit filesystems' 255-byte limit, and joined with `join_inside`, so no input name can
make a job write outside its output folder.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

from . import fs

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


def input_root(input_path: str) -> str:
    """The directory that output paths are made relative to: the input up to its first glob component."""
    path = uri_to_posix(input_path).rstrip("/") or "/"
    parts = path.split("/")
    for i, part in enumerate(parts):
        if _GLOB_CHARS & set(part):
            return "/".join(parts[:i]) or "/"
    return path


@dataclass(frozen=True)
class InputLocation:
    """A job's --input, parsed once at the job's entry and passed down: what is listed (`given`: a file, folder or
    glob, a path or URI), the folder output names are made relative to as a URI (`root_uri`) and as a POSIX path
    (`root`), and the glob below it that files must match (`pattern`, None for a file or folder)."""
    given: str
    root_uri: str
    root: str
    pattern: str | None

    @classmethod
    def parse(cls, given: str) -> InputLocation:
        root, path = input_root(given), uri_to_posix(given)
        if "://" in given:
            scheme, rest = given.split("://", 1)
            prefix = f"{scheme}://{rest.partition('/')[0]}"
        else:  # a plain path, or 'file:/...'
            prefix = given[:len(given) - len(path)] if path and given.endswith(path) else ""
        return cls(given, prefix + root, root, path if root != (path.rstrip("/") or "/") else None)

    def qualified(self, root_uri: str) -> InputLocation:
        """The same location with its root as a filesystem qualified it (absolute, with scheme and authority)."""
        return replace(self, root_uri=root_uri, root=uri_to_posix(root_uri))

    def relative(self, file_uri: str) -> str:
        """`relative_output_path` of a listed file below this location's root."""
        return relative_output_path(file_uri, self.root)


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


def join_inside(base: str, rel: str) -> str:
    """`base/rel` as a URI, refusing anything that would land outside `base` (defence in depth after sanitising;
    on a local disk symlinks are followed too)."""
    norm = posixpath.normpath(rel)
    if norm == ".." or norm.startswith(("/", "../")):
        raise ValueError(f"output path {rel!r} escapes {fs.display(base)}")
    target = base if norm == "." else fs.join(base, norm)
    if fs.is_local(base):
        root, resolved = Path(fs.display(base)).resolve(), Path(fs.display(target)).resolve()
        if resolved != root and root not in resolved.parents:
            raise ValueError(f"output path {rel!r} escapes {fs.display(base)}")
    return target


def replace_with_extension(rel: str, extension: str) -> str:
    stem, _ = posixpath.splitext(rel)
    return stem + extension
