r"""Nonlinear conjugate gradients, a full-batch method, as optax transformations.

LeCun & Defazio ("Optimization for Deep Learning", lecture 001): "For batch optimization,
LBFGS & Conjugate-Gradients are far better than vanilla gradient descent", but "we don't
know how to best combine these techniques with stochasticity". Nonlinear CG moves along

.. math::
  d_k = -g_k + \beta_k d_{k-1}, \qquad \theta_{k+1} = \theta_k + \eta_k d_k,

with the step :math:`\eta_k` from a line search on the loss. On a quadratic with exact
line searches the directions are conjugate and CG ends in at most :math:`n` steps.

:func:`scale_by_conjugate_gradient` makes the direction (in optax's sign convention: it
outputs :math:`-d_k`, which the learning rate turns back into a descent step);
:func:`zoom_linesearch` scales it by a step that meets the strong Wolfe conditions. The
named optimizer :func:`jaxopt_lab.nonlinear_cg` chains them as ``optax.lbfgs`` chains
``scale_by_lbfgs``, a learning rate and ``optax.scale_by_zoom_linesearch``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_lab._validation import check_choice, check_count, check_positive
from jaxopt_lab.transforms._common import check_float_params, check_update_args, compute_dtype

METHODS = ("polak_ribiere_plus", "fletcher_reeves", "hestenes_stiefel")


class ConjugateGradientState(NamedTuple):
    """State of :func:`scale_by_conjugate_gradient`."""

    grad: optax.Updates  # like params, params' dtype: g_{k-1}, the previous gradient (0 at k=0)
    direction: optax.Updates  # like params, params' dtype: -d_{k-1}, the previous output
    restarts: jax.Array  # int32 scalar: steps that fell back to steepest descent (k=0 too)


def _vdot(a, b) -> jax.Array:
    """Sum of the leaves' inner products, in float32 at least (bfloat16 sums drift)."""
    acc = [compute_dtype(x.dtype) for x in jax.tree.leaves(a)]
    dtype = jnp.result_type(*acc) if acc else jnp.float32
    terms = [
        jnp.vdot(x.astype(dtype), y.astype(dtype))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    ]
    return sum(terms, jnp.zeros((), dtype))


