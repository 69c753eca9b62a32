"""colorspark in users' own pipelines: colorize_dataframe, ColorizeTransformer in a Pipeline, the SQL function, the
documented example (docs/dataframe-api.md), and the same bytes as the colorize job."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from imagefactory import colour_photo, write_image
from PIL import Image

from colorspark import labarrays
from colorspark.colorspace import rgb_to_l

pytestmark = pytest.mark.spark

ROOT = Path(__file__).resolve().parent.parent
ADDED = ["colorized_jpeg", "lab", "width", "height", "status", "error"]


def _gray(width: int, height: int, seed: int) -> np.ndarray:
    return np.asarray(Image.fromarray(colour_photo(width, height, seed=seed)).convert("L").convert("RGB"))


def _jpeg_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def spark(py_files):
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (SparkSession.builder.master("local[2]").appName("colorspark-api-tests")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2").getOrCreate())
    session.sparkContext.addPyFile(str(py_files))  # the executors import colorspark from the zip, as users' do
    yield session
    session.stop()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("api-images")
    for i in range(5):
        write_image(root / f"g{i}.jpg", _gray(48 + 8 * i, 40, seed=i), quality=95)
    write_image(root / "colour.png", colour_photo(50, 30, seed=9))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return root


def test_binary_file_frame_keeps_its_columns_and_gets_images(spark, folder):
    import colorspark

    photos = spark.read.format("binaryFile").load(str(folder))
    out = colorspark.colorize_dataframe(photos)
    assert out.columns == photos.columns + ADDED
    rows = {Path(r["path"]).name: r for r in out.collect()}
    originals = {Path(r["path"]).name: r for r in photos.collect()}
    assert sorted(rows) == sorted(originals)
    for name, row in rows.items():
        for column in photos.columns:
            assert row[column] == originals[name][column], (name, column)
    assert rows["broken.jpg"]["status"] == "error" and rows["broken.jpg"]["colorized_jpeg"] is None
    assert rows["broken.jpg"]["error"]
    for name in [n for n in rows if n != "broken.jpg"]:
        row = rows[name]
        assert row["status"] == "ok" and row["error"] is None
        source = np.asarray(Image.open(io.BytesIO(row["content"])).convert("RGB"))
        assert (row["width"], row["height"]) == (source.shape[1], source.shape[0])
        assert Image.open(io.BytesIO(row["colorized_jpeg"])).size == (row["width"], row["height"])
        lab = labarrays.decode(np.load(io.BytesIO(row["lab"])))
        assert lab.shape == (row["height"], row["width"], 3)
        assert np.abs(lab[..., 0] - rgb_to_l(source)).max() <= 0.2  # the input's own lightness, in lab8


def test_table_with_extra_columns_bad_rows_and_order(spark, tmp_path):
    import colorspark

    images = [_jpeg_bytes(_gray(40, 32, seed=i)) for i in range(7)]
    contents = [images[0], None, b"", b"corrupt bytes", *images[1:], images[0]]
    table = pa.table({"id": list(range(len(contents))), "caption": [f"photo {i}" for i in range(len(contents))],
                      "image": pa.array(contents, pa.binary())})
    pq.write_table(table, tmp_path / "images.parquet")
    df = spark.read.parquet(str(tmp_path / "images.parquet")).repartition(3, "caption").sortWithinPartitions("id")
    expected_order = [r["id"] for r in df.select("id").collect()]
    out = colorspark.colorize_dataframe(df, image_col="image", lab_col=None, output_col="jpeg")
    assert out.columns == ["id", "caption", "image", "jpeg", "width", "height", "status", "error"]
    rows = out.collect()
    assert [r["id"] for r in rows] == expected_order and len(rows) == len(contents)
    by_id = {r["id"]: r for r in rows}
    for i, content in enumerate(contents):
        assert by_id[i]["caption"] == f"photo {i}" and by_id[i]["image"] == content
    assert by_id[1]["error"] == "no image bytes (null)"
    assert "empty" in by_id[2]["error"] and by_id[3]["status"] == "error"
    assert {by_id[i]["status"] for i in (0, 4, 5, 6, 7, 8, 9, 10)} == {"ok"}
    assert by_id[0]["jpeg"] == by_id[10]["jpeg"]  # the same image gives the same bytes wherever it is


def test_bad_calls_are_refused_before_any_work(spark):
    import colorspark

    df = spark.createDataFrame([(1, "x")], "id int, content string")
    with pytest.raises(ValueError, match="binary"):
        colorspark.colorize_dataframe(df)
    with pytest.raises(ValueError, match="no column 'image'"):
        colorspark.colorize_dataframe(df, image_col="image")
    taken = spark.createDataFrame([(b"x", "ok")], "content binary, status string")
    with pytest.raises(ValueError, match="already has column"):
        colorspark.colorize_dataframe(taken)


def test_pipeline_save_load_gives_identical_bytes(spark, folder, tmp_path):
    from pyspark.ml import Pipeline, PipelineModel

    import colorspark

    photos = spark.read.format("binaryFile").load(str(folder)).orderBy("path")
    stage = colorspark.ColorizeTransformer(inputCol="content", outputCol="colorized", temperature=0.3,
                                           renderSize=96, keepAspect=True, labEncoding="float16")
    fitted = Pipeline(stages=[stage]).fit(photos)
    first = fitted.transform(photos).select("path", "colorized", "lab").collect()
    fitted.write().overwrite().save(str(tmp_path / "pipeline"))
    loaded = PipelineModel.load(str(tmp_path / "pipeline"))
    [stage_again] = loaded.stages
    assert isinstance(stage_again, colorspark.ColorizeTransformer)
    assert stage_again.getOrDefault("renderSize") == 96 and stage_again.getOrDefault("temperature") == 0.3
    assert stage_again.getOrDefault("keepAspect") is True
    again = loaded.transform(photos).select("path", "colorized", "lab").collect()
    assert again == first
    ok = [r for r in first if r["colorized"] is not None]
    assert len(ok) == 6 and np.load(io.BytesIO(ok[0]["lab"])).dtype == np.float16


def test_sql_function(spark, folder):
    import colorspark

    colorspark.register_sql_functions(spark)
    spark.read.format("binaryFile").load(str(folder)).createOrReplaceTempView("images")
    rows = spark.sql("SELECT path, colorize(content) AS jpeg FROM images").collect()
    by_name = {Path(r["path"]).name: r["jpeg"] for r in rows}
    assert by_name.pop("broken.jpg") is None
    assert len(by_name) == 6
    for jpeg in by_name.values():
        assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    api = {Path(r["path"]).name: r["colorized_jpeg"]
           for r in colorspark.colorize_dataframe(spark.table("images")).collect()}
    assert all(api[name] == jpeg for name, jpeg in by_name.items())  # one code path, the same bytes


def test_api_and_job_write_the_same_jpegs(spark, folder, run_job, tmp_path):
    import colorspark

    proc = run_job("colorize", "--input", folder, "--output", tmp_path / "out")
    assert proc.returncode == 0, proc.log
    api = colorspark.colorize_dataframe(spark.read.format("binaryFile").load(str(folder))).collect()
    assert sorted(row["status"] for row in api) == ["error"] + ["ok"] * 6  # only broken.jpg fails
    for row in api:
        if row["status"] == "ok":
            stem = Path(row["path"]).stem
            assert (tmp_path / "out" / "jpeg" / f"{stem}.jpg").read_bytes() == row["colorized_jpeg"], stem
            assert (tmp_path / "out" / "lab" / f"{stem}.npy").read_bytes() == row["lab"], stem


def test_documented_example_runs_as_written(py_files, folder, tmp_path):
    page = (ROOT / "docs" / "dataframe-api.md").read_text()
    block = re.search(r"<!-- api-example:.*?-->\n```python\n(.*?)```", page, re.S).group(1)
    assert len(block.strip().splitlines()) <= 10
    script = tmp_path / "example.py"
    script.write_text(block)
    (tmp_path / "gray-photos").symlink_to(folder)
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]",
                           "--py-files", str(py_files), str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = pq.read_table(tmp_path / "out" / "colorized-table").to_pylist()
    assert sorted((Path(r["path"]).name, r["status"]) for r in table) == [
        ("broken.jpg", "error"), *[(f"g{i}.jpg", "ok") for i in range(5)]]
    assert all(Image.open(io.BytesIO(r["colorized_jpeg"])).format == "JPEG" for r in table if r["status"] == "ok")


def _mean_ab(jpeg: bytes) -> np.ndarray:
    from colorspark.colorspace import rgb_to_lab

    return rgb_to_lab(np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")))[..., 1:].mean((0, 1))


def test_a_reference_per_row_in_every_interface(spark, folder, tmp_path):
    """colorize_dataframe's reference_col (a palette, an image file, image bytes, a gray image, none), the
    Transformer's referenceCol and SQL's colorize(content, reference) steer each row by its own reference."""
    import colorspark

    write_image(tmp_path / "gray.png", _gray(20, 20, seed=1))
    gray = _jpeg_bytes(_gray(48, 40, seed=0))
    red = np.zeros((20, 20, 3), np.uint8)
    red[...] = (210, 30, 30)
    rows = [(gray, "palette:#2040d0"), (gray, "palette:#d02020"), (gray, str(tmp_path / "gray.png")), (gray, None)]
    df = spark.createDataFrame(rows, "content binary, reference string")
    out = colorspark.colorize_dataframe(df, reference_col="reference", lab_col=None,
                                        reference_strength=3.0).collect()
    assert [r["status"] for r in out] == ["ok", "ok", "error", "ok"]
    assert "no colour" in out[2]["error"]
    blue_ab, red_ab, plain_ab = (_mean_ab(out[i]["colorized_jpeg"]) for i in (0, 1, 3))
    assert blue_ab[1] < plain_ab[1] - 5 and red_ab[0] > plain_ab[0] + 5
    assert out[0]["reference_divergence"] > 0 and out[3]["reference_divergence"] is None

    by_bytes = spark.createDataFrame([(gray, _jpeg_bytes(red))], "content binary, ref binary")
    stage = colorspark.ColorizeTransformer(referenceCol="ref", labCol="")
    [steered] = stage.transform(by_bytes).collect()
    assert steered["status"] == "ok" and _mean_ab(steered["colorized_jpeg"])[0] > plain_ab[0]

    colorspark.register_sql_functions(spark)
    df.createOrReplaceTempView("referenced")
    sql = spark.sql("SELECT colorize(content, reference) AS jpeg, colorize(content) AS plain "
                    "FROM referenced").collect()
    assert sql[2]["jpeg"] is None and sql[2]["plain"] is not None
    assert sql[3]["jpeg"] == sql[3]["plain"]
    assert _mean_ab(sql[0]["jpeg"])[1] < _mean_ab(sql[0]["plain"])[1]
