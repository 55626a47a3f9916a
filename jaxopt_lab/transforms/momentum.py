"""Momentum in its textbook forms: accumulated trace, Nesterov, and EMA.

Three ways the lectures write momentum, all built from the two blocks below:

* velocity (lectures 000, 003, 004: Goodfellow alg. 8.2):
  :math:`p \\leftarrow \\mu p - \\alpha g,\\; \\theta \\leftarrow \\theta + p`
  = ``chain(scale_by_learning_rate(lr), scale_by_trace(mu))``;
* accumulate (lecture 001, heavy ball):
  :math:`p \\leftarrow \\beta p + g,\\; w \\leftarrow w - \\gamma p`
  = ``chain(scale_by_trace(beta), scale_by_learning_rate(lr))``;
* EMA (lecture 002): :math:`v \\leftarrow \\beta v + (1-\\beta) g,\\; w \\leftarrow w - \\alpha v`
  = ``chain(scale_by_ema(beta), scale_by_learning_rate(lr))``.

With a constant learning rate the velocity and accumulate forms give the same iterates
(:math:`p_{vel} = -\\alpha p_{acc}`); with a schedule they differ, because the velocity
form scales each gradient by the rate in force when it was taken.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab._validation import check_bool, check_unit_interval
from jaxopt_lab.transforms._common import cast_like, check_float_params, check_update_args


class TraceState(NamedTuple):
    """State of :func:`scale_by_trace`."""

    trace: optax.Updates  # pytree like params, params' dtype: the accumulated p


class EmaState(NamedTuple):
    """State of :func:`scale_by_ema`."""

    ema: optax.Updates  # pytree like params, params' dtype: the moving average v


def scale_by_trace(
    beta: jax.typing.ArrayLike = 0.9, *, nesterov: bool = False
) -> optax.GradientTransformationExtraArgs:
    r"""Accumulates updates into a trace :math:`p \leftarrow \beta p + u`.

    Outputs :math:`p` (heavy ball), or with ``nesterov=True`` the look-ahead
    :math:`u + \beta p` of lecture 001 (Nesterov's momentum:
    :math:`w \leftarrow w - \gamma (\nabla f + \beta p_{k+1})`), which is
    ``torch.optim.SGD(nesterov=True)`` and ``optax.sgd(nesterov=True)``.

    Args:
      beta: the momentum coefficient in [0, 1). Checked when concrete; a traced value
        (e.g. under ``vmap`` over a grid) is not checked.
      nesterov: output the Nesterov look-ahead instead of the trace. Static.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; the trace starts at zero and keeps
      the dtype of the parameters.

    References:
      Lecture 001 (LeCun & Defazio), "Momentum acceleration methods";
      Polyak, 1964; Sutskever et al., 2013.
    """
    check_unit_interval("beta", beta)
    check_bool("nesterov", nesterov)

    def init_fn(params):
        check_float_params(params)
        return TraceState(trace=optax.tree.zeros_like(params))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_update_args(updates, state.trace, params)
        trace = jax.tree.map(lambda u, p: cast_like(beta, p) * p + u, updates, state.trace)
        if nesterov:
            out = jax.tree.map(lambda u, p: u + cast_like(beta, p) * p, updates, trace)
        else:
            out = trace
        return out, TraceState(trace=trace)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_ema(beta: jax.typing.ArrayLike = 0.9) -> optax.GradientTransformationExtraArgs:
    r"""Exponential moving average :math:`v \leftarrow \beta v + (1 - \beta) u`, outputs v.

    Lecture 002's momentum: with :math:`v^{-1} = 0`,
    :math:`v^k = (1-\beta)\sum_{t=0}^{k} \beta^{k-t} S^t` (no bias correction).

    Args:
      beta: the averaging coefficient in [0, 1). Checked when concrete; traced values
        are not checked.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    References:
      Lecture 002 (Congeduti), "Momentum".
    """
    check_unit_interval("beta", beta)

    def init_fn(params):
        check_float_params(params)
        return EmaState(ema=optax.tree.zeros_like(params))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_update_args(updates, state.ema, params)
        ema = jax.tree.map(lambda u, v: ema_update(u, v, beta), updates, state.ema)
        return ema, EmaState(ema=ema)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def ema_update(u: jax.Array, v: jax.Array, decay: jax.typing.ArrayLike) -> jax.Array:
    """``(1 - decay) * u + decay * v`` in ``v``'s dtype."""
    # 1 - decay before the cast: for a Python float it is then exact in double
    # precision (float32(1 - 0.999) is 1.3e-5 closer to the truth than 1 - float32(0.999))
    return cast_like(1 - decay, v) * jnp.asarray(u, v.dtype) + cast_like(decay, v) * v
