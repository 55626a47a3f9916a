r"""Performance profiles: how often, and by how much, each method is the fastest.

After Dolan & Moré (2002), as the MLCommons AlgoPerf benchmark scores training
algorithms (Dahl et al. 2023, "Benchmarking Neural Network Training Algorithms").
With :math:`t_{p,m}` the time (steps or seconds) method :math:`m` took to reach problem
:math:`p`'s target (:math:`\infty` if it never did),

.. math::

   r_{p,m} = \frac{t_{p,m}}{\min_{m'} t_{p,m'}}, \qquad
   \rho_m(\tau) = \frac{1}{|P|}\,\#\{p : r_{p,m} \le \tau\}, \qquad
   B_m = \frac{1}{r_{\max} - 1} \int_1^{r_{\max}} \rho_m(\tau)\,d\tau .

:math:`\rho_m(1)` is the fraction of problems where :math:`m` is the fastest (ties win
for all of them); :math:`B_m \in [0, 1]` is 1 exactly when :math:`m` is the fastest
everywhere. A problem no method solved counts in :math:`|P|` for everyone. The integral
is exact: each problem adds :math:`\max(0, r_{\max} - r_{p,m}) / |P|`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np


class Profile(NamedTuple):
    """The performance profile of several methods over the same problems.

    ``fractions[m][i]`` is :math:`\\rho_m` at ``taus[i]``; the curve is a right-continuous
    step function, constant from one ``taus[i]`` to the next (``drawstyle="steps-post"``).
    """

    taus: np.ndarray  # (K,) float64: 1 ... r_max, every ratio in [1, r_max] and an even grid
    fractions: dict[str, np.ndarray]  # method -> (K,) float64: rho_m(tau), non-decreasing
    scores: dict[str, float]  # method -> B_m in [0, 1], the exact normalised integral
    ratios: dict[str, np.ndarray]  # method -> (|P|,) float64: r_{p,m} >= 1, inf if unsolved
    problems: list[str]  # the problems, in the order of ``ratios``
    r_max: float  # the largest ratio counted (AlgoPerf: 4)

    def format(self) -> str:
        """A plain-text table, best score first: the score, the fraction of problems won
        (ties included, :math:`\\rho(1)`) and the fraction within ``r_max``."""
        rows = [
            (
                str(m),
                f"{self.scores[m]:.3f}",
                f"{_within(r, 1.0):.2f}",
                f"{_within(r, self.r_max):.2f}",
            )
            for m, r in sorted(self.ratios.items(), key=lambda kv: -self.scores[kv[0]])
        ]
        head = ("method", "score", "wins (tau=1)", f"within tau={self.r_max:g}")
        widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]

        def line(row):
            cells = [row[0].ljust(widths[0])]
            cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
            return "  ".join(cells).rstrip()

        title = f"performance profile: {len(self.problems)} problems, r_max = {self.r_max:g}"
        return "\n".join([title, line(head), *(line(row) for row in rows)])


def _within(ratios: np.ndarray, tau: float) -> float:
    return float(np.mean(ratios <= tau)) if ratios.size else 0.0


def performance_profile(
    times: Mapping[str, Sequence[float] | Mapping[str, float]],
    *,
    r_max: float = 4.0,
    problems: Sequence[str] | None = None,
    num: int = 200,
) -> Profile:
    r"""The performance profile :math:`\rho_m(\tau)` and score :math:`B_m` of each method.

    .. math::

       r_{p,m} = t_{p,m} / \min_{m'} t_{p,m'}, \quad
       \rho_m(\tau) = \#\{p : r_{p,m} \le \tau\} / |P|, \quad
       B_m = \int_1^{r_{\max}} \rho_m(\tau)\,d\tau \,/\, (r_{\max} - 1).

    Args:
      times: method -> the time (steps or seconds) to reach each problem's target: a
        sequence in the order of ``problems``, or a mapping problem -> time. ``inf`` or
        ``nan`` means the target was never reached; finite times must be > 0.
      r_max: the largest ratio to the best time that still counts (AlgoPerf: 4).
      problems: the problems' names, in the order of the sequences (default: ``"p0"``,
        ``"p1"``, ... for sequences, the first mapping's keys for mappings).
      num: points of the even grid of ``taus`` (every ratio in ``[1, r_max]`` is added).

    Returns:
      A :class:`Profile`: ``taus``, ``fractions``, ``scores``, ``ratios``, ``problems``,
      ``r_max``; ``.format()`` gives a table.

    Raises:
      TypeError: ``times`` is not a mapping of sequences or mappings, or an entry is not a
        number.
      ValueError: ``times`` is empty, the methods' problems differ, a time is <= 0,
        ``r_max`` is not a number > 1, or ``problems`` does not match ``times``.

    Example:
      >>> import jaxopt_lab.tuning._profile as tp
      >>> p = tp.performance_profile({"adam": [10, 20, 35], "sgd": [10, 10, 10]})
      >>> round(p.scores["adam"], 4)  # ratios 1, 2, 3.5: (3 + 2 + 0.5) / 3 / 3
      0.6111

    References:
      Dolan & Moré 2002, "Benchmarking optimization software with performance profiles".
      Dahl et al. 2023, "Benchmarking Neural Network Training Algorithms" (AlgoPerf).
    """
    r_max = _check_r_max(r_max)
    if isinstance(num, bool) or not isinstance(num, numbers.Integral) or num < 2:
        raise ValueError(f"`num` must be an int >= 2 (points of the tau grid), got {num!r}.")
    names, table = _table(times, problems)
    methods = list(table)
    t = np.array([table[m] for m in methods], np.float64).reshape(len(methods), len(names))
    t[~np.isfinite(t)] = np.inf
    best = t.min(axis=0)  # (P,): inf where no method reached the target
    solved = np.isfinite(best)
    r = np.where(np.isfinite(t) & solved, t / np.where(solved, best, 1.0), np.inf)

    inside = r[(r >= 1.0) & (r <= r_max)]
    taus = np.unique(np.concatenate([np.linspace(1.0, r_max, int(num)), inside]))
    fractions, scores, ratios = {}, {}, {}
    for i, m in enumerate(methods):
        fractions[m] = np.mean(r[i][:, None] <= taus[None, :], axis=0)
        # exact: problem p adds the length of [r_p, r_max] (nothing when r_p > r_max)
        area = np.where(r[i] <= r_max, (r_max - r[i]) / (r_max - 1.0), 0.0)
        scores[m] = float(np.clip(np.mean(area), 0.0, 1.0))
        ratios[m] = r[i].copy()
    return Profile(taus, fractions, scores, ratios, names, r_max)


def _check_r_max(r_max: Any) -> float:
    if isinstance(r_max, bool | np.bool_) or not isinstance(r_max, numbers.Real):
        raise TypeError(
            f"`r_max` must be a number > 1 (the largest ratio to the best time counted), "
            f"got {r_max!r}; e.g. r_max=4.0 as in AlgoPerf."
        )
    value = float(r_max)
    if not (math.isfinite(value) and value > 1.0):
        raise ValueError(
            f"`r_max` must be a finite number > 1 (the largest ratio to the best time "
            f"counted), got {r_max!r}; e.g. r_max=4.0 as in AlgoPerf."
        )
    return value


def _time(value: Any, where: str) -> float:
    """One entry of ``times`` as a float: a real number, ``inf``/``nan`` for never."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)
    if not ok and hasattr(value, "__array__") and np.ndim(value) == 0:
        ok = np.asarray(value).dtype.kind in "iuf"
    if not ok:
        raise TypeError(
            f"`{where}` must be a number (steps or seconds to the target), got {value!r} "
            f"({type(value).__name__}); use float('inf') for a target never reached."
        )
    t = float(value)
    if t <= 0:  # NaN and +inf pass: never reached
        raise ValueError(
            f"`{where}` must be > 0, got {t!r}; times are steps or seconds to reach the "
            "target, use float('inf') for a target never reached."
        )
    return t


