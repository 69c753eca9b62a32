"""spark-submit entry point: images -> training samples (Parquet + HDF5), colour prior, manifest."""

import sys
from pathlib import Path

try:
    import colorspark  # noqa: F401  (spark-submit finds it in --py-files)
except ModuleNotFoundError:  # `python jobs/preprocess.py --help` in a checkout: the package is next to jobs/
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from colorspark import cli, preprocess
from colorspark.paths import InputLocation

JOB = cli.Job("preprocess", "Decode images, make augmented crops, convert to Lab and write compact training samples "
                            "(Parquet partitioned by split, HDF5 shards), the ab prior and a manifest.",
              tensorflow_workers=False)


def main(argv=None) -> int:
    p = cli.parser(JOB)
    p.add_argument("--input", required=True, help="file, folder or glob; a path or URI (file:, hdfs:, s3:, gs:, ...)")
    p.add_argument("--output", required=True, help="output folder; a path or URI (hdfs://, s3://bucket/..., file://)")
    p.add_argument("--format", choices=["parquet", "hdf5", "both"], help="which sample formats to write (default both)")
    args = p.parse_args(argv)
    source = InputLocation.parse(args.input)
    formats = {"parquet": ["parquet"], "hdf5": ["hdf5"], "both": ["parquet", "hdf5"], None: None}[args.format]
    return cli.main(JOB, args, cli.flags(output={"formats": formats}),
                    [cli.Location("--output", args.output, output=True)],
                    lambda spark, config, uris: preprocess.run(spark, source, uris["--output"], config))


if __name__ == "__main__":
    sys.exit(main())
