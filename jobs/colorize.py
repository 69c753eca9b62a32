"""spark-submit entry point: colorize grayscale photos with a trained model; results, summary and an HTML report."""

import sys
from pathlib import Path

from colorspark import cli, colorize

SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "models" / "small"
JOB = cli.Job("colorize", "Colorize every image under --input at its full resolution with a trained model (default: "
                          "the shipped models/small). Writes OUT/jpeg, OUT/lab, OUT/results (one row per input), "
                          "OUT/summary.json and OUT/report.html.", tensorflow_workers=True)


def main(argv=None) -> int:
    p = cli.parser(JOB)
    p.add_argument("--input", required=True, help="file, folder or glob; a path or URI (file:, hdfs:, s3:, gs:, ...)")
    p.add_argument("--output", required=True, help="output folder; a path or URI (hdfs://, s3://bucket/..., file://)")
    p.add_argument("--model", help="model directory written by jobs/train.py, a path or URI (default: models/small)")
    p.add_argument("--lab-format", choices=["npy", "hdf5", "mat"], help="Lab array format (default npy)")
    p.add_argument("--resume", action="store_true", help="skip inputs whose outputs already exist")
    args = p.parse_args(argv)
    locations = [cli.Location("--output", args.output, output=True),
                 cli.Location("--model", args.model or str(SHIPPED_MODEL))]
    return cli.main(JOB, args, cli.flags(output={"lab_format": args.lab_format}), locations,
                    lambda spark, config, uris: colorize.run(spark, args.input, uris["--output"], uris["--model"],
                                                             config, args.resume))


if __name__ == "__main__":
    sys.exit(main())
