"""Search spaces for tuning: log-uniform and uniform ranges, and samples of trials from them.

A :func:`space` names each hyperparameter's range; its samplers return a list of
trials (each a dict name -> value) that :func:`jaxopt_lab.sweep` takes in place of a
grid, one run per trial and seed, all in one compiled program::

    space = jol.search.space(learning_rate=jol.search.log_uniform(1e-4, 1),
                             momentum=jol.search.uniform(0, 0.99))
    trials = space.quasirandom(27, seed=0)    # scrambled Halton points (scipy.stats.qmc)
    result = jol.sweep(loss_fn, init_fn, make_optimizer, trials, data, steps=..., seeds=3)

``random(n, seed)`` draws independent points, ``quasirandom(n, seed)`` a low-discrepancy
sequence (it covers the space more evenly for the same number of trials: what AlgoPerf's
tuning uses), ``grid(points)`` the full product of evenly spaced points per dimension
(log-spaced for log-uniform ones).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from jaxopt_lab import _validation

__all__ = ["Space", "log_uniform", "space", "uniform"]


class Range(NamedTuple):
    """One hyperparameter's range: ``low`` to ``high``, uniform in value or in log."""

    low: float
    high: float
    log: bool

    def scale(self, u: np.ndarray) -> np.ndarray:
        """Points of ``[0, 1)`` mapped into the range (uniformly, or uniformly in log)."""
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return np.exp(lo + u * (hi - lo))
        return self.low + u * (self.high - self.low)


def _range(low: Any, high: Any, log: bool, name: str) -> Range:
    for arg, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise TypeError(f"`{name}`: `{arg}` must be a number, got {value!r}.")
        if not math.isfinite(value):
            raise ValueError(f"`{name}`: `{arg}` must be finite, got {value!r}.")
    if not low < high:
        raise ValueError(f"`{name}`: `low` must be below `high`, got low={low!r}, high={high!r}.")
    if log and low <= 0:
        raise ValueError(
            f"`{name}`: a log-uniform range needs low > 0, got low={low!r}; e.g. "
            "log_uniform(1e-4, 1), or uniform(...) for a range that reaches 0."
        )
    return Range(float(low), float(high), log)


def log_uniform(low: float, high: float) -> Range:
    """A range sampled uniformly in ``log``: as many trials in [1e-4, 1e-3] as in [0.1, 1]."""
    return _range(low, high, True, "log_uniform")


def uniform(low: float, high: float) -> Range:
    """A range sampled uniformly in value."""
    return _range(low, high, False, "uniform")


class Space:
    """Named ranges; its samplers return lists of trials (dicts name -> float)."""

    def __init__(self, ranges: Mapping[str, Range]):
        self.ranges = dict(ranges)

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{k}={'log_uniform' if r.log else 'uniform'}({r.low:g}, {r.high:g})"
            for k, r in self.ranges.items()
        )
        return f"space({inner})"

    def _trials(self, u: np.ndarray) -> list[dict[str, float]]:
        columns = {k: r.scale(u[:, i]) for i, (k, r) in enumerate(self.ranges.items())}
        return [{k: float(v[j]) for k, v in columns.items()} for j in range(u.shape[0])]

    def random(self, n: int, seed: int = 0) -> list[dict[str, float]]:
        """``n`` independent uniform points (NumPy's generator seeded with ``seed``)."""
        n = _validation.check_count(n, "n", fix="Pass the number of trials, e.g. 27.")
        seed = _validation.check_count(seed, "seed", minimum=0, fix="e.g. seed=0.")
        u = np.random.default_rng(seed).random((n, len(self.ranges)))
        return self._trials(u)

    def quasirandom(self, n: int, seed: int = 0, *, method: str = "halton") -> list[dict]:
        """``n`` points of a scrambled Halton (or ``method="sobol"``) sequence.

        Low discrepancy: the points fill the space more evenly than independent ones
        (``scipy.stats.qmc.discrepancy`` is smaller), so a small budget of trials leaves
        smaller holes. ``seed`` picks the scrambling.
        """
        from scipy.stats import qmc

        n = _validation.check_count(n, "n", fix="Pass the number of trials, e.g. 27.")
        seed = _validation.check_count(seed, "seed", minimum=0, fix="e.g. seed=0.")
        _validation.check_choice("method", method, ("halton", "sobol"))
        d = len(self.ranges)
        if method == "halton":
            sampler = qmc.Halton(d, scramble=True, seed=seed)
        else:
            sampler = qmc.Sobol(d, scramble=True, seed=seed)
        if method == "sobol":  # Sobol's balance holds for powers of 2: draw those, keep n
            u = sampler.random_base2(max(0, math.ceil(math.log2(n))))[:n]
        else:
            u = sampler.random(n)
        return self._trials(u)

    def grid(self, points: int | Mapping[str, int]) -> list[dict[str, float]]:
        """The product of ``points`` evenly spaced values per dimension (in log for
        log-uniform ranges), ends included."""
        if isinstance(points, Mapping):
            missing = sorted(set(self.ranges) - set(points))
            if missing:
                raise ValueError(f"`points` lacks {missing}; give a count for every name.")
            counts = {k: _validation.check_count(points[k], f"points[{k!r}]") for k in self.ranges}
        else:
            count = _validation.check_count(points, "points", fix="e.g. 5 per dimension.")
            counts = dict.fromkeys(self.ranges, count)
        axes = {
            k: r.scale(np.linspace(0.0, 1.0, counts[k]))
            if counts[k] > 1
            else r.scale(np.array([0.5]))
            for k, r in self.ranges.items()
        }
        names = list(axes)
        return [
            {k: float(v) for k, v in zip(names, values, strict=True)}
            for values in itertools.product(*(axes[k] for k in names))
        ]


def space(**ranges: Range) -> Space:
    """A search space: ``space(learning_rate=log_uniform(1e-4, 1), momentum=uniform(0, 0.99))``."""
    if not ranges:
        raise ValueError(
            "`space` needs at least one range, e.g. space(learning_rate=log_uniform(1e-4, 1))."
        )
    for name, r in ranges.items():
        if not isinstance(r, Range):
            raise TypeError(
                f"`{name}` must be a range from jol.search.log_uniform(...) or "
                f"jol.search.uniform(...), got {r!r}."
            )
    return Space(ranges)
