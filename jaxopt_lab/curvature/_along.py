r"""``along_gradient``: the curvature of the loss along its own gradient, and the step it allows.

The second-order Taylor test of Goodfellow et al. ch. 8 as taught by Favaro (lecture 003,
"Ill-Conditioning") and of Eskandari, "Deep Learning (Optimization)" (lecture 004): a
gradient step of size :math:`\epsilon` changes the loss by about

.. math::
   L(\theta - \epsilon g) - L(\theta) \approx -\epsilon\, g^\top g
   + \tfrac12 \epsilon^2\, g^\top H g,

so it decreases while :math:`g^\top g > \tfrac{\epsilon}{2} g^\top H g`. When the
curvature along :math:`g` is large, only a small step is safe, and gradient descent
stalls on an ill-conditioned Hessian.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_lab._types import Params
from jaxopt_lab.curvature._operator import HessianOperator, check_problem, functional_loss


class AlongGradient(NamedTuple):
    """What :func:`along_gradient` returns; every field a 0-d array."""

    curvature: jax.Array  # g'Hg / g'g, the second derivative along g/|g| (NaN when g = 0)
    optimal_step: jax.Array  # g'g / g'Hg, minimizes the quadratic model along -g (inf if g'Hg <= 0)
    max_step: jax.Array  # 2 g'g / g'Hg, the largest step the quadratic model allows (inf likewise)
    grad_norm_sq: jax.Array  # g'g
    gHg: jax.Array  # g'Hg, by one Hessian-vector product
    loss: jax.Array  # L(theta)


@dataclasses.dataclass(frozen=True)
class _WithArgs:
    """``f(params, (fixed, args), None)``: the loss's further arguments ride in ``extra``.

    The curvature operator holds the point, the fixed state and the data as pytree leaves;
    arguments of any shape (a scalar weight decay, a batch of another length) are not
    examples to average over, so they travel beside the fixed state, traced, not as data.
    """

    inner: Callable[..., jax.Array]  # f(params, fixed, args) from functional_loss(splat=True)

    def __call__(self, params, extra, batch):
        del batch
        fixed, args = extra
        return self.inner(params, fixed, args)


def _vdot(a: Params, b: Params) -> jax.Array:
    """:math:`a^\\top b` over the leaves of two pytrees, in their common dtype."""
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    dtype = jnp.result_type(*leaves_a)
    return sum(
        (jnp.vdot(x, y).astype(dtype) for x, y in zip(leaves_a, leaves_b, strict=True)),
        start=jnp.zeros((), dtype),
    )


def along_gradient(loss_fn: Callable[..., jax.Array], params: Any, *args: Any) -> AlongGradient:
    r"""Curvature of ``loss_fn`` along its gradient, and the gradient steps it allows.

    With :math:`g = \nabla L(\theta)` and :math:`H = \nabla^2 L(\theta)`, the quadratic
    model of a gradient step (Goodfellow et al. ch. 8 as taught by Favaro, lecture 003;
    Eskandari, "Deep Learning (Optimization)", lecture 004)

    .. math::
       m(\epsilon) = L(\theta) - \epsilon\, g^\top g + \tfrac12 \epsilon^2\, g^\top H g

    decreases while :math:`g^\top g > \tfrac{\epsilon}{2} g^\top H g`. This returns

    * ``curvature`` :math:`= g^\top H g / g^\top g`, the second derivative along the unit
      vector :math:`g/|g|` (a weighted average of the Hessian's eigenvalues, lecture 004);
    * ``optimal_step`` :math:`= g^\top g / g^\top H g = 1/\text{curvature}`, the minimiser
      of :math:`m` (the line search's answer on a quadratic; lecture 001's "optimal
      learning rate = inverse second derivative", LeCun, "Optimization for Deep
      Learning", along this one direction);
    * ``max_step`` :math:`= 2\, g^\top g / g^\top H g`, where :math:`m` is back at
      :math:`L(\theta)`: a step past it increases the model (LeCun's
      :math:`\gamma > 2\gamma_{opt}`, lecture 001).

    When :math:`g^\top H g \le 0` (zero or negative curvature along :math:`g`) the
    quadratic model decreases for every step :math:`\epsilon > 0`, so ``optimal_step``
    and ``max_step`` are ``inf`` and ``curvature`` is reported as it is (zero or
    negative): near a saddle point the gradient direction descends faster than the
    gradient predicts. At a critical point (:math:`g = 0`) there is no direction:
    ``curvature``, ``optimal_step`` and ``max_step`` are NaN.

    :math:`Hg` is one Hessian-vector product, forward-over-reverse (``jax.jvp`` of
    ``jax.grad``), through :class:`~jaxopt_lab.curvature.HessianOperator`: nothing of
    size :math:`D \times D` is formed. Usable inside ``jit`` and ``vmap``.

    Args:
      loss_fn: ``loss_fn(params, *args) -> scalar``.
      params: a pytree of float32/float64 arrays, or an ``nnx.Module`` (then
        ``loss_fn(model, *args)``; the curvature is over its ``nnx.Param`` state, in
        inference mode, other state held fixed).
      *args: further arguments of ``loss_fn`` (a batch, several arrays, a scalar), held
        fixed.

    Returns:
      An :class:`AlongGradient` of 0-d arrays.

    Raises:
      TypeError, ValueError: for ``params`` with no float arrays or a ``loss_fn`` that
      does not return a real scalar (naming the argument).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_lab as jol
      >>> a = jnp.array([1.0, 10.0])
      >>> loss = lambda w: 0.5 * jnp.sum(a * w**2)
      >>> out = jol.curvature.along_gradient(loss, jnp.array([1.0, 0.0]))
      >>> float(out.curvature), float(out.optimal_step), float(out.max_step)
      (1.0, 1.0, 2.0)
    """
    loss, pure_params, fixed = functional_loss(loss_fn, params, splat=True)
    loss = _WithArgs(loss)
    extra = (fixed, tuple(args))
    try:
        jax.eval_shape(loss, pure_params, extra, None)
    except TypeError as e:
        if "positional argument" not in str(e):
            raise
        call = "loss_fn(params" + "".join(f", args[{i}]" for i in range(len(args))) + ")"
        raise TypeError(
            f"`loss_fn` is called here as {call} (the arguments after `params` are passed on "
            f"in order), and that call failed: {e}. Pass exactly the arguments it takes."
        ) from None
    check_problem(loss, pure_params, extra, None)
    op = HessianOperator(loss, pure_params, extra, None, None, None)
    value, grad = op.loss_and_grad()
    hg = op.matvec(grad)
    gg = _vdot(grad, grad)
    ghg = _vdot(grad, hg).astype(gg.dtype)
    nan = jnp.asarray(jnp.nan, gg.dtype)
    inf = jnp.asarray(jnp.inf, gg.dtype)
    moving = gg > 0
    safe_gg = jnp.where(moving, gg, jnp.ones_like(gg))
    safe_ghg = jnp.where(ghg > 0, ghg, jnp.ones_like(ghg))
    step = jnp.where(ghg > 0, gg / safe_ghg, inf)
    return AlongGradient(
        curvature=jnp.where(moving, ghg / safe_gg, nan),
        optimal_step=jnp.where(moving, step, nan),
        max_step=jnp.where(moving, 2.0 * step, nan),
        grad_norm_sq=gg,
        gHg=ghg,
        loss=value,
    )
