"""Self-contained HTML report of a colorization run, built on the driver.

The page is one file with inline CSS, a little inline JavaScript and base64
thumbnails, so it can be copied off a cluster, attached to a ticket or opened
from object storage without anything going missing.  It is written for a
person, not a parser: scores carry names and a line saying what they mean,
the gallery can be sorted by any score, and a click shows an image's input,
colorization and original large, side by side.  The machine-readable numbers
live in results/ and summary.json.
"""

from __future__ import annotations

import base64
import html
import io
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple
from urllib.parse import quote

from PIL import Image

from .metrics import SCORE_KEYS

__all__ = ["render_report"]

_THUMBS = (("thumb_input", "input"), ("thumb_color", "colorized"), ("thumb_reference", "reference"),
           ("thumb_truth", "original"))


class _Metric(NamedTuple):
    key: str
    label: str
    meaning: str
    scale: float
    digits: int
    unit: str
    better: str | None  # "higher" or "lower" when beating the gray baseline that way means the colorizer helped


_METRICS = (
    _Metric("psnr", "PSNR", "Pixel closeness to the original, in decibels; a cautious grayish guess already scores "
            "well.", 1.0, 1, " dB", "higher"),
    _Metric("ssim", "SSIM", "Structural similarity to the original, 0 to 1; it follows lightness, so gray scores "
            "high too.", 1.0, 3, "", "higher"),
    _Metric("auc", "AuC", "Share of pixels whose colour is near the original's, averaged over error thresholds; "
            "100% is perfect.", 100.0, 1, "%", "higher"),
    _Metric("auc_rebal", "Rebalanced AuC", "AuC with rare, saturated colours weighted up, so painting everything "
            "sepia does not pay.", 100.0, 1, "%", "higher"),
    _Metric("colourfulness", "Colourfulness", "How vivid the colours are (Hasler & Süsstrunk); gray is 0, so "
            "compare it with the original's.", 1.0, 1, "", None),
    _Metric("cast", "Colour cast", "How far the average colour is from the original's (a tint over the whole photo); "
            "0 is none.", 1.0, 1, "", "lower"),
)
_BY_KEY = {metric.key: metric for metric in _METRICS}
_TRUTH_KEY = "colourfulness_truth"  # shown in the row after its metric's
_TRUTH_LABEL = "Colourfulness of the original"
_TRUTH_MEANING = "How vivid the real colours are: what the colorized photo should come close to."


def _sort_label(key: str) -> str:
    for suffix, side in (("_truth", "original"), ("_gray", "gray baseline")):
        if key.endswith(suffix):
            return f"{_BY_KEY[key.removesuffix(suffix)].label}, {side}"
    return f"{_BY_KEY[key].label}, colorized"


# Built from metrics.SCORE_KEYS at import, so a new score without a label here fails loudly instead of
# showing up under its raw key.
_SORT_LABELS = {key: _sort_label(key) for key in SCORE_KEYS}

# summary.json keys (see colorize.summarize) with the name a reader knows them by and how to show the value.
_FACTS = {
    "inputs": ("Images", "count"),
    "ok": ("Colorized", "count"),
    "errors": ("Failed", "count"),
    "skipped": ("Skipped", "count"),
    "scored": ("Scored against an original", "count"),
    "seconds": ("Run time", "duration"),
    "images_per_second": ("Throughput", "rate"),
    "mean_millis_per_image": ("Mean time per image", "millis"),
    "model_builds": ("Model builds", "count"),
    "cast_ratio": ("Colour cast vs the gray baseline", "ratio"),
    "model": ("Model", "text"),
    "devices": ("Devices", "text"),
    "colorspark_version": ("colorspark version", "text"),
}

