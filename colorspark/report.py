"""Self-contained HTML report of a colorization run.

The page is one file with inline CSS and base64 thumbnails, so it can be
copied off a cluster, attached to a ticket or opened from object storage
without its images going missing.  Thumbnails are small lazy-loaded JPEGs
so a gallery of hundreds of photos stays a few megabytes.
"""

from __future__ import annotations

import base64
import html
import io
import math
import numbers
import os
import tempfile
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["render_report", "write_report", "make_thumbnail"]

_THUMBS = (("thumb_input", "input"), ("thumb_color", "colorized"), ("thumb_truth", "original"))
_SCORED = (
    ("psnr", "PSNR (dB)"),
    ("ssim", "SSIM"),
    ("auc", "AuC"),
    ("auc_rebal", "AuC rebal."),
    ("colourfulness", "colourfulness"),
)
_SCORE_KEYS = tuple(k for key, _ in _SCORED for k in (key, key + "_gray")) + ("colourfulness_truth",)

_CSS = """
*{box-sizing:border-box}
body{margin:0;padding:24px;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1f2328;background:#f4f5f7}
h1{margin:0 0 4px;font-size:22px}
h2{margin:24px 0 8px;font-size:17px}
.note{color:#57606a;margin:0 0 16px}
table{border-collapse:collapse}
.summary{background:#fff;border:1px solid #d0d7de;border-radius:6px}
.summary th,.summary td{padding:4px 12px;border-bottom:1px solid #eaeef2;text-align:left}
.summary td{text-align:right;font-variant-numeric:tabular-nums}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:16px;align-items:start}
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px;min-width:0}
.path{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;
font-weight:600;overflow-wrap:anywhere;margin:0 0 4px}
.meta{color:#57606a;font-size:12px;margin:0 0 8px}
.badge{display:inline-block;padding:0 6px;border-radius:10px;font-size:11px;font-weight:600;
text-transform:uppercase;color:#fff;margin-right:6px}
.st-ok{background:#1a7f37}.st-error{background:#cf222e}.st-skipped{background:#6e7781}
.st-other{background:#9a6700}
.thumbs{display:flex;gap:6px;align-items:flex-end}
/* Fixed thirds, so cards line up even when a thumbnail is missing. */
figure{margin:0;flex:0 0 calc((100% - 12px) / 3);min-width:0;text-align:center}
figure img{display:block;margin:0 auto;max-width:100%;max-height:160px;height:auto;
border-radius:3px;background:#eaeef2}
figcaption{font-size:11px;color:#57606a;margin-top:2px}
.error{color:#cf222e;font-weight:600;overflow-wrap:anywhere;margin:4px 0 0}
.reason{color:#57606a;overflow-wrap:anywhere;margin:4px 0 0}
.empty{color:#8c959f;font-style:italic;margin:4px 0 0}
.scores{margin-top:10px;font-size:12px;width:100%}
.scores th,.scores td{padding:2px 6px;border-bottom:1px solid #eaeef2}
.scores th{text-align:left;font-weight:600;color:#57606a}
.scores td{text-align:right;font-variant-numeric:tabular-nums}
.scores thead th{text-align:right}.scores thead th:first-child{text-align:left}
"""


def _esc(value: Any) -> str:
    """html.escape with quotes, so the text is safe in elements and attributes."""
    return html.escape(str(value), quote=True)


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return isinstance(value, numbers.Real) and math.isnan(value)
    except (TypeError, ValueError):
        return False


def _fmt(value: Any) -> str:
    """Readable cell text: floats to 3 decimals, ∞ for inf (a perfect PSNR),
    "–" for None/nan so missing metrics look missing rather than zero."""
    if _is_missing(value):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return _esc(str(bool(value)).lower())
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return f"{v:.3f}"
    return _esc(value)


def _summary_table(summary: Mapping[str, Any]) -> str:
    """Scalars as key/value rows; a nested mapping (the mean scores) as its own table inside the row."""
    if not summary:
        return '<p class="empty">no summary</p>'
    rows = "".join(
        f"<tr><th>{_esc(key)}</th><td>{_summary_table(value) if isinstance(value, Mapping) else _fmt(value)}"
        "</td></tr>"
        for key, value in summary.items()
    )
    return f'<table class="summary"><tbody>{rows}</tbody></table>'


def _img(data: Any, label: str) -> str:
    """An <img> with the thumbnail inlined as a data URI.

    width/height come from the image header so the browser reserves space
    before a lazy image loads and the gallery does not jump while scrolling;
    undecodable bytes simply go without them.
    """
    raw = bytes(data)
    mime = "image/png" if raw.startswith(b"\x89PNG") else "image/jpeg"
    uri = f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"
    size = ""
    try:
        with Image.open(io.BytesIO(raw)) as img:
            size = f' width="{img.width}" height="{img.height}"'
    except (OSError, ValueError, Image.DecompressionBombError):
        pass
    return f'<img src="{uri}" alt="{label}" loading="lazy"{size}>'


def _thumbs(row: Mapping[str, Any]) -> str:
    figures = [
        f"<figure>{_img(row[key], label)}<figcaption>{label}</figcaption></figure>"
        for key, label in _THUMBS
        if row.get(key) is not None
    ]
    if not figures:
        return ""
    return f'<div class="thumbs">{"".join(figures)}</div>'


