"""The shipped model (`models/small`), found wherever colorspark runs from.

In a source checkout it is the repository's `models/small`. In the `--py-files` zip, which is all a YARN cluster's
driver may have, `./build.sh` packs it as `colorspark/shipped/small/`; since Keras loads models from files, it is
copied out of the archive into a temporary folder once per process.
"""

from __future__ import annotations

import atexit
import functools
import importlib.resources
import shutil
import tempfile
from pathlib import Path

from . import fs

NAME = "small"
FILES = ("colorspark.json", "model.keras")


@functools.lru_cache(maxsize=1)
def shipped_model_dir() -> str:
    """A local folder holding the shipped model's files."""
    checkout = Path(__file__).resolve().parent.parent / "models" / NAME
    if (checkout / FILES[0]).is_file():
        return str(checkout)
    packed = importlib.resources.files(__package__).joinpath("shipped", NAME)
    if not packed.joinpath(FILES[0]).is_file():
        raise FileNotFoundError("the shipped model is neither in a source checkout (models/small) nor in this "
                                "colorspark package; build the package with ./build.sh, or pass a model")
    folder = Path(tempfile.mkdtemp(prefix="colorspark-shipped-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for name in FILES:
        fs.write_bytes(str(folder / name), packed.joinpath(name).read_bytes())
    return str(folder)


def describe_model(model_dir: str) -> str:
    """How summaries and reports name a model: `shipped models/small` for the shipped one, wherever this process
    unpacked it, else its location."""
    shipped = shipped_model_dir.cache_info().currsize and fs.to_uri(shipped_model_dir()) == fs.to_uri(model_dir)
    return f"shipped models/{NAME}" if shipped else fs.display(model_dir)