_CSS = """
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;padding:24px;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1f2328;background:#f4f5f7}
h1{margin:0 0 4px;font-size:22px}
h2{margin:24px 0 8px;font-size:17px}
.note{color:#57606a;margin:0 0 12px}
table{border-collapse:collapse}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:8px;margin:0}
.facts div{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;min-width:0}
.facts dt{color:#57606a;font-size:12px}
.facts dd{margin:0;font-size:18px;font-weight:600;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
.facts dd.text{font:13px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.facts .bad dd{color:#cf222e}
.settings{color:#57606a;font-size:12px;margin:8px 0 0;overflow-wrap:anywhere}
.settings span{font-weight:600}
.means{background:#fff;border:1px solid #d0d7de;border-radius:6px}
.means th,.means td{padding:6px 12px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
.means td{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.means td[colspan]{text-align:center}
.means td.meaning{text-align:left;white-space:normal;color:#57606a;font-size:13px;max-width:560px}
.better{color:#1a7f37;font-weight:600}.worse{color:#cf222e;font-weight:600}
.sortbar{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:0 0 12px}
.sortbar select,.sortbar button{font:inherit;padding:2px 6px}
.hint{color:#57606a}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:16px;align-items:start}
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px;min-width:0}
.path{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;
font-weight:600;overflow-wrap:anywhere;margin:0 0 4px}
.meta{color:#57606a;font-size:12px;margin:0 0 8px}
.badge{display:inline-block;padding:0 6px;border-radius:10px;font-size:11px;font-weight:600;
text-transform:uppercase;color:#fff;margin-right:6px}
.st-ok{background:#1a7f37}.st-error{background:#cf222e}.st-skipped{background:#6e7781}
.st-other{background:#9a6700}
.video-gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}
.poster{display:flex;gap:6px;align-items:flex-end}.poster>img{flex:1 1 0;min-width:0}
.poster img{max-width:100%;height:auto}.poster figure{margin:0;flex:none}.strip{display:flex;gap:2px;margin-top:4px}
.strip img{flex:1 1 0;min-width:0;max-width:100%;height:auto}
.thumbs{display:flex;gap:6px;align-items:flex-end;cursor:zoom-in;border-radius:4px}
.thumbs:focus-visible{outline:2px solid #0969da;outline-offset:2px}
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
.scores td[colspan]{text-align:center}
.scores thead th{text-align:right}.scores thead th:first-child{text-align:left}
.viewer{position:fixed;inset:0;z-index:10;display:flex;align-items:center;justify-content:center;
padding:24px;background:rgba(13,17,23,.85)}
.viewer-box{background:#fff;border-radius:8px;padding:16px;width:min(1500px,100%);max-height:100%;overflow:auto}
.viewer-head{display:flex;justify-content:space-between;align-items:flex-start;gap:12px}
.viewer-close{font-size:24px;line-height:1;border:0;background:none;cursor:pointer;padding:0 4px}
.viewer-images{display:flex;gap:12px;margin:8px 0}
.viewer-images figure{flex:1 1 0}
.viewer-images figure img{width:100%;height:auto;max-height:calc(100vh - 280px);object-fit:contain}
.viewer-images figcaption{font-size:13px}
.viewer-scores .scores{max-width:520px}
"""