def _scores(row: Mapping[str, Any]) -> str:
    if all(_is_missing(row.get(key)) for key in _SCORE_KEYS):
        return ""
    body = "".join(
        f"<tr><th>{label}</th><td>{_fmt(row.get(key))}</td><td>{_fmt(row.get(key + '_gray'))}</td></tr>"
        for key, label in _SCORED
    )
    body += (
        f"<tr><th>colourfulness, original</th>"
        f'<td colspan="2">{_fmt(row.get("colourfulness_truth"))}</td></tr>'
    )
    return (
        '<table class="scores"><thead><tr><th>metric</th><th>colorized</th>'
        f"<th>gray baseline</th></tr></thead><tbody>{body}</tbody></table>"
    )


def _size(row: Mapping[str, Any]) -> str:
    width, height = row.get("width"), row.get("height")
    if _is_missing(width) or _is_missing(height):
        return ""
    return f"{_dim(width)}×{_dim(height)}"


def _dim(value: Any) -> str:
    return str(int(value)) if isinstance(value, numbers.Integral) else _esc(value)


def _millis(row: Mapping[str, Any]) -> str:
    millis = row.get("millis")
    if _is_missing(millis):
        return "– ms"
    millis = float(millis)
    # Sub-10 ms rows (skips, decode errors) would all read "0 ms" otherwise.
    return f"{millis:.1f} ms" if millis < 10 else f"{millis:,.0f} ms"


def _card(row: Mapping[str, Any]) -> str:
    rel = row.get("relative_path")
    full = row.get("path")
    shown = rel if rel not in (None, "") else (full if full not in (None, "") else "(unnamed)")
    status = str(row.get("status") or "unknown")
    badge_cls = f"st-{status}" if status in ("ok", "error", "skipped") else "st-other"
    title = f' title="{_esc(full)}"' if full not in (None, "") else ""
    meta = " · ".join(part for part in (_size(row), _millis(row)) if part)
    if row.get("has_truth") is False:
        meta += " · no original"

    parts = [
        f'<article class="card"><p class="path"{title}>{_esc(shown)}</p>',
        f'<p class="meta"><span class="badge {badge_cls}">{_esc(status)}</span>{meta}</p>',
    ]
    reason = row.get("error")
    if status == "error":
        # A failed row has nothing trustworthy to show; the reason is the point.
        text = reason if not _is_missing(reason) and reason != "" else "unknown error"
        parts.append(f'<p class="error">{_esc(text)}</p>')
    else:
        if not _is_missing(reason) and reason != "":
            parts.append(f'<p class="reason">{_esc(reason)}</p>')
        thumbs = _thumbs(row)
        if thumbs:
            parts.append(thumbs)
        elif status == "ok":
            parts.append('<p class="empty">no preview</p>')
        parts.append(_scores(row))
    parts.append("</article>")
    return "".join(parts)


def render_report(
    rows: Iterable[Mapping[str, Any]],
    summary: Mapping[str, Any],
    *,
    total_rows: int,
    title: str = "colorspark report",
) -> str:
    """One HTML page: summary table, then one card per row.

    ``rows`` is usually a sample of a large run, so ``total_rows`` (the
    run's full count) is used to tell the reader that the gallery is partial
    and where the rest lives.  Every string from a row or the summary is
    escaped: paths come from user file systems and may contain markup.
    """
    row_list = list(rows)
    shown = len(row_list)
    total = max(int(total_rows), shown)
    if total > shown:
        note = f"showing {shown:,} of {total:,} images; see results/ for all"
    else:
        note = f"{shown:,} image{'s' if shown != 1 else ''}"
    cards = "\n".join(_card(row) for row in row_list)
    gallery = f'<div class="gallery">\n{cards}\n</div>' if row_list else '<p class="empty">no images</p>'
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        f"<h1>{_esc(title)}</h1>\n"
        f'<p class="note">{_esc(note)}</p>\n'
        f"<h2>Summary</h2>\n{_summary_table(summary)}\n"
        f"<h2>Images</h2>\n{gallery}\n"
        "</body></html>\n"
    )


def write_report(path: str | os.PathLike[str], html_text: str) -> None:
    """Write the page atomically: readers (or a crashed job) never see half
    a file, because the text goes to a temp file in the same directory (same
    file system) and is then renamed over ``path`` with os.replace."""
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(html_text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; a report is meant to be shared.
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def make_thumbnail(rgb: np.ndarray, max_side: int = 160, quality: int = 80) -> bytes:
    """JPEG bytes of an 8-bit RGB (or gray H×W) image, longest side ≤ max_side.

    Small JPEGs keep the self-contained report light; images already small
    enough are not upscaled.
    """
    img = np.asarray(rgb)
    if img.dtype != np.uint8:
        raise TypeError(f"thumbnail input must be uint8, got dtype {img.dtype}")
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[-1] == 3)):
        raise ValueError(f"thumbnail input must be (H, W) or (H, W, 3), got {img.shape}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError("thumbnail input has no pixels")
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    pil = Image.fromarray(np.ascontiguousarray(img))
    pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()
