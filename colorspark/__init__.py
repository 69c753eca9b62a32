"""colorspark: learn to colorize grayscale photographs with a CNN and colorize them in batch on Spark.

For your own Spark pipelines: `colorize_dataframe`, `ColorizeTransformer` and `register_sql_functions`. They are
imported on first use, so the executors, which import this package for every task, do not load Spark ML.
"""

__version__ = "0.1.0"

_API = {"colorize_dataframe": "api", "register_sql_functions": "api", "ColorizeTransformer": "ml"}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'colorspark' has no attribute {name!r}")