# Sorting reorders the cards already in the page; the viewer copies a card's thumbnails (the only image data
# the page has) into an overlay.  Text is moved with textContent and cloneNode, never parsed as HTML, so the
# escaping done in Python holds.  Without JavaScript the gallery still shows, in path order.
_SCRIPT = """
(() => {
  const gallery = document.querySelector(".gallery");
  const key = document.getElementById("sort-key");
  const dir = document.getElementById("sort-dir");
  const viewer = document.getElementById("viewer");
  const cards = Array.from(gallery.children);
  let descending = false;
  let current = null;

  function valueOf(card, k) {
    const raw = card.getAttribute("data-" + k);
    return raw === null ? null : k === "name" ? raw : Number(raw);
  }
  function sortCards() {
    const k = key.value;
    dir.textContent = k === "name" ? (descending ? "Z \\u2192 A" : "A \\u2192 Z")
                                   : (descending ? "highest first" : "lowest first");
    const rows = cards.map((card, i) => ({card, i, v: valueOf(card, k)}));
    rows.sort((a, b) => {
      if (a.v === null || b.v === null) return (a.v === null) - (b.v === null) || a.i - b.i;  // missing last
      const c = k === "name" ? a.v.localeCompare(b.v, undefined, {numeric: true}) : (a.v > b.v) - (a.v < b.v);
      return (descending ? -c : c) || a.i - b.i;
    });
    gallery.append(...rows.map((r) => r.card));
  }
  function show(card) {
    current = card;
    const path = card.querySelector(".path");
    viewer.querySelector(".viewer-title").textContent = path.title || path.textContent;
    const figures = Array.from(card.querySelectorAll(".thumbs figure"), (f) => f.cloneNode(true));
    figures.forEach((f) => { f.querySelector("img").loading = "eager"; });
    viewer.querySelector(".viewer-images").replaceChildren(...figures);
    const scores = card.querySelector(".scores");
    viewer.querySelector(".viewer-scores").replaceChildren(...(scores ? [scores.cloneNode(true)] : []));
    viewer.hidden = false;
    viewer.querySelector(".viewer-close").focus();
  }
  function hide() {
    viewer.hidden = true;
    current.querySelector(".thumbs").focus();
    current = null;
  }
  function step(delta) {
    const shown = Array.from(gallery.querySelectorAll(".thumbs"), (t) => t.closest(".card"));
    const next = shown[shown.indexOf(current) + delta];
    if (next) show(next);
  }

  key.addEventListener("change", () => { descending = key.value !== "name"; sortCards(); });
  dir.addEventListener("click", () => { descending = !descending; sortCards(); });
  gallery.addEventListener("click", (e) => {
    const thumbs = e.target.closest(".thumbs");
    if (thumbs) show(thumbs.closest(".card"));
  });
  gallery.addEventListener("keydown", (e) => {
    if ((e.key === "Enter" || e.key === " ") && e.target.matches(".thumbs")) {
      e.preventDefault();
      show(e.target.closest(".card"));
    }
  });
  viewer.addEventListener("click", (e) => {
    if (e.target === viewer || e.target.closest(".viewer-close")) hide();
  });
  document.addEventListener("keydown", (e) => {
    if (viewer.hidden) return;
    if (e.key === "Escape") hide();
    else if (e.key === "ArrowRight") step(1);
    else if (e.key === "ArrowLeft") step(-1);
  });
  document.getElementById("sortbar").hidden = false;
  sortCards();
})();
"""

_VIEWER = (
    '<div id="viewer" class="viewer" role="dialog" aria-modal="true" aria-labelledby="viewer-title" hidden>'
    '<div class="viewer-box"><div class="viewer-head"><p id="viewer-title" class="path viewer-title"></p>'
    '<button type="button" class="viewer-close" aria-label="Close">×</button></div>'
    '<div class="viewer-images"></div><div class="viewer-scores"></div>'
    '<p class="note">Enlarged from the report\'s thumbnails; each card links its full-size files. '
    "← → previous / next, Esc closes.</p></div></div>"
)


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


