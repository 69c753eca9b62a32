"""Tests for the self-contained HTML report and the thumbnails it embeds."""

import base64
import html
import io
import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image
from skimage import data

from colorspark.metrics import SCORE_KEYS
from colorspark.report import render_report
from colorspark.thumbnails import make_thumbnail

HOSTILE = "<script>alert(1)</script>.jpg"
_DATA_URI = re.compile(
    r'<img src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)" loading="lazy"'
    r' width="(\d+)" height="(\d+)">'
)
_LABELS = ("PSNR", "SSIM", "AuC", "Rebalanced AuC", "Colourfulness", "Colourfulness of the original", "Colour cast")


def _scores(**overrides):
    values = (24.5, 22.25, 0.91, 0.88, 0.9, 0.87, 0.61, 0.52, 30.0, 0.5, 41.0, 4.5, 9.04)
    scores = dict(zip(SCORE_KEYS, values, strict=True))
    scores.update(overrides)
    return scores


def _ok_row(thumbs=True, **overrides):
    astro = data.astronaut()
    row = {
        "path": "/data/in/space/astronaut.png", "relative_path": "space/astronaut.png",
        "status": "ok", "error": None, "width": 512, "height": 512, "millis": 1234.4,
        "has_truth": True,
        "thumb_input": make_thumbnail(astro.mean(axis=2).astype(np.uint8)) if thumbs else None,
        "thumb_color": make_thumbnail(astro) if thumbs else None,
        "thumb_truth": make_thumbnail(astro) if thumbs else None,
        **_scores(),
    }
    row.update(overrides)
    return row


def _error_row(**overrides):
    row = {
        "path": f'/data/in/{HOSTILE}', "relative_path": HOSTILE, "status": "error",
        "error": "cannot identify image file <bad> & \"quoted\"", "width": None, "height": None,
        "millis": 3.0, "has_truth": False, "thumb_input": None, "thumb_color": None,
        "thumb_truth": None, **dict.fromkeys(SCORE_KEYS),
    }
    row.update(overrides)
    return row


def _skipped_row():
    return {
        "path": "/data/in/tiny.png", "relative_path": "tiny.png", "status": "skipped",
        "error": "smaller than 8×8", "width": 2, "height": 3, "millis": 0.5,
        "has_truth": False, "thumb_input": None, "thumb_color": None, "thumb_truth": None,
        **dict.fromkeys(SCORE_KEYS),
    }


def _page(rows=None, summary=None, total_rows=None):
    rows = rows if rows is not None else [_ok_row(), _error_row(), _skipped_row()]
    summary = summary if summary is not None else {"ok": 1, "errors": 1, "skipped": 1}
    return render_report(rows, summary, total_rows=len(rows) if total_rows is None else total_rows)


def _run_summary(**overrides):
    """The shape colorize.summarize writes to summary.json."""
    summary = {
        "inputs": 1503, "ok": 1500, "errors": 2, "skipped": 1, "scored": 1200,
        "mean_scores": _scores(psnr=23.456, ssim=0.87654, auc=0.9123, auc_rebal=None, auc_rebal_gray=None),
        "mean_millis_per_image": 812.34, "seconds": 754.2, "images_per_second": 1.98765,
        "model": "/models/<run 1>", "colorspark_version": "0.1.0", "model_builds": 2, "cast_ratio": 0.4978,
        "devices": [{"worker": "h-a:11", "device": "cpu"}, {"worker": "h-a:12", "device": "cpu"},
                    {"worker": "h-b:7", "device": "gpu:0"}],
        "rendering": {"temperature": 0.38, "input_size": 64, "keep_aspect": True, "upsample": "bilinear"},
    }
    summary.update(overrides)
    return summary


class _Text(HTMLParser):
    """What a reader sees: text outside <script>/<style>, no tags, no attributes."""

    def __init__(self):
        super().__init__()
        self.parts, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style")

    def handle_data(self, text):
        if not self._skip:
            self.parts.append(text)


def _visible_text(page):
    parser = _Text()
    parser.feed(page)
    return " ".join(parser.parts)


def _card(page, name):
    return re.search(rf'<article class="card" data-name="{re.escape(name)}".*?</article>', page).group(0)


def test_page_with_ok_error_and_skipped_rows_renders():
    page = _page()
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    assert page.count('<article class="card"') == 3
    for status in ("ok", "error", "skipped"):
        assert f'class="badge st-{status}">{status}</span>' in page
    assert "space/astronaut.png" in page
    assert "512×512" in page
    assert "1,234 ms" in page
    assert "0.5 ms" in page  # sub-10 ms keeps a decimal instead of reading "0 ms"
    assert "smaller than 8×8" in page  # skipped reason, unicode intact
    assert "<title>colorspark report</title>" in page
    assert "3 images" in page and "showing" not in page