def scale_by_conjugate_gradient(
    *, method: str = "polak_ribiere_plus"
) -> optax.GradientTransformationExtraArgs:
    r"""Replaces the gradient by the nonlinear conjugate-gradient direction.

    With :math:`g_k` the incoming gradient, :math:`y_k = g_k - g_{k-1}` and
    :math:`d_{k-1}` the previous direction:

    * ``"polak_ribiere_plus"`` (PR+):
      :math:`\beta_k = \max(0, g_k^\top y_k / g_{k-1}^\top g_{k-1})`;
    * ``"fletcher_reeves"``: :math:`\beta_k = g_k^\top g_k / g_{k-1}^\top g_{k-1}`;
    * ``"hestenes_stiefel"`` (HS+): :math:`\beta_k = \max(0, g_k^\top y_k / d_{k-1}^\top y_k)`;

    then :math:`d_k = -g_k + \beta_k d_{k-1}`. It restarts (:math:`d_k = -g_k`, steepest
    descent) at the first step, when :math:`\beta_k` would be negative or its denominator
    is not positive, and when :math:`d_k` is not a descent direction
    (:math:`g_k^\top d_k \ge 0`, possible after an inexact line search); ``restarts`` in
    the state counts them. The output is :math:`-d_k` (optax's convention: the learning
    rate flips the sign), unscaled: follow it with a line search.

    Args:
      method: the formula for :math:`\beta_k`: ``"polak_ribiere_plus"``,
        ``"fletcher_reeves"`` or ``"hestenes_stiefel"``. Static, keyword-only.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    References:
      Nocedal & Wright, "Numerical Optimization", 2nd ed., §5.2 (FR, PR+, HS; restarts);
      Polak & Ribière, 1969; Fletcher & Reeves, 1964; Hestenes & Stiefel, 1952.
    """
    check_choice("method", method, METHODS)

    def init_fn(params):
        check_float_params(params)
        zeros = optax.tree.zeros_like(params)
        return ConjugateGradientState(
            grad=zeros, direction=zeros, restarts=jnp.zeros([], jnp.int32)
        )

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        check_update_args(updates, state.grad, params)
        g = jax.tree.map(lambda u, r: jnp.asarray(u).astype(r.dtype), updates, state.grad)
        y = jax.tree.map(lambda a, b: a - b, g, state.grad)
        if method == "fletcher_reeves":
            num, den = _vdot(g, g), _vdot(state.grad, state.grad)
        elif method == "polak_ribiere_plus":
            num, den = _vdot(g, y), _vdot(state.grad, state.grad)
        else:  # hestenes_stiefel: d_{k-1}' y, with d_{k-1} = -direction
            num, den = _vdot(g, y), -_vdot(state.direction, y)
        ok = (den > 0) & jnp.isfinite(num)
        beta = jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)
        beta = jnp.maximum(beta, 0.0)
        p = jax.tree.map(lambda a, q: a + beta.astype(q.dtype) * q, g, state.direction)
        descent = _vdot(g, p) > 0  # -p is a descent direction
        restart = (beta <= 0) | ~descent
        p = jax.tree.map(lambda a, q: jnp.where(restart, a, q), g, p)
        out = jax.tree.map(lambda q, u: q.astype(jnp.asarray(u).dtype), p, updates)
        return out, ConjugateGradientState(
            grad=g, direction=p, restarts=state.restarts + restart.astype(jnp.int32)
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def zoom_linesearch(
    *,
    max_linesearch_steps: int = 30,
    curv_rtol: float = 0.1,
    initial_guess_strategy: str = "keep",
) -> optax.GradientTransformationExtraArgs:
    r"""``optax.scale_by_zoom_linesearch`` that needs only ``value_fn`` and says so.

    Scales the incoming direction :math:`u` by a step :math:`\eta` meeting the strong
    Wolfe conditions, :math:`f(w + \eta u) \le f(w) + c_1 \eta \langle u, \nabla f\rangle`
    and :math:`|\langle \nabla f(w + \eta u), u\rangle| \le c_2 |\langle \nabla f(w), u\rangle|`.
    ``update`` takes ``params`` and ``value_fn`` (``params -> scalar loss``); ``value`` and
    ``grad`` (the loss and its gradient at ``params``) are computed from ``value_fn`` when
    not given (``jol.train`` gives them). A call without ``value_fn`` is a ``ValueError``
    that says how to pass it.

    Args:
      max_linesearch_steps: trial steps at most (each one value and gradient).
      curv_rtol: :math:`c_2`; 0.1, as Nocedal & Wright advise for nonlinear CG (0.9 suits
        quasi-Newton methods such as L-BFGS).
      initial_guess_strategy: ``"keep"`` (start from the previous step: CG's directions
        are not scaled like a Newton step) or ``"one"``. Static.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is optax's
      ``ScaleByZoomLinesearchState``.
    """
    max_linesearch_steps = check_count(
        max_linesearch_steps, "max_linesearch_steps", fix="E.g. max_linesearch_steps=30."
    )
    check_positive("curv_rtol", curv_rtol, "Pass e.g. curv_rtol=0.1 (in (0, 1)).", "0.1")
    check_choice("initial_guess_strategy", initial_guess_strategy, ("keep", "one"))
    inner = optax.scale_by_zoom_linesearch(
        max_linesearch_steps=max_linesearch_steps,
        curv_rtol=curv_rtol,
        initial_guess_strategy=initial_guess_strategy,
    )

    def update_fn(updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra):
        if params is None or value_fn is None:
            raise ValueError(
                "The line search needs the loss: call `update(grads, state, params, "
                "value_fn=loss_fn)` with `params` and `value_fn` (params -> scalar loss), "
                "and `value=` and `grad=` at `params` if you have them; jol.train passes "
                "all of them."
            )
        if value is None or grad is None:
            value, grad = jax.value_and_grad(value_fn)(params)
        return inner.update(
            updates, state, params, value=value, grad=grad, value_fn=value_fn, **extra
        )

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)