def _is_number(value: Any) -> bool:
    """A real number (not a bool, which is one to Python but not to a reader), possibly inf or nan."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _has_number(value: Any) -> bool:
    return _is_number(value) and not math.isnan(value)


def _plain(value: Any) -> str:
    """A value with no known meaning: integers with thousands separators, floats to 3 decimals,
    ∞ for inf, "–" for None/nan so a missing value looks missing rather than zero."""
    if _is_missing(value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return f"{v:,.3f}"
    return _esc(value)


def _millis_text(millis: float) -> str:
    # Sub-10 ms values (skips, decode errors) would all read "0 ms" otherwise.
    return f"{millis:.1f} ms" if millis < 10 else f"{millis:,.0f} ms"


def _duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _fact_text(kind: str, value: Any) -> str:
    if kind == "text" or not _is_number(value) or not math.isfinite(value):
        return _plain(value)
    v = float(value)
    if kind == "duration":
        return _duration_text(v)
    if kind == "rate":
        return f"{v:,.1f} images/s" if v >= 10 else f"{v:.2f} images/s"
    if kind == "millis":
        return _millis_text(v)
    if kind == "ratio":
        return f"{v:.2f}×"
    return _plain(value)


def _score_text(metric: _Metric, value: Any) -> str:
    """PSNR as "24.5 dB", SSIM to 3 decimals, AuC as a percentage; ∞ is a perfect PSNR, "–" not measured."""
    if not _has_number(value):
        return _plain(value)
    v = float(value) * metric.scale
    if math.isinf(v):
        return ("∞" if v > 0 else "−∞") + metric.unit
    return f"{v:.{metric.digits}f}{metric.unit}"


def _cue(metric: _Metric, model: Any, gray: Any) -> str:
    """Class attribute for the colorized value: green where it beats doing nothing, red where it is worse."""
    if not (metric.better and _has_number(model) and _has_number(gray)) or model == gray:
        return ""
    return ' class="better"' if (model > gray) == (metric.better == "higher") else ' class="worse"'


def _score_table(values: Mapping[str, Any], *, css: str, explain: bool) -> str:
    """Colorized and gray baseline side by side, one row per score.

    ``explain`` adds a column saying what each score means (the summary);
    the cards, which repeat the table per image, carry it as a tooltip.
    """
    def label(text: str, meaning: str) -> str:
        return f"<th>{_esc(text)}</th>" if explain else f'<th title="{_esc(meaning)}">{_esc(text)}</th>'

    def meaning(text: str) -> str:
        return f'<td class="meaning">{_esc(text)}</td>' if explain else ""

    body = []
    for metric in _METRICS:
        model, gray = values.get(metric.key), values.get(metric.key + "_gray")
        body.append(
            f"<tr>{label(metric.label, metric.meaning)}<td{_cue(metric, model, gray)}>{_score_text(metric, model)}"
            f"</td><td>{_score_text(metric, gray)}</td>{meaning(metric.meaning)}</tr>"
        )
        if metric.key + "_truth" == _TRUTH_KEY:
            truth = _score_text(metric, values.get(_TRUTH_KEY))
            body.append(f'<tr>{label(_TRUTH_LABEL, _TRUTH_MEANING)}<td colspan="2">{truth}</td>'
                        f"{meaning(_TRUTH_MEANING)}</tr>")
    head = "<th>Score</th><th>Colorized</th><th>Gray baseline</th>" + ("<th>What it means</th>" if explain else "")
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _fact_label(key: Any) -> str:
    if key in _FACTS:
        return _FACTS[key][0]
    text = str(key).replace("_", " ")
    return text[:1].upper() + text[1:]


def _facts(summary: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(one tile per scalar and for the devices, one compact line per nested mapping such as the rendering
    settings), the mean scores aside."""
    tiles, lines = [], []
    for key, value in summary.items():
        if key == "mean_scores":
            continue
        if isinstance(value, Mapping):
            lines.append(_settings_line(key, value))
            continue
        kind = _FACTS[key][1] if key in _FACTS else "plain"
        bad = ' class="bad"' if key == "errors" and _has_number(value) and value > 0 else ""
        devices = key == "devices" and isinstance(value, list)
        text_cls = ' class="text"' if isinstance(value, str) or devices else ""
        text = _devices_text(value) if devices else _fact_text(kind, value)
        tiles.append(f"<div{bad}><dt>{_esc(_fact_label(key))}</dt><dd{text_cls}>{text}</dd></div>")
    return tiles, lines


def _settings_line(key: Any, values: Mapping[str, Any]) -> str:
    """`Rendering: temperature 0.380 · input size 64 · ...`: settings a reader looks up now and then, in one line."""
    items = " · ".join(f"{_esc(str(sub).replace('_', ' ') if str(sub).isidentifier() else sub)} {_plain(value)}"
                       for sub, value in values.items())
    return f'<p class="settings"><span>{_esc(_fact_label(key))}:</span> {items or "–"}</p>'


def _devices_text(records: list) -> str:
    """`cpu × 2 workers on host-a`: the devices the Python workers ran on, from the summary's (worker, device)
    records (worker = host:pid)."""
    workers: dict[str, set] = {}
    for record in records:
        if isinstance(record, Mapping):
            workers.setdefault(str(record.get("device") or "unknown"), set()).add(str(record.get("worker")))
    if not workers:
        return "–"
    hosts = sorted({worker.rsplit(":", 1)[0] for group in workers.values() for worker in group})
    text = ", ".join(f"{device} × {len(group)} worker{'s' if len(group) != 1 else ''}"
                     for device, group in sorted(workers.items()))
    return _esc(f"{text} on {', '.join(hosts)}")


