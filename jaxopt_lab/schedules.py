r"""The lectures' learning-rate schedules, in their own parameterisation.

Each returns a function ``step -> learning rate`` that any update rule accepts where
it takes a learning rate, as do optax's own optimizers. Values may be traced arrays
(``vmap`` over a grid of initial rates works). :func:`nesterov_momentum_schedule` is a
momentum schedule (LeCun & Defazio, lecture 001: :math:`\hat\beta_k = (k - 1)/(k + 2)`), for the
``beta`` of ``jol.momentum`` and ``jol.nesterov``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import check_count, check_learning_rate, check_positive, real_scalar
from jaxopt_lab.transforms.momentum import (
    nesterov_momentum_schedule as nesterov_momentum_schedule,
)

Schedule = Callable[[jax.typing.ArrayLike], jax.Array]


def _check_positive(name: str, value) -> None:
    check_positive(
        name,
        value,
        f"Pass a positive, finite number of steps for `{name}` (e.g. 100); for a constant "
        "rate pass the number itself as the learning rate.",
    )


def linear_decay(
    init_value: jax.typing.ArrayLike,
    end_value: jax.typing.ArrayLike,
    transition_steps: jax.typing.ArrayLike,
) -> Schedule:
    r"""Linear decay to a floor, then constant (lectures 002 and 003).

    .. math::
      \epsilon_k = (1 - \tfrac{k}{\tau})\,\epsilon_0 + \tfrac{k}{\tau}\,\epsilon_\tau
      \quad (k \le \tau), \qquad \epsilon_k = \epsilon_\tau \quad (k > \tau).

    Lecture 003 suggests :math:`\tau` of a few hundred epochs and
    :math:`\epsilon_\tau \approx \epsilon_0 / 100`. Same values as
    ``optax.linear_schedule(init_value, end_value, transition_steps)``.

    Args:
      init_value: :math:`\epsilon_0 \ge 0`.
      end_value: :math:`\epsilon_\tau \ge 0`.
      transition_steps: :math:`\tau > 0`.

    Returns:
      A schedule ``k -> epsilon_k``.

    References:
      Lecture 003 (Favaro), "Stochastic Gradient Descent"; lecture 002, "SGD Learning Rate".
    """
    check_learning_rate("init_value", init_value)
    check_learning_rate("end_value", end_value)
    _check_positive("transition_steps", transition_steps)

    def schedule(count):
        frac = jnp.clip(jnp.asarray(count, jnp.float32) / transition_steps, 0.0, 1.0)
        return (1 - frac) * init_value + frac * end_value

    return schedule


def exponential_decay(init_value: jax.typing.ArrayLike, tau: jax.typing.ArrayLike) -> Schedule:
    r"""Exponential decay :math:`a_k = a_0 e^{-k/\tau}` (lecture 002).

    Args:
      init_value: :math:`a_0 \ge 0`.
      tau: the decay time :math:`\tau > 0`, in steps: the rate falls by :math:`e` every
        :math:`\tau` steps.

    Returns:
      A schedule ``k -> a_k``.

    References:
      Lecture 002 (Congeduti), "SGD Learning Rate".
    """
    check_learning_rate("init_value", init_value)
    _check_positive("tau", tau)

    def schedule(count):
        return init_value * jnp.exp(-jnp.asarray(count, jnp.float32) / tau)

    return schedule


def inverse_time(init_value: jax.typing.ArrayLike, tau: jax.typing.ArrayLike) -> Schedule:
    r"""Inverse-time decay :math:`a_k = a_0 / (1 + k/\tau)` (Robbins-Monro, lecture 004).

    Satisfies the conditions for SGD to converge,
    :math:`\sum_k a_k = \infty` and :math:`\sum_k a_k^2 < \infty` (lectures 003, 004).

    Args:
      init_value: :math:`a_0 \ge 0`.
      tau: :math:`\tau > 0`, the step at which the rate has halved.

    Returns:
      A schedule ``k -> a_k``.

    References:
      Lecture 004 (Eskandari), "SGD"; lecture 003; Robbins & Monro, 1951.
    """
    check_learning_rate("init_value", init_value)
    _check_positive("tau", tau)

    def schedule(count):
        return init_value / (1 + jnp.asarray(count, jnp.float32) / tau)

    return schedule


def linear_then_exponential(
    init_value: jax.typing.ArrayLike,
    tau: jax.typing.ArrayLike,
    *,
    end_value: jax.typing.ArrayLike | None = None,
) -> Schedule:
    r"""Lecture 002's decay: linear for :math:`k \le \tau`, exponential for :math:`k \ge \tau`.

    The lecture writes

    .. math::
      a_k = \left(1 - \tfrac{k}{\tau}\right) a_0 + \tfrac{k}{\tau} a_\tau
      \quad (k \le \tau), \qquad a_k = a_0 e^{-k/\tau} \quad (k \ge \tau).

    Both formulas claim :math:`k = \tau`, where they agree only if
    :math:`a_\tau = a_0 e^{-1}`: that is the default ``end_value``, and the schedule is
    then exactly the lecture's two formulas. With another ``end_value`` the exponential
    part continues from it, :math:`a_k = a_\tau e^{-(k - \tau)/\tau}` for
    :math:`k \ge \tau` (the lecture's formula when :math:`a_\tau = a_0/e`), so the rate
    never jumps. Each part alone is :func:`linear_decay` and :func:`exponential_decay`
    (the lecture also offers them as alternatives: "linear or exponential decay").

    Args:
      init_value: :math:`a_0 \ge 0`.
      tau: :math:`\tau > 0`, in steps: the end of the linear part and the decay time of
        the exponential part.
      end_value: :math:`a_\tau \ge 0`, the rate at step :math:`\tau` (default
        :math:`a_0 / e`).

    Returns:
      A schedule ``k -> a_k``.

    Example:
      >>> import jaxopt_lab as jol
      >>> lr = jol.schedules.linear_then_exponential(0.1, 100)
      >>> [round(float(lr(k)), 5) for k in (0, 50, 100, 200)]  # 0.1/e at 100, 0.1/e^2 at 200
      [0.1, 0.06839, 0.03679, 0.01353]

    References:
      Congeduti, "Optimization" (lecture 002), "SGD Learning Rate".
    """
    check_learning_rate("init_value", init_value)
    if end_value is not None:
        check_learning_rate("end_value", end_value)
    _check_positive("tau", tau)

    def schedule(count):
        k = jnp.asarray(count, jnp.float32)
        end = init_value * math.exp(-1.0) if end_value is None else end_value
        frac = jnp.minimum(k / tau, 1.0)
        linear = (1 - frac) * init_value + frac * end
        exponential = end * jnp.exp(-jnp.maximum(k - tau, 0.0) / tau)
        return jnp.where(k <= tau, linear, exponential)

    return schedule


class RobbinsMonro(NamedTuple):
    """What :func:`robbins_monro` returns: partial sums of the rates and the verdicts."""

    horizon: int  # K: the rates of steps 0, ..., K - 1 are summed
    sum_rates: float  # sum of eta_k over the K steps
    sum_rates_tenth: float  # the same over the first K // 10 steps
    sum_squares: float  # sum of eta_k^2 over the K steps
    sum_squares_tenth: float  # the same over the first K // 10 steps
    sum_diverges: bool  # the steps after K/10 still add more than rtol of sum_rates
    squares_converge: bool  # the steps after K/10 add at most rtol of sum_squares
    rtol: float  # the share that separates "still growing" from "settled"

    @property
    def satisfied(self) -> bool:
        """Both conditions hold (numerically, at this horizon)."""
        return self.sum_diverges and self.squares_converge


_CHUNK = 1 << 20


def _rates(schedule: Callable, start: int, stop: int) -> np.ndarray:
    counts = np.arange(start, stop, dtype=np.float64)
    try:
        values = np.asarray(schedule(counts), np.float64)
    except (TypeError, ValueError, jax.errors.ConcretizationTypeError) as e:
        raise TypeError(
            "`schedule` must accept an array of steps (it is called on steps "
            f"{start}..{stop - 1} at once): use array operations such as jnp.where, not "
            f"Python `if`. The call failed with: {type(e).__name__}: {e}"
        ) from e
    if values.shape == ():
        values = np.full(counts.shape, float(values))
    if values.shape != counts.shape:
        raise ValueError(
            f"`schedule` must return one rate per step, got shape {values.shape} for "
            f"{counts.size} steps."
        )
    bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0)))
    if bad.size:
        k = int(counts[bad[0]])
        raise ValueError(
            f"`schedule` gave {values[bad[0]]!r} at step {k}; learning rates must be finite "
            "and >= 0."
        )
    return values


def robbins_monro(
    schedule: Schedule | float, *, horizon: int = 10**6, rtol: float = 0.01
) -> RobbinsMonro:
    r"""Checks the Robbins-Monro conditions numerically, over ``horizon`` steps.

    SGD converges (with further conditions on the cost) when

    .. math::
      \sum_k \eta_k = \infty \qquad \text{and} \qquad \sum_k \eta_k^2 < \infty

    (Eskandari, lecture 004; Goodfellow et al. ch. 8 as taught by Favaro, lecture 003).
    An infinite sum cannot be computed; this is a heuristic on partial sums. With
    :math:`S(n) = \sum_{k < n} \eta_k` over the steps an optimizer uses (:math:`k = 0,
    1, \ldots`; the schedule's value at step 0 is the first rate) and :math:`K` the
    horizon, a series is judged

    * divergent when its last 90% of steps still add more than ``rtol`` of the total,
      :math:`(S(K) - S(K/10)) / S(K) > \text{rtol}`;
    * convergent otherwise (it has settled to within ``rtol`` over the last decade).

    At the default :math:`K = 10^6`, :math:`\text{rtol} = 0.01`, the harmonic series
    :math:`1/(k+1)` adds 16% over its last decade (divergent), :math:`1/(k+1)^2` adds
    :math:`6 \cdot 10^{-6}` (convergent), a constant rate 90%. The verdict holds for this
    horizon only: series near the boundary are misjudged (:math:`(k+1)^{-1.1}` converges
    but still adds 9% per decade at :math:`10^6`), and a rate that stays flat for
    :math:`\tau` steps before decaying (``inverse_time(a0, tau)``) needs a horizon of
    about :math:`10^3\tau` or more before its squares look settled.

    Args:
      schedule: ``step -> rate``, called once on a float64 NumPy array of steps
        (vectorized, as the schedules of this module and optax's are), or a number for a
        constant rate.
      horizon: :math:`K`, the number of steps summed, a whole number >= 10 (default
        :math:`10^6`). Evaluated in chunks of about a million steps.
      rtol: the share of the total that the steps after :math:`K/10` may add for the
        series to count as settled, in (0, 1).

    Returns:
      A :class:`RobbinsMonro`: the partial sums at :math:`K` and :math:`K/10`, the
      verdicts ``sum_diverges`` and ``squares_converge``, and ``.satisfied`` (both).

    Example:
      >>> import jaxopt_lab as jol
      >>> jol.schedules.robbins_monro(jol.schedules.inverse_time(0.1, 1.0)).satisfied
      True
      >>> jol.schedules.robbins_monro(0.1).squares_converge  # constant: the squares diverge
      False

    References:
      Eskandari, "Deep Learning (Optimization)" (lecture 004), SGD; Goodfellow et al. ch. 8
      as taught by Favaro (lecture 003), "Stochastic Gradient Descent"; Robbins & Monro,
      "A stochastic approximation method", 1951.
    """
    horizon = check_count(
        horizon,
        "horizon",
        minimum=10,
        maximum=10**10,
        fix="Pass the number of steps to sum, e.g. horizon=10**6.",
    )
    _check_share(rtol)
    if not callable(schedule):
        check_learning_rate("schedule", schedule, schedule=False)
        rate = float(schedule)
        schedule = lambda k: np.full(np.shape(k), rate)
    tenth = horizon // 10
    sums = np.zeros((2, 2))  # [before K/10, after] x [rates, squares]
    for start in range(0, horizon, _CHUNK):
        stop = min(start + _CHUNK, horizon)
        eta = _rates(schedule, start, stop)
        split = min(max(tenth - start, 0), stop - start)
        for part, values in enumerate((eta[:split], eta[split:])):
            sums[part] += values.sum(), np.square(values).sum()
    (rates_tenth, squares_tenth), (rates_rest, squares_rest) = sums
    total_rates, total_squares = rates_tenth + rates_rest, squares_tenth + squares_rest
    return RobbinsMonro(
        horizon=horizon,
        sum_rates=float(total_rates),
        sum_rates_tenth=float(rates_tenth),
        sum_squares=float(total_squares),
        sum_squares_tenth=float(squares_tenth),
        sum_diverges=bool(rates_rest > rtol * total_rates),
        squares_converge=bool(squares_rest <= rtol * total_squares),
        rtol=float(rtol),
    )


def _check_share(rtol) -> None:
    arr = real_scalar("rtol", rtol, example="0.01")
    if arr is not None and not (0 < float(arr) < 1):
        raise ValueError(
            f"`rtol` must be in (0, 1), got {rtol!r}: the share of the partial sum that the "
            "steps after horizon/10 may add for the series to count as settled. Pass e.g. 0.01."
        )
