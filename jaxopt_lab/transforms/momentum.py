"""Momentum in its textbook forms: accumulated trace, Nesterov (both forms), and EMA.

The ways the lectures write momentum, built from the blocks below:

* velocity (Grosse & Ba, CSC421 lectures 7-8, lecture 000; Goodfellow et al. ch. 8 as
  taught by Favaro, lecture 003, and by Eskandari, lecture 004: Goodfellow alg. 8.2):
  :math:`p \\leftarrow \\mu p - \\alpha g,\\; \\theta \\leftarrow \\theta + p`
  = ``chain(scale_by_learning_rate(lr), scale_by_trace(mu))``;
* accumulate (LeCun & Defazio, "Optimization for Deep Learning", lecture 001: the heavy
  ball): :math:`p \\leftarrow \\beta p + g,\\; w \\leftarrow w - \\gamma p`
  = ``chain(scale_by_trace(beta), scale_by_learning_rate(lr))``;
* EMA (Congeduti, "Optimization", lecture 002):
  :math:`v \\leftarrow \\beta v + (1-\\beta) g,\\; w \\leftarrow w - \\alpha v`
  = ``chain(scale_by_ema(beta), scale_by_learning_rate(lr))``;
* Nesterov, lecture 001's form on the shifted variable ``scale_by_trace(nesterov=True)``,
  and lecture 003's look-ahead form :func:`scale_by_nesterov_lookahead`, which takes the
  gradient at :math:`\\theta + \\beta v` through the loss (``value_fn``).

With a constant learning rate the velocity and accumulate forms give the same iterates
(:math:`p_{vel} = -\\alpha p_{acc}`); with a schedule they differ, because the velocity
form scales each gradient by the rate in force when it was taken.

The momentum coefficient may be a number or a schedule ``count -> beta`` (lecture 001
writes :math:`\\hat\\beta_k`), read at the number of updates made so far, like a
learning-rate schedule; :func:`nesterov_momentum_schedule` is Nesterov's
:math:`(k-1)/(k+2)`. With a schedule the state carries that count (``TraceWithCountState``,
``EmaWithCountState``); with a number it is ``TraceState`` / ``EmaState``, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab._types import ScalarOrSchedule
from jaxopt_lab._validation import check_bool, check_learning_rate, check_unit_interval
from jaxopt_lab.transforms._common import (
    cast_like,
    check_float_params,
    check_update_args,
    safe_increment,
    scale,
)

MomentumOrSchedule = ScalarOrSchedule
"""A momentum coefficient: a number in [0, 1) (maybe traced) or a schedule ``count -> beta``."""


class TraceState(NamedTuple):
    """State of :func:`scale_by_trace` with a constant ``beta``."""

    trace: optax.Updates  # pytree like params, params' dtype: the accumulated p


class TraceWithCountState(NamedTuple):
    """State of :func:`scale_by_trace` when ``beta`` is a schedule."""

    count: jax.Array  # int32 scalar: updates so far (k), where the schedule is read
    trace: optax.Updates  # pytree like params, params' dtype: the accumulated p


class EmaState(NamedTuple):
    """State of :func:`scale_by_ema` with a constant ``beta``."""

    ema: optax.Updates  # pytree like params, params' dtype: the moving average v


class EmaWithCountState(NamedTuple):
    """State of :func:`scale_by_ema` when ``beta`` is a schedule."""

    count: jax.Array  # int32 scalar: updates so far (k), where the schedule is read
    ema: optax.Updates  # pytree like params, params' dtype: the moving average v


class NesterovLookaheadState(NamedTuple):
    """State of :func:`scale_by_nesterov_lookahead`."""

    count: jax.Array  # int32 scalar: updates so far (k), where schedules are read
    velocity: optax.Updates  # pytree like params, params' dtype: v = theta_k - theta_{k-1}


def check_momentum(name: str, value: Any, example: str = "0.9") -> None:
    """Requires a momentum coefficient in [0, 1), or a schedule whose value at step 0 is.

    A number is checked as every decay rate is (``TypeError`` for ``None``, a string, a
    bool or a list; ``ValueError`` outside [0, 1), NaN or infinity), naming ``name``; a
    schedule is run at step 0 and its value checked the same way (one that cannot run
    eagerly is left unchecked, as are traced values).
    """
    if not callable(value) or isinstance(value, jax.core.Tracer):
        check_unit_interval(name, value, example)
        return
    try:
        at_zero = value(0)
    except Exception:  # a schedule that cannot run eagerly is left unchecked
        return
    try:
        check_unit_interval(name, at_zero, example)
    except (TypeError, ValueError) as e:
        note = f" (The schedule passed as `{name}` returned {at_zero!r} at step 0.)"
        raise type(e)(f"{e}{note}") from None


def value_at(hyperparameter: Any, count: jax.Array) -> Any:
    """``hyperparameter(count)`` for a schedule, else the hyperparameter itself."""
    return hyperparameter(count) if callable(hyperparameter) else hyperparameter


def nesterov_momentum_schedule() -> Callable[[jax.typing.ArrayLike], jax.Array]:
    r"""Nesterov's momentum coefficient :math:`\beta_k = (k-1)/(k+2)` at update count ``k``.

    ``k`` counts the updates made before this one (0, 1, 2, ...), which is where every
    schedule here is read; :math:`v_k = \theta_k - \theta_{k-1}` is zero at ``k = 0``, where
    the formula's :math:`-1/2` is clipped to 0. Values: 0, 0, 1/4, 2/5, 1/2, 4/7, ... -> 1.
    With the look-ahead form of lecture 003 (``jol.nesterov(lr, beta=schedule,
    form="lookahead")``) this is Nesterov's accelerated gradient method as Su, Boyd &
    Candès (2016) write it, :math:`x_k = y_{k-1} - s\nabla f(y_{k-1})`,
    :math:`y_k = x_k + \frac{k-1}{k+2}(x_k - x_{k-1})`: the :math:`O(1/k^2)` rate on
    convex problems that lecture 003 quotes and the "VERY carefully chosen constants" of
    LeCun & Defazio (lecture 001). Lecture 001 writes the coefficient :math:`\hat\beta_k`.

    Returns:
      A schedule ``count -> beta`` (float32), usable as ``beta`` of :func:`scale_by_trace`,
      :func:`scale_by_ema`, :func:`scale_by_nesterov_lookahead` and the named momentum
      optimizers.

    Example:
      >>> from jaxopt_lab.transforms.momentum import nesterov_momentum_schedule
      >>> beta = nesterov_momentum_schedule()
      >>> [round(float(beta(k)), 4) for k in range(5)]
      [0.0, 0.0, 0.25, 0.4, 0.5]

    References:
      Nesterov, 1983; Beck & Teboulle, 2009 (FISTA); Su, Boyd & Candès, "A differential
      equation for modeling Nesterov's accelerated gradient method", JMLR 2016.
    """

    def schedule(count: jax.typing.ArrayLike) -> jax.Array:
        k = jnp.asarray(count).astype(jnp.float32)
        return jnp.maximum(k - 1.0, 0.0) / (k + 2.0)

    return schedule


def scale_by_trace(
    beta: MomentumOrSchedule = 0.9, *, nesterov: bool = False
) -> optax.GradientTransformationExtraArgs:
    r"""Accumulates updates into a trace :math:`p \leftarrow \beta_k p + u`.

    Outputs :math:`p` (heavy ball), or with ``nesterov=True`` the look-ahead
    :math:`u + \beta_k p` of lecture 001 (Nesterov's momentum:
    :math:`w \leftarrow w - \gamma (\nabla f + \beta p_{k+1})`), which is
    ``torch.optim.SGD(nesterov=True)`` and ``optax.sgd(nesterov=True)``.

    Args:
      beta: the momentum coefficient in [0, 1), or a schedule ``count -> beta``
        (lecture 001's :math:`\hat\beta_k`, e.g. :func:`nesterov_momentum_schedule`) read
        at the number of updates so far. A number is checked when concrete (a traced one,
        e.g. under ``vmap`` over a grid, is not); a schedule is checked at step 0.
      nesterov: output the Nesterov look-ahead instead of the trace. Static.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; the trace starts at zero and keeps
      the dtype of the parameters. Its state is ``TraceState(trace)``, or
      ``TraceWithCountState(count, trace)`` when ``beta`` is a schedule.

    References:
      LeCun & Defazio, "Optimization for Deep Learning" (lecture 001), "Momentum
      acceleration methods"; Polyak, 1964; Sutskever et al., 2013.
    """
    check_momentum("beta", beta)
    check_bool("nesterov", nesterov)
    scheduled = callable(beta)

    def init_fn(params):
        check_float_params(params)
        trace = optax.tree.zeros_like(params)
        if scheduled:
            return TraceWithCountState(count=jnp.zeros([], jnp.int32), trace=trace)
        return TraceState(trace=trace)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_update_args(updates, state.trace, params)
        b = beta(state.count) if scheduled else beta
        trace = jax.tree.map(lambda u, p: cast_like(b, p) * p + u, updates, state.trace)
        if nesterov:
            out = jax.tree.map(lambda u, p: u + cast_like(b, p) * p, updates, trace)
        else:
            out = trace
        if scheduled:
            return out, TraceWithCountState(count=safe_increment(state.count), trace=trace)
        return out, TraceState(trace=trace)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_ema(beta: MomentumOrSchedule = 0.9) -> optax.GradientTransformationExtraArgs:
    r"""Exponential moving average :math:`v \leftarrow \beta_k v + (1 - \beta_k) u`, outputs v.

    Lecture 002's momentum (Congeduti, "Optimization"): with :math:`v^{-1} = 0` and a
    constant :math:`\beta`, :math:`v^k = (1-\beta)\sum_{t=0}^{k} \beta^{k-t} S^t` (no bias
    correction).

    Args:
      beta: the averaging coefficient in [0, 1), or a schedule ``count -> beta`` read at
        the number of updates so far. Checked when concrete (a schedule at step 0);
        traced values are not checked.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state is ``EmaState(ema)``, or
      ``EmaWithCountState(count, ema)`` when ``beta`` is a schedule.

    References:
      Congeduti, "Optimization" (lecture 002), "Momentum".
    """
    check_momentum("beta", beta)
    scheduled = callable(beta)

    def init_fn(params):
        check_float_params(params)
        ema = optax.tree.zeros_like(params)
        if scheduled:
            return EmaWithCountState(count=jnp.zeros([], jnp.int32), ema=ema)
        return EmaState(ema=ema)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_update_args(updates, state.ema, params)
        b = beta(state.count) if scheduled else beta
        ema = jax.tree.map(lambda u, v: ema_update(u, v, b), updates, state.ema)
        if scheduled:
            return ema, EmaWithCountState(count=safe_increment(state.count), ema=ema)
        return ema, EmaState(ema=ema)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_nesterov_lookahead(
    learning_rate: ScalarOrSchedule, beta: MomentumOrSchedule = 0.9
) -> optax.GradientTransformationExtraArgs:
    r"""Nesterov's momentum as lecture 003 writes it, with the gradient at the look-ahead.

    .. math::
      v \leftarrow \beta_k v - \epsilon_k \nabla L(\theta + \beta_k v), \qquad
      \theta \leftarrow \theta + v.

    The parameters are lecture 003's :math:`\theta`; the output is the new velocity
    :math:`v`, which is the whole step (this block includes the learning rate and the
    minus sign, as Goodfellow's velocity does). The incoming gradient (at
    :math:`\theta`) is not used: the gradient at :math:`\theta + \beta_k v` comes from the
    loss, passed to ``update`` as the extra argument ``value_fn`` (``jol.train`` passes
    it), so a step costs one more gradient evaluation than the other forms.

    Args:
      learning_rate: :math:`\epsilon_k`, a number or a schedule.
      beta: :math:`\beta_k \in [0, 1)`, a number or a schedule ``count -> beta`` (e.g.
        :func:`nesterov_momentum_schedule`).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params`` and
      ``value_fn`` (``params -> scalar loss``); state ``NesterovLookaheadState``.

    References:
      Goodfellow et al. ch. 8 as taught by Favaro (lecture 003), "Nesterov Momentum";
      Sutskever, Martens, Dahl & Hinton, 2013.
    """
    check_learning_rate("learning_rate", learning_rate)
    check_momentum("beta", beta)

    def init_fn(params):
        check_float_params(params)
        return NesterovLookaheadState(
            count=jnp.zeros([], jnp.int32), velocity=optax.tree.zeros_like(params)
        )

    def update_fn(updates, state, params=None, *, value_fn=None, **extra_args):
        del extra_args
        if params is None or value_fn is None:
            raise ValueError(
                'Nesterov momentum in its look-ahead form (form="lookahead") takes the '
                "gradient at theta + beta v, so it needs the loss: call "
                "`update(grads, state, params, value_fn=loss_fn)` with `params` and "
                "`value_fn` (params -> scalar loss); jol.train passes both. Without the "
                'loss, use the default form (form="accumulate").'
            )
        check_update_args(updates, state.velocity, params)
        b = value_at(beta, state.count)
        lr = value_at(learning_rate, state.count)
        ahead = jax.tree.map(
            lambda p, v: p + (cast_like(b, v) * v).astype(p.dtype), params, state.velocity
        )
        grads = jax.grad(value_fn)(ahead)
        velocity = jax.tree.map(
            lambda v, g: cast_like(b, v) * v - scale(lr, g).astype(v.dtype),
            state.velocity,
            grads,
        )
        return velocity, NesterovLookaheadState(
            count=safe_increment(state.count), velocity=velocity
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def ema_update(u: jax.Array, v: jax.Array, decay: jax.typing.ArrayLike) -> jax.Array:
    """``(1 - decay) * u + decay * v`` in ``v``'s dtype."""
    # 1 - decay before the cast: for a Python float it is then exact in double
    # precision (float32(1 - 0.999) is 1.3e-5 closer to the truth than 1 - float32(0.999))
    return cast_like(1 - decay, v) * jnp.asarray(u, v.dtype) + cast_like(decay, v) * v