def _summary(summary: Mapping[str, Any]) -> str:
    if not summary:
        return '<h2>Summary</h2>\n<p class="empty">no summary</p>'
    tiles, lines = _facts(summary)
    parts = ["<h2>Summary</h2>"]
    if tiles:
        parts.append(f'<dl class="facts">{"".join(tiles)}</dl>')
    parts += lines
    if "mean_scores" in summary:
        means = summary["mean_scores"] if isinstance(summary["mean_scores"], Mapping) else {}
        parts.append("<h2>Mean scores</h2>")
        if all(_is_missing(means.get(key)) for key in SCORE_KEYS):
            parts.append('<p class="empty">No image had a colour original, so there is nothing to score against.</p>')
        else:
            scored = summary.get("scored")
            counted = _is_number(scored) and isinstance(scored, numbers.Integral)
            over = f"the {scored:,} images" if counted else "the images"
            parts.append(
                f'<p class="note">Averaged over {over} that had a colour original.  The gray baseline is the same '
                "photo with no colour added: a colorizer is only useful where it beats it "
                '(<span class="better">green</span>; <span class="worse">red</span> where it does worse).</p>'
            )
            parts.append(_score_table(means, css="means", explain=True))
    return "\n".join(parts)


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
    return (
        '<div class="thumbs" role="button" tabindex="0" title="Show input, colorized and original large">'
        f'{"".join(figures)}</div>'
    )


def _scores(row: Mapping[str, Any]) -> str:
    if all(_is_missing(row.get(key)) for key in SCORE_KEYS):
        return ""
    return _score_table(row, css="scores", explain=False)


def _size(row: Mapping[str, Any]) -> str:
    width, height = row.get("width"), row.get("height")
    if _is_missing(width) or _is_missing(height):
        return ""
    return f"{_dim(width)}×{_dim(height)}"


def _dim(value: Any) -> str:
    return str(int(value)) if isinstance(value, numbers.Integral) else _esc(value)


def _millis(row: Mapping[str, Any]) -> str:
    millis = row.get("millis")
    return "– ms" if _is_missing(millis) else _millis_text(float(millis))


