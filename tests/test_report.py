"""Tests for the self-contained HTML report."""

import base64
import html
import io
import math
import os
import re

import numpy as np
import pytest
from PIL import Image
from skimage import data

from colorspark.report import make_thumbnail, render_report, write_report

HOSTILE = "<script>alert(1)</script>.jpg"
_DATA_URI = re.compile(
    r'<img src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)" loading="lazy"'
    r' width="(\d+)" height="(\d+)">'
)


def _scores(**overrides):
    scores = {
        "psnr": 24.5, "psnr_gray": 22.25, "ssim": 0.91, "ssim_gray": 0.88,
        "auc": 0.9, "auc_gray": 0.87, "auc_rebal": 0.61, "auc_rebal_gray": 0.52,
        "colourfulness": 30.0, "colourfulness_gray": 0.5, "colourfulness_truth": 41.0,
    }
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
        "thumb_truth": None, **{k: None for k in _scores()},
    }
    row.update(overrides)
    return row


def _skipped_row():
    return {
        "path": "/data/in/tiny.png", "relative_path": "tiny.png", "status": "skipped",
        "error": "smaller than 8×8", "width": 2, "height": 3, "millis": 0.5,
        "has_truth": False, "thumb_input": None, "thumb_color": None, "thumb_truth": None,
        **{k: None for k in _scores()},
    }


def _page(rows=None, summary=None, total_rows=None):
    rows = rows if rows is not None else [_ok_row(), _error_row(), _skipped_row()]
    summary = summary if summary is not None else {"ok": 1, "error": 1, "skipped": 1}
    return render_report(rows, summary, total_rows=len(rows) if total_rows is None else total_rows)


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


def test_page_is_self_contained():
    page = _page()
    assert "<script" not in page.lower()
    assert not re.search(r'(?:src|href)="(?!data:)', page)
    assert "<link" not in page and "@import" not in page and "url(" not in page


def test_hostile_path_appears_only_escaped():
    page = _page()
    assert HOSTILE not in page
    assert "<script>" not in page
    assert html.escape(HOSTILE) in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.jpg" in page


def test_quotes_cannot_break_out_of_attributes():
    row = _ok_row(path='/x/"onmouseover="alert(1)', relative_path="a'b\".jpg")
    page = _page(rows=[row])
    assert '"onmouseover="' not in page
    assert 'title="/x/&quot;onmouseover=&quot;alert(1)"' in page
    assert "a&#x27;b&quot;.jpg" in page


def test_error_row_shows_reason_in_red_without_thumbnails():
    # Even if an error row carries thumbnails, they are not shown.
    row = _error_row(thumb_color=make_thumbnail(data.chelsea()))
    page = _page(rows=[row])
    assert '<p class="error">cannot identify image file &lt;bad&gt; &amp; &quot;quoted&quot;</p>' in page
    assert re.search(r"\.error\{color:#cf222e", page)
    assert "· 3.0 ms" not in page and "3.0 ms" in page  # unknown size is left out
    assert "<img" not in page
    assert '<table class="scores"' not in page


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


def test_score_table_shows_colorized_gray_and_truth_values():
    page = _page(rows=[_ok_row(psnr=math.inf, ssim=math.nan)])
    table = re.search(r'<table class="scores">.*?</table>', page).group(0)
    assert "<th>colorized</th><th>gray baseline</th>" in table
    assert "<tr><th>PSNR (dB)</th><td>∞</td><td>22.250</td></tr>" in table
    assert "<tr><th>SSIM</th><td>–</td><td>0.880</td></tr>" in table
    assert "<tr><th>AuC rebal.</th><td>0.610</td><td>0.520</td></tr>" in table
    assert "<tr><th>colourfulness</th><td>30.000</td><td>0.500</td></tr>" in table
    assert '<td colspan="2">41.000</td>' in table


def test_rows_without_scores_have_no_score_table():
    row = _ok_row(has_truth=False, **{k: None for k in _scores()})
    page = _page(rows=[row])
    assert '<table class="scores"' not in page
    assert "no original" in page


def test_summary_formats_floats_inf_and_missing_values():
    summary = {
        "rows": 12, "ok": 10, "mean psnr": 23.45678, "best psnr": math.inf,
        "mean ssim": None, "mean auc": math.nan, "mean colourfulness": np.float32(12.5),
        "<b>key</b>": "<i>value</i>",
    }
    page = _page(summary=summary)
    assert "<tr><th>rows</th><td>12</td></tr>" in page
    assert "<tr><th>mean psnr</th><td>23.457</td></tr>" in page
    assert "<tr><th>best psnr</th><td>∞</td></tr>" in page
    assert "<tr><th>mean ssim</th><td>–</td></tr>" in page
    assert "<tr><th>mean auc</th><td>–</td></tr>" in page
    assert "<tr><th>mean colourfulness</th><td>12.500</td></tr>" in page
    assert "<tr><th>&lt;b&gt;key&lt;/b&gt;</th><td>&lt;i&gt;value&lt;/i&gt;</td></tr>" in page


def test_truncated_gallery_says_showing_n_of_m():
    rows = [_ok_row(thumbs=False, relative_path=f"img{i}.jpg") for i in range(3)]
    page = render_report(rows, {}, total_rows=1500)
    assert "showing 3 of 1,500 images; see results/ for all" in page
    full = render_report(rows, {}, total_rows=3)
    assert "showing" not in full


def test_title_is_escaped():
    page = render_report([], {}, total_rows=0, title="run <1> & co")
    assert "<title>run &lt;1&gt; &amp; co</title>" in page
    assert "<h1>run &lt;1&gt; &amp; co</h1>" in page
    assert "no images" in page


def test_write_report_is_atomic_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old", encoding="utf-8")
    page = _page()
    write_report(target, page)
    assert target.read_text(encoding="utf-8") == page
    assert os.listdir(tmp_path) == ["report.html"]
    write_report(str(target), "<p>ü</p>")
    assert target.read_bytes() == "<p>ü</p>".encode("utf-8")
    assert os.listdir(tmp_path) == ["report.html"]


def test_write_report_failure_keeps_old_file_and_removes_temp(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        write_report(target, "lone surrogate \ud800")
    assert target.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["report.html"]


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
