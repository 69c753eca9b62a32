"""jobs/colorize.py end to end on local[2] with the shipped default model: good and bad inputs, sizes, Lab arrays,
scores against the truth, the report, --resume, Lab formats, hostile names, and one model build per worker."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from imagefactory import colour_photo, make_image_zoo, write_image
from PIL import Image

from colorspark import fs, labarrays
from colorspark.colorspace import rgb_to_l
from colorspark.decode import decode_image
from colorspark.metrics import SCORE_KEYS

pytestmark = pytest.mark.spark

PARTITIONS = 6


def _results(out: Path) -> dict[str, dict]:
    return {r["relative_path"]: r for r in pq.read_table(out / "results").to_pylist()}


@pytest.fixture(scope="module")
def colorized(tmp_path_factory, run_job):
    root = tmp_path_factory.mktemp("colorize")
    images = root / "images"
    expect = make_image_zoo(images)
    write_image(images / "big colour.png", colour_photo(300, 200, seed=3))
    expect["big colour.png"] = type(next(iter(expect.values())))(ok=True, width=300, height=200)
    out = root / "out"
    proc = run_job("colorize", "--input", images, "--output", out, "--set", f"colorize.partitions={PARTITIONS}",
                   "--set", "colorize.batch_size=3")
    assert proc.returncode == 0, proc.log
    return {"images": images, "out": out, "expect": expect, "log": proc.log}


def test_one_result_row_per_input(colorized):
    rows = _results(colorized["out"])
    assert set(rows) == set(colorized["expect"])
    for rel, e in colorized["expect"].items():
        assert rows[rel]["status"] == ("ok" if e.ok else "error"), (rel, rows[rel]["error"])
        if not e.ok:
            assert e.reason in rows[rel]["error"].lower() and rows[rel]["jpeg_path"] is None
    summary = json.loads((colorized["out"] / "summary.json").read_text())
    assert summary["inputs"] == len(colorized["expect"])
    assert summary["ok"] + summary["errors"] == summary["inputs"]


def test_outputs_have_the_input_size_exif_included(colorized):
    rows = _results(colorized["out"])
    for rel, e in colorized["expect"].items():
        if not e.ok:
            continue
        row = rows[rel]
        jpeg = Path(row["jpeg_path"])
        assert jpeg.is_relative_to(colorized["out"] / "jpeg") and jpeg.suffix == ".jpg"
        with Image.open(jpeg) as im:
            assert im.size == (e.width, e.height), rel
        assert (row["width"], row["height"]) == (e.width, e.height)
    assert rows["exif_rotated.jpg"]["width"] == 24 and rows["exif_rotated.jpg"]["height"] == 40


def test_lab_arrays_keep_the_original_lightness(colorized):
    rows = _results(colorized["out"])
    for rel in ("big colour.png", "gray_photo.jpg", "exif_rotated.jpg", "nested/deeper/inner.png"):
        stored = np.load(rows[rel]["lab_path"])
        rgb = decode_image((colorized["images"] / rel).read_bytes(), max_pixels=10**8, max_bytes=10**8)
        assert stored.dtype == np.uint8 and stored.shape == rgb.shape  # lab8, the default encoding
        lab = labarrays.decode(stored)
        np.testing.assert_allclose(lab[..., 0], rgb_to_l(rgb), atol=0.5 / 2.55 + 1e-3)
        assert stored[..., 1:].min() > 0 and stored[..., 1:].max() < 255  # ab inside the 8-bit range, not clipped


def test_colour_inputs_are_scored_against_their_truth(colorized):
    rows = _results(colorized["out"])
    scored = rows["big colour.png"]
    assert scored["has_truth"]
    for key in SCORE_KEYS:
        assert scored[key] is not None and np.isfinite(scored[key]), key
    assert scored["colourfulness_gray"] < 1.0 < scored["colourfulness_truth"]
    gray = rows["gray_photo.jpg"]
    assert not gray["has_truth"] and gray["psnr"] is None
    summary = json.loads((colorized["out"] / "summary.json").read_text())
    assert summary["scored"] == sum(1 for r in rows.values() if r["has_truth"])
    assert summary["mean_scores"]["auc_gray"] is not None


def test_summary_and_report_give_the_cast_ratio_of_the_mean_casts(colorized):
    scored = [r for r in _results(colorized["out"]).values() if r["has_truth"] and r["status"] == "ok"]
    assert scored and all(r["cast"] >= 0 and r["cast_gray"] >= 0 for r in scored)
    summary = json.loads((colorized["out"] / "summary.json").read_text())
    expected = np.mean([r["cast"] for r in scored]) / np.mean([r["cast_gray"] for r in scored])
    assert summary["cast_ratio"] == pytest.approx(expected, rel=1e-9)
    html = (colorized["out"] / "report.html").read_text()
    assert "Colour cast vs the gray baseline" in html and f"{summary['cast_ratio']:.2f}×" in html
    assert ">Colour cast</th>" in html


def test_the_model_is_built_once_per_python_worker(colorized):
    rows = _results(colorized["out"])
    workers = {r["worker"] for r in rows.values() if r["worker"]}
    summary = json.loads((colorized["out"] / "summary.json").read_text())
    # local[2]: at most two Python workers for six partitions, so tasks reused the model their worker had built
    assert 1 <= summary["model_builds"] <= len(workers) <= 2


def test_the_summary_records_the_rendering_with_the_models_own_temperature(colorized):
    rendering = json.loads((colorized["out"] / "summary.json").read_text())["rendering"]
    shipped = json.loads((Path(__file__).resolve().parents[1] / "models" / "small" / "colorspark.json").read_text())
    assert rendering["temperature"] == shipped["temperature"] and rendering["input_size"] == shipped["input_size"]
    assert rendering["batch_size"] == 3 and rendering["upsample"] == "bilinear"


def test_report_is_self_contained(colorized):
    html = (colorized["out"] / "report.html").read_text()
    assert "big colour.png" in html and "empty.jpg" in html
    assert html.count("data:image/jpeg;base64,") >= 2 * len([e for e in colorized["expect"].values() if e.ok])
    assert "http://" not in html and "https://" not in html


def test_no_temp_files_and_nothing_outside_out(colorized):
    out = colorized["out"]
    assert [p for p in out.rglob("*") if p.name.startswith(fs.TMP_MARK)] == []
    assert sorted(p.name for p in out.parent.iterdir()) == ["images", "out"]  # the inputs are untouched beside it
    rows = _results(out)
    n_ok = sum(r["status"] == "ok" for r in rows.values())
    assert len(list((out / "jpeg").rglob("*.jpg"))) == n_ok
    assert len(list((out / "lab").rglob("*.npy"))) == n_ok


def test_resume_does_no_work(colorized, run_job):
    out = colorized["out"]
    before = {p: p.stat().st_mtime_ns for p in (out / "jpeg").rglob("*.jpg")}
    proc = run_job("colorize", "--input", colorized["images"], "--output", out, "--resume")
    assert proc.returncode == 0, proc.log
    rows = _results(out)
    assert len(rows) == len(colorized["expect"])
    assert {r["status"] for r in rows.values()} == {"skipped", "error"}
    assert {p: p.stat().st_mtime_ns for p in (out / "jpeg").rglob("*.jpg")} == before
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] == 0 and summary["skipped"] == len(before) and summary["model_builds"] == 0


@pytest.mark.parametrize("fmt, encoding", [("hdf5", "float16"), ("mat", "float32"), ("none", "lab8")])
def test_other_lab_formats(fmt, encoding, run_job, tmp_path):
    for i in range(3):
        write_image(tmp_path / "in" / f"p{i}.png", colour_photo(40 + i, 30, seed=i))
    out = tmp_path / "out"
    proc = run_job("colorize", "--input", tmp_path / "in", "--output", out, "--lab-format", fmt,
                   "--lab-encoding", encoding, "--set", f"colorize.keep_aspect={str(fmt == 'none').lower()}",
                   "--set", "colorize.temperature=0.5")
    assert proc.returncode == 0, proc.log
    rows = _results(out)
    rendering = json.loads((out / "summary.json").read_text())["rendering"]
    assert rendering["temperature"] == 0.5 and rendering["keep_aspect"] == (fmt == "none")
    if fmt == "hdf5":
        shards = list((out / "lab").glob("*.h5"))
        names = []
        for shard in shards:
            with h5py.File(shard, "r") as h5:
                names += list(h5.keys())
                assert all(h5[n].shape[-1] == 3 and h5[n].dtype == np.float16 for n in h5)
                assert {h5[n].attrs["encoding"] for n in h5} == {"float16"}
        assert sorted(names) == ["p0", "p1", "p2"]
    elif fmt == "mat":
        from scipy.io import loadmat

        mat = loadmat(out / "lab" / "p1.mat")
        assert mat["lab"].shape == (30, 41, 3) and mat["lab"].dtype == np.float32 and mat["encoding"] == "float32"
    else:
        assert not (out / "lab").exists() and {r["lab_path"] for r in rows.values()} == {None}
    assert len(list((out / "jpeg").glob("*.jpg"))) == 3


def test_hostile_names_stay_inside_out(run_job, tmp_path):
    images = tmp_path / "in"
    # Names starting with '.' or '_' are hidden from Spark's file listing, so '..'-like components never arrive
    # as whole names; these are the odd ones that do (the sanitiser's unit tests cover the rest).
    names = ["a..b.jpg", "%2e%2e%2fescape.png", "-rf .jpg", "a#b?c.png", "ünï cödé/x..png", "x.JPG",
             "back\\slash.png", "colon:name.png", "semi;colon $HOME.png"]
    for i, name in enumerate(names):
        write_image(images / name, colour_photo(20, 16, seed=i), format="PNG")  # some names have no usable suffix
    out = tmp_path / "out"
    proc = run_job("colorize", "--input", images, "--output", out)
    assert proc.returncode == 0, proc.log
    rows = {r["relative_path"]: r for r in pq.read_table(out / "results").to_pylist()}
    assert len(rows) == len(names)
    # Hadoop cannot open a name with ':', but on a local disk the task reads the file itself (colorspark.listing)
    assert all(r["status"] == "ok" for r in rows.values()), rows
    resolved_out = out.resolve()
    for path in out.rglob("*"):
        assert resolved_out in path.resolve().parents
    assert len(list((out / "jpeg").rglob("*.jpg"))) == len(names)
    assert sorted(tmp_path.iterdir()) == sorted([images, out])


def test_references_by_table_and_default_are_recorded_and_a_gray_one_is_refused(run_job, tmp_path):
    """--references maps a file and a folder prefix, --reference covers the rest; results, summary and report say
    which reference each output used. A gray reference ends the job before any work: exit 2, one line."""
    images, refs = tmp_path / "images", tmp_path / "refs"
    for rel in ("a.png", "street/b.png", "street/c.png"):
        write_image(images / rel, colour_photo(40, 32, seed=len(rel)))
    write_image(refs / "red.png", np.full((16, 16, 3), (210, 40, 30), np.uint8))
    (tmp_path / "refs.csv").write_text("path,reference\nstreet,refs/red.png\nstreet/c.png,palette:#2050e0\n")
    out = tmp_path / "out"
    proc = run_job("colorize", "--input", images, "--output", out, "--references", tmp_path / "refs.csv",
                   "--reference", "palette:#30a040,#e0c020", "--set", "colorize.reference_warning=0.001")
    assert proc.returncode == 0, proc.log
    rows = _results(out)
    assert rows["street/b.png"]["reference"] == fs.display(fs.to_uri(str(refs / "red.png")))
    assert rows["street/c.png"]["reference"] == "palette:#2050e0"
    assert rows["a.png"]["reference"] == "palette:#30a040,#e0c020"
    assert all(r["reference_divergence"] > 0.001 and r["reference_looks_wrong"] for r in rows.values())
    assert "reference looks wrong" in proc.log
    summary = json.loads((out / "summary.json").read_text())
    assert sum(summary["references"].values()) == 3 and summary["wrong_references"] == 3
    html = (out / "report.html").read_text()
    assert 'alt="reference"' in html and "palette:#2050e0" in html

    write_image(refs / "gray.png", np.full((16, 16, 3), 120, np.uint8))
    refused = run_job("colorize", "--input", images, "--output", tmp_path / "out2", "--reference", refs / "gray.png")
    assert refused.returncode == 2 and not (tmp_path / "out2").exists()
    assert len([line for line in refused.log.splitlines() if "no colour" in line]) == 1


def test_the_report_names_the_model_and_devices_readably(colorized):
    summary = json.loads((colorized["out"] / "summary.json").read_text())
    assert summary["model"].startswith("shipped models/small (preset small, ")
    html = (colorized["out"] / "report.html").read_text()
    assert "shipped models/small" in html and '<dt>Devices</dt><dd class="text">cpu × ' in html
    assert "{&#x27;worker&#x27;" not in html and "Rendering ·" not in html