def test_page_is_self_contained_with_one_inline_script():
    page = _page()
    assert page.lower().count("<script") == 1
    assert "<script>" in page  # inline: no src, nothing to fetch
    assert not re.search(r'(?:src|href)="(?!data:)', page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "http://" not in page and "https://" not in page
    # The script moves text with textContent/cloneNode, so nothing escaped here is parsed as markup again.
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page and "document.write" not in page


def test_hostile_path_appears_only_escaped():
    page = _page()
    assert HOSTILE not in page
    assert "<script>alert" not in page
    assert page.lower().count("<script") == 1  # only the report's own
    assert html.escape(HOSTILE) in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in page
    assert 'data-name="&lt;script&gt;alert(1)&lt;/script&gt;.jpg"' in page


def test_quotes_cannot_break_out_of_attributes():
    row = _ok_row(path='/x/"onmouseover="alert(1)', relative_path="a'b\".jpg")
    page = _page(rows=[row])
    assert '"onmouseover="' not in page
    assert 'title="/x/&quot;onmouseover=&quot;alert(1)"' in page
    assert "a&#x27;b&quot;.jpg" in page
    assert 'data-name="a&#x27;b&quot;.jpg"' in page


def test_error_row_shows_reason_in_red_without_thumbnails_or_scores():
    # Even if an error row carries thumbnails and scores, they are neither shown nor sortable.
    row = _error_row(thumb_color=make_thumbnail(data.chelsea()), psnr=30.0)
    page = _page(rows=[row])
    assert '<p class="error">cannot identify image file &lt;bad&gt; &amp; &quot;quoted&quot;</p>' in page
    assert re.search(r"\.error\{color:#cf222e", page)
    assert "· 3.0 ms" not in page and "3.0 ms" in page  # unknown size is left out
    assert "<img" not in page
    assert '<table class="scores"' not in page
    assert "data-psnr=" not in page
    assert 'data-millis="3.0"' in page


def test_thumbnails_embedded_as_lazy_data_uris_that_decode_to_small_jpegs():
    page = _page()
    found = _DATA_URI.findall(page)
    assert [label for _, label, _, _ in found] == ["input", "colorized", "original"]
    assert page.count("<img") == len(found)
    for payload, _, width, height in found:
        with Image.open(io.BytesIO(base64.b64decode(payload, validate=True))) as img:
            assert img.format == "JPEG"
            assert max(img.size) <= 160
            # Declared size matches the image, so lazy loading causes no reflow.
            assert img.size == (int(width), int(height))
    for label in ("input", "colorized", "original"):
        assert f"<figcaption>{label}</figcaption>" in page
    assert re.search(r"max-height:160px", page)


def test_thumbnails_open_the_large_viewer():
    page = _page()
    # The thumbnails are a keyboard-reachable control; the viewer starts hidden and holds no image data
    # of its own (the script copies the card's thumbnails into it).
    assert '<div class="thumbs" role="button" tabindex="0"' in page
    viewer = re.search(r'<div id="viewer".*?</div></div>', page).group(0)
    assert 'role="dialog"' in viewer and " hidden>" in viewer
    assert "<img" not in viewer
    assert 'aria-label="Close"' in viewer
    assert ".viewer-images" in page and "cloneNode" in page and '"Escape"' in page


def test_missing_thumbnails_are_left_out():
    row = _ok_row(thumb_truth=None)
    page = _page(rows=[row])
    assert [m[1] for m in _DATA_URI.findall(page)] == ["input", "colorized"]
    assert "<figcaption>original</figcaption>" not in page


def test_thumbnail_bytes_like_and_undecodable_payloads_still_render():
    jpeg = make_thumbnail(data.coffee())
    row = _ok_row(thumb_input=bytearray(jpeg), thumb_color=memoryview(jpeg), thumb_truth=b"not a jpeg")
    page = _page(rows=[row])
    assert [m[1] for m in _DATA_URI.findall(page)] == ["input", "colorized"]
    garbage = base64.b64encode(b"not a jpeg").decode("ascii")
    assert f'<img src="data:image/jpeg;base64,{garbage}" alt="original" loading="lazy">' in page


def test_score_table_puts_colorized_and_gray_side_by_side_with_rounded_values():
    page = _page(rows=[_ok_row(psnr=math.inf, ssim=math.nan, auc=0.8, colourfulness=30.04)])
    table = re.search(r'<table class="scores">.*?</table>', page).group(0)
    assert "<th>Score</th><th>Colorized</th><th>Gray baseline</th></tr>" in table
    cells = re.findall(r'<tr><th title="[^"]+">([^<]+)</th>(.*?)</tr>', table)
    assert cells == [
        ("PSNR", '<td class="better">∞ dB</td><td>22.2 dB</td>'),  # 22.25 rounds half to even
        ("SSIM", "<td>–</td><td>0.880</td>"),
        ("AuC", '<td class="worse">80.0%</td><td>87.0%</td>'),
        ("Rebalanced AuC", '<td class="better">61.0%</td><td>52.0%</td>'),
        ("Colourfulness", "<td>30.0</td><td>0.5</td>"),  # more colour is not "better" in itself
        ("Colourfulness of the original", '<td colspan="2">41.0</td>'),
        ("Colour cast", '<td class="better">4.5</td><td>9.0</td>'),  # lower is better: less of a tint than gray
    ]
    # Each label carries its one-line meaning as a tooltip.
    assert re.search(r'<th title="[^"]*decibels[^"]*">PSNR</th>', table)
    assert re.search(r'<th title="[^"]*rare, saturated colours[^"]*">Rebalanced AuC</th>', table)


def test_raw_score_keys_are_never_shown_as_labels():
    page = _page(summary=_run_summary())
    text = _visible_text(page).replace("Colour cast", "")  # the label holds the word of its key, "cast"
    for key in SCORE_KEYS:
        assert not re.search(rf"\b{key}\b", text), key
    for label in _LABELS:
        assert f">{label}</th>" in page
    for key in ("inputs", "mean_scores", "mean_millis_per_image", "images_per_second", "colorspark_version",
                "cast_ratio"):
        assert key not in text


@pytest.mark.parametrize(("cast", "cue"), [(3.0, ' class="better"'), (12.0, ' class="worse"'), (9.04, "")])
def test_colour_cast_is_better_below_the_gray_baseline(cast, cue):
    """Unlike the other scores, a smaller cast beats gray: green below gray's, red above, none when equal."""
    table = re.search(r'<table class="scores">.*?</table>', _page(rows=[_ok_row(cast=cast)])).group(0)
    assert re.search(rf">Colour cast</th><td{cue}>{cast:.1f}</td><td>9.0</td></tr>", table)


def test_summary_header_shows_the_cast_ratio_unless_unknown():
    tiles = dict(re.findall(r"<dt>([^<]*)</dt><dd[^>]*>([^<]*)</dd>", _page(summary=_run_summary(cast_ratio=1.034))))
    assert tiles["Colour cast vs the gray baseline"] == "1.03×"
    missing = dict(re.findall(r"<dt>([^<]*)</dt><dd[^>]*>([^<]*)</dd>", _page(summary=_run_summary(cast_ratio=None))))
    assert missing["Colour cast vs the gray baseline"] == "–"


def test_rows_without_scores_have_no_score_table():
    row = _ok_row(has_truth=False, **dict.fromkeys(SCORE_KEYS))
    page = _page(rows=[row])
    assert '<table class="scores"' not in page
    assert "no original" in page


def test_partly_missing_scores_show_as_dashes():
    row = _ok_row(auc_rebal=None, auc_rebal_gray=math.nan, colourfulness_truth=None)
    table = re.search(r'<table class="scores">.*?</table>', _page(rows=[row])).group(0)
    assert re.search(r">Rebalanced AuC</th><td>–</td><td>–</td></tr>", table)
    assert '<td colspan="2">–</td>' in table


def test_summary_shows_run_figures_with_names_and_units():
    page = _page(summary=_run_summary())
    facts = re.search(r'<dl class="facts">.*?</dl>', page).group(0)
    tiles = dict(re.findall(r"<dt>([^<]*)</dt><dd[^>]*>([^<]*)</dd>", facts))
    assert tiles == {
        "Images": "1,503", "Colorized": "1,500", "Failed": "2", "Skipped": "1",
        "Scored against an original": "1,200", "Mean time per image": "812 ms", "Run time": "12 min 34 s",
        "Throughput": "1.99 images/s", "Model": "/models/&lt;run 1&gt;", "colorspark version": "0.1.0",
        "Model builds": "2", "Colour cast vs the gray baseline": "0.50×",
        "Devices": "cpu × 2 workers, gpu:0 × 1 worker on h-a, h-b",
    }
    assert '<div class="bad"><dt>Failed</dt>' in facts  # failures stand out


def test_rendering_settings_are_one_compact_line_after_the_tiles():
    page = _page(summary=_run_summary())
    assert "Rendering ·" not in page
    lines = re.findall(r'<p class="settings">.*?</p>', page)
    assert lines == ['<p class="settings"><span>Rendering:</span> temperature 0.380 · input size 64 · keep aspect '
                     'yes · upsample bilinear</p>']
    assert page.index('<dl class="facts">') < page.index(lines[0]) < page.index("<h2>Mean scores</h2>")


def test_summary_mean_scores_are_one_labelled_table_with_meanings():
    page = _page(summary=_run_summary())
    assert "Averaged over the 1,200 images that had a colour original" in page
    table = re.search(r'<table class="means">.*?</table>', page).group(0)
    assert "<th>Colorized</th><th>Gray baseline</th><th>What it means</th>" in table
    body = table.split("<tbody>")[1]
    rows = re.findall(r"<tr><th>([^<]+)</th>(.*?)<td class=\"meaning\">([^<]+)</td></tr>", body)
    assert [label for label, _, _ in rows] == list(_LABELS)
    values = {label: cells for label, cells, _ in rows}
    assert values["PSNR"] == '<td class="better">23.5 dB</td><td>22.2 dB</td>'
    assert values["SSIM"] == '<td class="worse">0.877</td><td>0.880</td>'  # below the gray baseline
    assert values["AuC"] == '<td class="better">91.2%</td><td>87.0%</td>'
    assert values["Rebalanced AuC"] == "<td>–</td><td>–</td>"
    assert values["Colourfulness of the original"] == '<td colspan="2">41.0</td>'
    assert all(len(meaning) < 120 for _, _, meaning in rows)  # one short line each
    # Not a raw nested table inside a summary cell any more.
    assert not re.search(r"<td[^>]*>\s*<table", page)


def test_summary_with_no_scores_or_none_values_says_so():
    summary = _run_summary(mean_scores=dict.fromkeys(SCORE_KEYS), images_per_second=None, seconds=None, scored=0)
    page = _page(summary=summary)
    assert "nothing to score against" in page
    assert '<table class="means"' not in page
    assert "<dt>Throughput</dt><dd>–</dd>" in page
    assert "<dt>Run time</dt><dd>–</dd>" in page
    assert "nothing to score against" in _page(summary=_run_summary(mean_scores=None))


def test_summary_formats_unknown_keys_floats_inf_and_missing_values():
    summary = {
        "rows": 12, "mean_psnr": 23.45678, "best psnr": math.inf, "mean ssim": None,
        "mean auc": math.nan, "mean colourfulness": np.float32(12.5), "<b>key</b>": "<i>value</i>",
        "per_worker": {"w_1": 3},
    }
    page = _page(summary=summary)
    assert "<dt>Rows</dt><dd>12</dd>" in page
    assert "<dt>Mean psnr</dt><dd>23.457</dd>" in page
    assert "<dt>Best psnr</dt><dd>∞</dd>" in page
    assert "<dt>Mean ssim</dt><dd>–</dd>" in page
    assert "<dt>Mean auc</dt><dd>–</dd>" in page
    assert "<dt>Mean colourfulness</dt><dd>12.500</dd>" in page
    assert '<dt>&lt;b&gt;key&lt;/b&gt;</dt><dd class="text">&lt;i&gt;value&lt;/i&gt;</dd>' in page
    assert '<p class="settings"><span>Per worker:</span> w 1 3</p>' in page
    assert "Mean scores" not in page  # no mean_scores key, no section
    assert "no summary" in _page(summary={})


def test_sort_controls_offer_every_present_score_by_label():
    rows = [_ok_row(thumbs=False, relative_path="a.jpg", auc_rebal=None, auc_rebal_gray=None), _skipped_row()]
    page = _page(rows=rows)
    bar = re.search(r'<div id="sortbar".*?</div>', page).group(0)
    assert " hidden>" in bar  # the script shows it; without JavaScript there are no dead controls
    assert '<button type="button" id="sort-dir">' in bar
    options = re.findall(r'<option value="([^"]+)">([^<]+)</option>', bar)
    assert options == [
        ("name", "Path"), ("millis", "Time to colorize"),
        ("psnr", "PSNR, colorized"), ("psnr_gray", "PSNR, gray baseline"),
        ("ssim", "SSIM, colorized"), ("ssim_gray", "SSIM, gray baseline"),
        ("auc", "AuC, colorized"), ("auc_gray", "AuC, gray baseline"),
        # No row has a rebalanced AuC, so there is nothing to sort by.
        ("colourfulness", "Colourfulness, colorized"), ("colourfulness_gray", "Colourfulness, gray baseline"),
        ("colourfulness_truth", "Colourfulness, original"),
        ("cast", "Colour cast, colorized"), ("cast_gray", "Colour cast, gray baseline"),
    ]


def test_cards_carry_full_precision_numbers_for_sorting():
    rows = [
        _ok_row(thumbs=False, relative_path="best.jpg", psnr=math.inf, ssim=0.123456789, auc_rebal=math.nan,
                auc_rebal_gray=None),
        _skipped_row(),
    ]
    page = _page(rows=rows)
    best = _card(page, "best.jpg")
    assert 'data-psnr="Infinity"' in best  # what JavaScript's Number() reads back as infinity
    assert 'data-psnr_gray="22.25"' in best
    assert 'data-ssim="0.123456789"' in best  # unrounded, so ties in the shown figures still sort right
    assert 'data-colourfulness_truth="41.0"' in best
    assert 'data-millis="1234.4"' in best
    assert "data-auc_rebal=" not in best and "data-auc_rebal_gray=" not in best  # missing values sort last
    skipped = _card(page, "tiny.png")
    assert 'data-millis="0.5"' in skipped
    assert not re.search(r"data-(?:psnr|ssim|auc|colourfulness)", skipped)


def test_truncated_gallery_says_showing_n_of_m():
    rows = [_ok_row(thumbs=False, relative_path=f"img{i}.jpg") for i in range(3)]
    page = render_report(rows, {}, total_rows=1500)
    assert "showing 3 of 1,500 images; see results/ for all" in page
    full = render_report(rows, {}, total_rows=3)
    assert "showing" not in full


def test_title_is_escaped_and_an_empty_page_has_no_controls():
    page = render_report([], {}, total_rows=0, title="run <1> & co")
    assert "<title>run &lt;1&gt; &amp; co</title>" in page
    assert "<h1>run &lt;1&gt; &amp; co</h1>" in page
    assert "no images" in page
    assert "no summary" in page
    assert "<script" not in page and 'id="sortbar"' not in page and 'id="viewer"' not in page


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((512, 512, 3), (160, 160)), ((300, 451, 3), (160, 106)), ((4000, 60, 3), (2, 160)),
     ((100, 50, 3), (50, 100)), ((200, 400), (160, 80)), ((90, 40, 1), (40, 90))],
)
def test_make_thumbnail_sizes(shape, expected):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=shape, dtype=np.uint8)
    thumb = make_thumbnail(img)
    with Image.open(io.BytesIO(thumb)) as decoded:
        assert decoded.format == "JPEG"
        assert decoded.size == expected


