"""spark-submit entry point: train the colorization network with Elephas on preprocessed samples."""

import sys
from pathlib import Path

try:
    import colorspark  # noqa: F401  (spark-submit finds it in --py-files)
except ModuleNotFoundError:  # `python jobs/train.py --help` in a checkout: the package is next to jobs/
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from colorspark import cli, finetune, training
from colorspark.config import choices

JOB = cli.Job("train", "Train the colorization CNN with Elephas on the output of jobs/preprocess.py. "
                       "One round = one Elephas fit; each round is validated and checkpointed.",
              tensorflow_workers=True)


def main(argv=None) -> int:
    p = cli.parser(JOB)
    p.add_argument("--data", required=True, help="output folder of jobs/preprocess.py; a path or URI")
    p.add_argument("--model-dir", required=True, help="where the model, history and checkpoints go; a path or URI")
    p.add_argument("--preset", choices=choices("train", "preset"), help="network preset (default: small)")
    p.add_argument("--rounds", type=int, help="total rounds to reach (with --resume: including finished ones)")
    p.add_argument("--workers", type=int, help="Elephas workers = training partitions (default 2)")
    p.add_argument("--mode", choices=choices("train", "mode"),
                   help="Elephas mode; the asynchronous ones start a parameter server on the driver address, "
                        "port train.port (default 4000)")
    p.add_argument("--source", choices=choices("train", "source"),
                   help="which preprocess output to read (default parquet)")
    p.add_argument("--resume", action="store_true", help="continue from the newest valid checkpoint in --model-dir")
    p.add_argument("--init-model", metavar="DIR_OR_URI",
                   help="fine-tune: start from this trained model directory (or 'shipped'), its architecture and "
                        "input size, with a fresh optimizer")
    p.add_argument("--freeze-blocks", type=int, metavar="N",
                   help="with --init-model: keep the first N blocks of the network as they are (default 0)")
    args = p.parse_args(argv)
    if args.freeze_blocks and not args.init_model:
        p.error("--freeze-blocks needs --init-model: a new network has nothing learnt to keep")
    overrides = cli.flags(train={"preset": args.preset, "rounds": args.rounds, "workers": args.workers,
                                 "mode": args.mode, "source": args.source, "freeze_blocks": args.freeze_blocks})
    init = None if args.init_model == finetune.SHIPPED else args.init_model
    locations = [cli.Location("--data", args.data, shared=True),
                 cli.Location("--model-dir", args.model_dir, output=True), cli.Location("--init-model", init)]
    return cli.main(JOB, args, overrides, locations,
                    lambda spark, config, uris: training.run(
                        spark, uris["--data"], uris["--model-dir"], config, args.resume,
                        args.init_model and finetune.init_model_uri(uris.get("--init-model", args.init_model))))


if __name__ == "__main__":
    sys.exit(main())