def _sort_value(value: Any) -> str | None:
    """A number as JavaScript's Number() reads it back exactly; None when there is nothing to sort by."""
    if not _has_number(value):
        return None
    v = float(value)
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return repr(v)


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
    if not _is_missing(row.get("reference")):
        meta += f" · reference {_esc(row['reference'])}"
        if row.get("reference_looks_wrong"):
            meta += f" (looks wrong for this image: divergence {float(row['reference_divergence']):.2f})"
    meta += _full_size_links(row)

    data = {"millis": _sort_value(row.get("millis"))}
    if status != "error":  # a failed row's numbers are not to be trusted, so it sorts with the missing ones
        data |= {key: _sort_value(row.get(key)) for key in SCORE_KEYS}
    attrs = f' data-name="{_esc(shown)}"' + "".join(f' data-{k}="{v}"' for k, v in data.items() if v is not None)
    parts = [
        f'<article class="card"{attrs}><p class="path"{title}>{_esc(shown)}</p>',
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


def _full_size_links(row: Mapping[str, Any]) -> str:
    """Links to the full-resolution files: the colorized JPEG by its path below the output folder (relative, so the
    link works wherever the folder is opened or copied), and the input where it is a local file."""
    links = []
    jpeg_href = row.get("jpeg_href")
    if jpeg_href:
        links.append(f'<a href="{_esc(quote(str(jpeg_href)))}">colorized, full size</a>')
    path = str(row.get("path") or "")
    if path.startswith("file:"):
        local = "/" + path[len("file:"):].lstrip("/")
        label = "original, full size" if row.get("has_truth") else "input, full size"
        links.append(f'<a href="file://{_esc(quote(local))}">{label}</a>')
    return "".join(f" · {link}" for link in links)


def _gallery(rows: list[Mapping[str, Any]]) -> str:
    """The cards, with the sort controls and the large-image viewer the script drives.

    Only scores that some row has are offered for sorting; the controls stay
    hidden until the script runs, so a browser without JavaScript shows no dead buttons.
    """
    if not rows:
        return '<p class="empty">no images</p>'
    scored = [row for row in rows if row.get("status") != "error"]  # as in _card: failed rows carry no scores
    offered = [key for key in SCORE_KEYS if any(_has_number(row.get(key)) for row in scored)]
    options = "".join(f'<option value="{key}">{_esc(_SORT_LABELS[key])}</option>' for key in offered)
    scores = f'<optgroup label="Scores">{options}</optgroup>' if options else ""
    sortbar = (
        '<div id="sortbar" class="sortbar" hidden><label for="sort-key">Sort by</label>'
        f'<select id="sort-key"><option value="name">Path</option><option value="millis">Time to colorize</option>'
        f'{scores}</select><button type="button" id="sort-dir"></button>'
        '<span class="hint">Missing values go last; green and red mark where the colorized photo beats or trails '
        'the gray baseline.  Click a picture to see it large.</span></div>'
    )
    cards = "\n".join(_card(row) for row in rows)
    return f'{sortbar}\n<div class="gallery">\n{cards}\n</div>\n{_VIEWER}\n<script>{_SCRIPT}</script>'


def _video_card(row: Mapping[str, Any]) -> str:
    """A video: its poster (the colorized middle frame of the strip), the strip of input and colorized frames, a
    link to the MP4 (relative, like the JPEG links) and its figures."""
    status = str(row.get("status") or "unknown")
    badge_cls = f"st-{status}" if status in ("ok", "error", "skipped") else "st-other"
    facts = [f"{int(row['frames']):,} frames" if _has_number(row.get("frames")) else "",
             f"{float(row['fps']):.3g} fps" if _has_number(row.get("fps")) else "", _size(row),
             f"{int(row['frames_lost']):,} lost" if _has_number(row.get("frames_lost")) and row["frames_lost"] else "",
             *(f"{label} {float(row[key]):.2e}" for key, label in (("warp_error_chroma", "chroma warping error"),
                                                                   ("warp_error_rgb", "RGB warping error"),
                                                                   ("cdc", "CDC")) if _has_number(row.get(key)))]
    link = f' · <a href="{_esc(quote(str(row["video_href"])))}">MP4</a>' if row.get("video_href") else ""
    parts = [f'<article class="card"><p class="path" title="{_esc(row.get("path"))}">{_esc(row.get("relative_path"))}'
             f'</p><p class="meta"><span class="badge {badge_cls}">{_esc(status)}</span> '
             f'{_esc(" · ".join(f for f in facts if f))}{link}{_video_reference(row)}</p>']
    for key, css in (("error", "error" if status == "error" else "reason"), ("note", "reason")):
        if not _is_missing(row.get(key)) and row.get(key):
            parts.append(f'<p class="{css}">{_esc(row[key])}</p>')
    thumbs = list(row.get("thumbs") or [])
    if thumbs:
        reference = row.get("thumb_reference")
        beside = (f"<figure>{_img(reference, 'reference')}<figcaption>reference</figcaption></figure>"
                  if reference else "")
        parts.append(f'<div class="poster">{_img(thumbs[len(thumbs) // 2][1], "poster")}{beside}</div>')
        for index, label in ((0, "input"), (1, "colorized")):
            figures = "".join(_img(pair[index], label) for pair in thumbs)
            parts.append(f'<div class="strip" title="{label}">{figures}</div>')
    if status != "error":
        parts.append(_scores(row))
    parts.append("</article>")
    return "".join(parts)


def _video_reference(row: Mapping[str, Any]) -> str:
    """The meta line's mention of the video's reference, and of its looking wrong, as on a photo's card."""
    if _is_missing(row.get("reference")):
        return ""
    text = f" · reference {_esc(row['reference'])}"
    if row.get("reference_looks_wrong"):
        text += (f" (looks wrong for this video: mean divergence over its frames "
                 f"{float(row['reference_divergence']):.2f})")
    return text


def _videos(rows: list[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    cards = "\n".join(_video_card(row) for row in rows)
    return f'<h2>Videos</h2>\n<div class="video-gallery">\n{cards}\n</div>\n'


def render_report(
    rows: Iterable[Mapping[str, Any]],
    summary: Mapping[str, Any],
    *,
    total_rows: int,
    title: str = "colorspark report",
    videos: Iterable[Mapping[str, Any]] = (),
) -> str:
    """One HTML page: the run's figures and mean scores, then one card per row.

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
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        f"<h1>{_esc(title)}</h1>\n"
        f'<p class="note">{_esc(note)}</p>\n'
        f"{_summary(summary)}\n"
        f"{_videos(list(videos))}"
        f"<h2>Images</h2>\n{_gallery(row_list)}\n"
        "</body></html>\n"
    )
