"""Exclusive-time accounting of named functions, by temporarily rebinding them in the modules that call them.

    prof = Profiler()
    prof.wrap(colorize, "decode_image", "decode")          # calls colorize makes to its global decode_image
    prof.wrap_cm(colorize, "atomic_path", "file write")    # a context manager: time from enter to exit
    with prof:                                             # rebinds on enter, restores on exit
        ... run the real code ...
    prof.seconds  -> {label: exclusive seconds}, prof.calls -> {label: count}
    prof.first    -> {label: exclusive seconds of the first call}  (lazy tables, tf.function tracing ...)
    prof.steady() -> {label: exclusive seconds without the first calls}

Nested wrapped calls are subtracted from their caller ("exclusive" time), so the labels add up to at most the wall
time of the run; the remainder is glue code. The real functions run unchanged: this follows whatever the code under
test does today, which a hand-written copy of its steps would not. Overhead is about a microsecond per call.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict


class Profiler:
    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.first: dict[str, float] = {}  # exclusive seconds of each label's first call (lazy inits, tracing)
        self._stack: list[list[float]] = []  # per active call: [child seconds]
        self._patches: list[tuple[object, str, object, object]] = []

    def _enter(self):
        self._stack.append([0.0])
        return time.perf_counter()

    def _exit(self, label, started):
        elapsed = time.perf_counter() - started
        children = self._stack.pop()[0]
        self.seconds[label] += elapsed - children
        if label not in self.first:
            self.first[label] = elapsed - children
        self.calls[label] += 1
        if self._stack:
            self._stack[-1][0] += elapsed

    def wrap(self, module, name: str, label: str | None = None) -> bool:
        """Time calls of module.name made through the module's global (returns False if it does not exist)."""
        original = getattr(module, name, None)
        if original is None or not callable(original):
            return False
        label = label or name
        prof = self

        def timed(*args, **kwargs):
            started = prof._enter()
            try:
                return original(*args, **kwargs)
            finally:
                prof._exit(label, started)

        timed.__wrapped__ = original
        self._patches.append((module, name, original, timed))
        return True

    def wrap_cm(self, module, name: str, label: str | None = None) -> bool:
        """Like wrap, for a function returning a context manager: times enter..exit (the with-body included)."""
        original = getattr(module, name, None)
        if original is None:
            return False
        label = label or name
        prof = self

        @contextlib.contextmanager
        def timed(*args, **kwargs):
            started = prof._enter()
            try:
                with original(*args, **kwargs) as value:
                    yield value
            finally:
                prof._exit(label, started)

        self._patches.append((module, name, original, timed))
        return True

    def steady(self) -> dict[str, float]:
        return {k: v - self.first.get(k, 0.0) for k, v in self.seconds.items()}

    def one_time(self, factor: float = 5.0, floor: float = 0.05) -> dict[str, float]:
        """First calls that took much longer than the label's later calls: one-time costs worth naming."""
        out = {}
        for k, first in self.first.items():
            n = self.calls[k]
            rest = (self.seconds[k] - first) / (n - 1) if n > 1 else 0.0
            if first >= floor and first > factor * rest:
                out[k] = first - rest
        return out

    def add(self, label: str, seconds: float) -> None:
        """Account time measured elsewhere (e.g. reading input files in a generator the code under test pulls)."""
        self.seconds[label] += seconds
        self.calls[label] += 1
        if self._stack:
            self._stack[-1][0] += seconds

    def __enter__(self):
        for module, name, _, timed in self._patches:
            setattr(module, name, timed)
        return self

    def __exit__(self, *exc):
        for module, name, original, _ in reversed(self._patches):
            setattr(module, name, original)
        return False
