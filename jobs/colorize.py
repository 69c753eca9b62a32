"""spark-submit entry point: colorize grayscale photos with a trained model; results, summary and an HTML report."""

import sys
from pathlib import Path

from colorspark import cli, colorize

SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "models" / "small"


def main(argv=None) -> int:
    p = cli.parser("colorize", "Colorize every image under --input at its full resolution with a trained model "
                               "(default: the shipped models/small). Writes OUT/jpeg, OUT/lab, OUT/results "
                               "(one row per input), OUT/summary.json and OUT/report.html.")
    p.add_argument("--input", required=True, help="file, folder or glob; any Hadoop path (file:, hdfs:, s3a:)")
    p.add_argument("--output", required=True, help="output folder (a filesystem path all executors can write)")
    p.add_argument("--model", help="model directory written by jobs/train.py (default: models/small)")
    p.add_argument("--lab-format", choices=["npy", "hdf5", "mat"], help="Lab array format (default npy)")
    p.add_argument("--resume", action="store_true", help="skip inputs whose outputs already exist")
    args = p.parse_args(argv)
    return cli.main("colorize", args, cli.flags(output={"lab_format": args.lab_format}),
                    lambda spark, config: colorize.run(spark, args.input, args.output,
                                                       args.model or str(SHIPPED_MODEL), config, args.resume))


if __name__ == "__main__":
    sys.exit(main())