def _entries(value: Any, method: Any) -> list[Any] | None:
    """A method's sequence of times as a list, ``None`` for a mapping."""
    if isinstance(value, Mapping):
        return None
    if isinstance(value, str | bytes) or not hasattr(value, "__len__") or np.ndim(value) == 0:
        raise TypeError(
            f"`times[{method!r}]` must be a sequence of times (one per problem) or a mapping "
            f"problem -> time, got {type(value).__name__}."
        )
    try:
        flat = np.ndim(value) == 1
    except ValueError:  # ragged nested lists
        flat = False
    if not flat:
        raise ValueError(
            f"`times[{method!r}]` must be one-dimensional (one time per problem), got {value!r}."
        )
    return list(value)


def _table(times: Any, problems: Sequence[Any] | None) -> tuple[list[Any], dict[Any, list]]:
    """The problems' names and method -> times in their order, all checked."""
    if not isinstance(times, Mapping):
        raise TypeError(
            "`times` must be a mapping method -> times (a sequence, one per problem, or a "
            f"mapping problem -> time), got {type(times).__name__}."
        )
    if not times:
        raise ValueError(
            "`times` is empty; pass at least one method, e.g. {'adam': [120, 340], "
            "'sgd': [150, inf]}."
        )
    lists = {m: _entries(v, m) for m, v in times.items()}
    mapped = [m for m, v in lists.items() if v is None]
    if problems is not None:
        if isinstance(problems, str | bytes) or not hasattr(problems, "__len__"):
            raise TypeError(
                f"`problems` must be a sequence of problem names, got {type(problems).__name__}."
            )
        names = list(problems)
        if len(set(names)) != len(names):
            dup = sorted({str(p) for p in names if names.count(p) > 1})
            raise ValueError(f"`problems` must name each problem once; repeated: {dup}.")
    elif mapped and len(mapped) < len(lists):
        seq = next(m for m, v in lists.items() if v is not None)
        raise ValueError(
            f"`times` mixes mappings ({mapped[0]!r}) and sequences ({seq!r}); pass "
            "`problems=` to give the sequences' order, or use mappings throughout."
        )
    elif mapped:
        names = list(times[mapped[0]])
    else:
        first = next(iter(lists))
        names = [f"p{i}" for i in range(len(lists[first]))]

    table = {}
    for m, entries in lists.items():
        if entries is None:
            keys = list(times[m])
            missing = [p for p in names if p not in times[m]]
            extra = [p for p in keys if p not in set(names)]
            if missing or extra:
                against = "`problems`" if problems is not None else f"`times[{mapped[0]!r}]`"
                raise ValueError(
                    f"`times[{m!r}]` must have the same problems as {against}: missing "
                    f"{missing}, extra {extra}. Give every method a time for every problem "
                    "(float('inf') where it never reached the target)."
                )
            entries = [times[m][p] for p in names]
        elif len(entries) != len(names):
            if problems is not None:
                raise ValueError(
                    f"`problems` has {len(names)} names but `times[{m!r}]` has "
                    f"{len(entries)} times; give one time per problem, in the order of "
                    "`problems`."
                )
            first = next(iter(lists))
            raise ValueError(
                f"`times[{m!r}]` has {len(entries)} times but `times[{first!r}]` has "
                f"{len(names)}; give every method one time per problem (float('inf') where "
                "it never reached the target)."
            )
        table[m] = [_time(v, f"times[{m!r}][{p!r}]") for v, p in zip(entries, names, strict=True)]
    if not names:
        raise ValueError("`times` holds no problems; give each method at least one time.")
    return names, table
