"""spark-submit entry point: colorize grayscale photos with a trained model; results, summary and an HTML report."""

import sys
from pathlib import Path

try:
    import colorspark  # noqa: F401  (spark-submit finds it in --py-files)
except ModuleNotFoundError:  # `python jobs/colorize.py --help` in a checkout: the package is next to jobs/
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from colorspark import cli, colorize
from colorspark.config import choices
from colorspark.paths import InputLocation
from colorspark.shipped import shipped_model_dir

JOB = cli.Job("colorize", "Colorize every image under --input at its full resolution with a trained model (default: "
                          "the shipped models/small). Writes OUT/jpeg, OUT/lab, OUT/results (one row per input), "
                          "OUT/summary.json and OUT/report.html.", tensorflow_workers=True, start_workers=True)


def main(argv=None) -> int:
    p = cli.parser(JOB)
    p.add_argument("--input", required=True, help="file, folder or glob; a path or URI (file:, hdfs:, s3:, gs:, ...)")
    p.add_argument("--output", required=True, help="output folder; a path or URI (hdfs://, s3://bucket/..., file://)")
    p.add_argument("--model", help="model directory written by jobs/train.py, a path or URI (default: models/small)")
    p.add_argument("--lab-format", choices=choices("output", "lab_format"), help="Lab array format (default npy)")
    p.add_argument("--lab-encoding", choices=choices("output", "lab_encoding"),
                   help="Lab array encoding (default lab8: uint8 L*2.55, a+128, b+128, 3 bytes/pixel)")
    p.add_argument("--resume", action="store_true", help="skip inputs whose outputs already exist")
    p.add_argument("--reference", metavar="IMAGE_OR_URI",
                   help="steer every input's colours towards a colour image, a folder of images, or a palette "
                        "(palette:#aa3311,#2255cc); see docs/reference.md")
    p.add_argument("--references", metavar="TABLE",
                   help="CSV or Parquet table with columns path (an input's relative path or a folder prefix) and "
                        "reference; the most specific row wins, --reference covers the rest")
    args = p.parse_args(argv)
    source = InputLocation.parse(args.input)
    locations = [cli.Location("--output", args.output, output=True),
                 cli.Location("--model", args.model or shipped_model_dir())]
    given = cli.flags(output={"lab_format": args.lab_format, "lab_encoding": args.lab_encoding})
    return cli.main(JOB, args, given, locations,
                    lambda spark, config, uris: colorize.run(spark, source, uris["--output"], uris["--model"],
                                                             config, args.resume, args.reference,
                                                             args.references))


if __name__ == "__main__":
    sys.exit(main())