def test_make_thumbnail_rejects_float_images():
    with pytest.raises(TypeError):
        make_thumbnail(np.zeros((10, 10, 3)))
    with pytest.raises(ValueError):
        make_thumbnail(np.zeros((10, 10, 4), dtype=np.uint8))


def test_cards_link_the_full_size_files():
    from colorspark.report import render_report

    row = {"path": "file:/data/in/a b.png", "relative_path": "a b.png", "status": "ok", "has_truth": True,
           "jpeg_href": "jpeg/a b.jpg", "width": 10, "height": 8, "millis": 3.0}
    page = render_report([row], {"inputs": 1}, total_rows=1)
    assert '<a href="jpeg/a%20b.jpg">colorized, full size</a>' in page
    assert '<a href="file:///data/in/a%20b.png">original, full size</a>' in page
    s3_row = {**row, "path": "s3://bucket/in/a.png", "jpeg_href": None, "has_truth": False}
    assert "full size" not in render_report([s3_row], {"inputs": 1}, total_rows=1).split("<h2>Images</h2>")[1]


def test_the_reference_shows_beside_the_output_and_a_wrong_one_is_named():
    swatch = make_thumbnail(np.full((20, 40, 3), (200, 30, 30), np.uint8))
    steered = _ok_row(reference="palette:#c81e1e", reference_divergence=0.3, reference_looks_wrong=False,
                      thumb_reference=swatch)
    doubtful = _ok_row(relative_path="b.png", reference="s3://bucket/<day>.jpg", reference_divergence=2.5,
                       reference_looks_wrong=True, thumb_reference=swatch)
    page = _page([steered, doubtful])
    card = _card(page, "space/astronaut.png")
    assert 'alt="reference"' in card and "reference palette:#c81e1e" in card and "looks wrong" not in card
    assert card.index('alt="colorized"') < card.index('alt="reference"') < card.index('alt="original"')
    other = _card(page, "b.png")
    assert "&lt;day&gt;" in other and "looks wrong for this image: divergence 2.50" in other
