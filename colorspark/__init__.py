"""colorspark: learn to colorize grayscale photographs with a CNN and colorize them in batch on Spark."""

__version__ = "0.1.0"
