"""spark-submit entry point: images -> training samples (Parquet + HDF5), colour prior, manifest."""

import sys

from colorspark import cli, preprocess


def main(argv=None) -> int:
    p = cli.parser("preprocess", "Decode images, make augmented crops, convert to Lab and write compact training "
                                 "samples (Parquet partitioned by split, HDF5 shards), the ab prior and a manifest.")
    p.add_argument("--input", required=True, help="file, folder or glob; any Hadoop path (file:, hdfs:, s3a:)")
    p.add_argument("--output", required=True, help="output folder (a filesystem path all executors can write)")
    p.add_argument("--format", choices=["parquet", "hdf5", "both"], help="which sample formats to write (default both)")
    args = p.parse_args(argv)
    formats = {"parquet": ["parquet"], "hdf5": ["hdf5"], "both": ["parquet", "hdf5"], None: None}[args.format]
    return cli.main("preprocess", args, cli.flags(output={"formats": formats}),
                    lambda spark, config: preprocess.run(spark, args.input, args.output, config))


if __name__ == "__main__":
    sys.exit(main())
