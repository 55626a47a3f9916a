r"""The generalized Gauss-Newton matrix and the empirical Fisher, matrix-free.

For a loss :math:`L(\theta) = \ell(f(\theta, x), y)` of a model's outputs :math:`z = f(\theta, x)`,
the Hessian splits as

.. math::
   \nabla^2 L = J^\top H_z J + \sum_c \frac{\partial \ell}{\partial z_c} \nabla^2 f_c,
   \qquad J = \partial f / \partial \theta,\; H_z = \nabla_z^2 \ell,

and the generalized Gauss-Newton matrix (GGN) keeps the first term,
:math:`G = J^\top H_z J`: positive semi-definite whenever :math:`\ell` is convex in
:math:`z` (cross-entropy, squared error), and equal to the Hessian where the residual
term vanishes (a linear model, or zero residual). :math:`G v` is a Jacobian-vector
product, an output-space Hessian product and a vector-Jacobian product (Schraudolph
2002; Martens 2010): one linearisation of the model, no second derivative through it.

The empirical Fisher is :math:`F = \frac{1}{N}\sum_i g_i g_i^\top` with :math:`g_i` the
gradient of example :math:`i`'s loss (Kunstner et al. 2019 on how it differs from the
Fisher); :math:`F v = \frac{1}{N}\sum_i g_i (g_i^\top v)`: per-example directional
derivatives (a ``jvp``), then one gradient of their weighted sum, never an
:math:`N \times D` matrix.

Both are :class:`~jaxopt_lab.curvature.HessianOperator` s, so every function that takes a
Hessian operator (``eigenvalues``, ``trace``, ``density``, ``analyze``,
``sharpness_callback``'s ``curvature=``) takes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab._validation import check_count
from jaxopt_lab.curvature._operator import (
    HessianOperator,
    _data_mean,
    check_problem,
    default_mesh,
    functional_loss,
    num_examples,
    replicate,
)

OUTPUT_LOSSES = ("cross_entropy", "squared_error")
"""Output losses known by name, whose output Hessian products are in closed form:
``"cross_entropy"``: ``optax.softmax_cross_entropy_with_integer_labels(z, y).mean()``;
``"squared_error"``: ``jnp.mean((z - y) ** 2)``."""


def _cross_entropy(z: jax.Array, y: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(z, y).mean()


def _cross_entropy_hvp(z: jax.Array, y: jax.Array, u: jax.Array) -> jax.Array:
    # per example: (diag(p) - p p^T) u; the loss is the mean over the examples
    del y
    p = jax.nn.softmax(z, axis=-1)
    n = z.size // z.shape[-1]
    return (p * u - p * jnp.sum(p * u, axis=-1, keepdims=True)) / jnp.asarray(n, z.dtype)


def _squared_error(z: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((z - y) ** 2)


def _squared_error_hvp(z: jax.Array, y: jax.Array, u: jax.Array) -> jax.Array:
    del y
    return u * jnp.asarray(2.0 / z.size, u.dtype)


@dataclasses.dataclass(frozen=True)
class _AutodiffHvp:
    """:math:`H_z u` of a given output loss by forward-over-reverse autodiff (equal by the
    loss, so a new operator for the same loss reuses the compiled program)."""

    output_loss: Callable

    def __call__(self, z, y, u):
        return jax.jvp(lambda t: jax.grad(self.output_loss)(t, y), (z,), (u,))[1]


def _output_loss(output_loss: str | Callable) -> tuple[Callable, Callable]:
    """``(loss(z, y), hvp(z, y, u))`` for a named or given output loss."""
    if isinstance(output_loss, str):
        if output_loss == "cross_entropy":
            return _cross_entropy, _cross_entropy_hvp
        if output_loss == "squared_error":
            return _squared_error, _squared_error_hvp
        raise ValueError(
            f"`output_loss` must be one of {OUTPUT_LOSSES} or a function "
            f"output_loss(outputs, targets) -> scalar, got {output_loss!r}."
        )
    if not callable(output_loss):
        raise TypeError(
            "`output_loss` must be a function output_loss(outputs, targets) -> scalar (the "
            f"mean over the batch) or one of {OUTPUT_LOSSES}, got {output_loss!r}."
        )
    return output_loss, _AutodiffHvp(output_loss)


def _split(batch: Any) -> tuple[Any, Any]:
    try:
        x, y = batch
    except (TypeError, ValueError):
        raise TypeError(
            "`data` must be a pair (inputs, targets) (a tuple, or a NamedTuple such as "
            f"jol.datasets.digits().train), got {type(batch).__name__}."
        ) from None
    return x, y


@dataclasses.dataclass(frozen=True)
class _ComposedLoss:
    """``output_loss(apply(params, extra, x), y)``: the loss the GGN approximates the Hessian of."""

    apply: Callable  # apply(params, extra, x) -> outputs
    output_loss: Callable  # output_loss(outputs, y) -> scalar

    def __call__(self, params, extra, batch):
        x, y = _split(batch)
        return self.output_loss(self.apply(params, extra, x), y)


@jax.tree_util.register_pytree_node_class
class GGNOperator(HessianOperator):
    """The generalized Gauss-Newton matrix :math:`J^\\top H_z J`, averaged over the data.

    A :class:`HessianOperator` in every respect (``matvec``, ``loss_and_grad``, ``flat``,
    ``dense``, a pytree that jits without recompiling); build it with
    :func:`ggn_operator`.
    """

    kind = "ggn"

    def __init__(self, loss, params, extra, data, batch_size, mesh, output_hvp=None):
        super().__init__(loss, params, extra, data, batch_size, mesh)
        self.output_hvp = output_hvp

    def tree_flatten(self):
        children, aux = super().tree_flatten()
        return children, (*aux, self.output_hvp)

    @classmethod
    def tree_unflatten(cls, aux, children):
        loss, batch_size, mesh, output_hvp = aux
        return cls(loss, *children, batch_size, mesh, output_hvp)

    def with_params(self, params: Any) -> GGNOperator:
        return type(self)(
            self.loss, params, self.extra, self.data, self.batch_size, self.mesh, self.output_hvp
        )

    def _matvec(self, v: Any) -> Any:
        v = jax.tree.map(lambda t, p: jnp.asarray(t, p.dtype), v, self.params)
        apply = self.loss.apply

        def ggn(args, batch):
            params, extra, v = args
            x, y = _split(batch)
            # one forward pass: J v from the linearisation, J^T by its transpose
            z, jvp = jax.linearize(lambda p: apply(p, extra, x), params)
            hu = self.output_hvp(z, y, jvp(v))
            return jax.linear_transpose(jvp, params)(hu)[0]

        return _data_mean(ggn, (self.params, self.extra, v), self.data, self.batch_size, self.mesh)


@jax.tree_util.register_pytree_node_class
class FisherOperator(GGNOperator):
    """The empirical Fisher :math:`\\frac1N \\sum_i g_i g_i^\\top` of per-example gradients.

    A :class:`HessianOperator` in every respect; build it with :func:`fisher_operator`.
    """

    kind = "fisher"

    def _matvec(self, v: Any) -> Any:
        v = jax.tree.map(lambda t, p: jnp.asarray(t, p.dtype), v, self.params)
        loss = self.loss

        def fisher(args, batch):
            params, extra, v = args
            x, y = _split(batch)

            def per_example(p):  # (B,): each example's loss as a batch of one
                one = lambda xi, yi: loss.output_loss(
                    loss.apply(p, extra, jax.tree.map(lambda t: t[None], xi)),
                    jax.tree.map(lambda t: t[None], yi),
                )
                return jax.vmap(one)(x, y)

            _, gv = jax.jvp(per_example, (params,), (v,))  # g_i . v for every example
            gv = jax.lax.stop_gradient(gv)
            n = jnp.asarray(gv.shape[0], gv.dtype)
            return jax.grad(lambda p: jnp.sum(gv * per_example(p)) / n)(params)

        return _data_mean(
            fisher, (self.params, self.extra, v), self.data, self.batch_size, self.mesh
        )


def _build(cls, apply_fn, output_loss, params, data, batch_size, devices):
    if not callable(apply_fn):
        raise TypeError(
            f"`apply_fn` must be a function apply_fn(params, inputs) -> outputs, got {apply_fn!r}."
        )
    loss_of_outputs, output_hvp = _output_loss(output_loss)
    if data is None:
        raise ValueError(
            "`data` is required: the GGN and the Fisher are averages over examples; pass "
            "(inputs, targets)."
        )
    if batch_size is not None:
        batch_size = check_count(
            batch_size, "batch_size", fix="Pass e.g. 256, or None to use the whole dataset."
        )
    n = num_examples(data)
    _split(data)
    apply, pure_params, extra = functional_loss(apply_fn, params)
    loss = _ComposedLoss(apply, loss_of_outputs)
    b = n if batch_size is None else min(batch_size, n)
    batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct((b, *np.shape(x)[1:]), x.dtype), data)
    check_problem(loss, pure_params, extra, batch)
    mesh = default_mesh(devices, data)
    pure_params, extra = replicate((pure_params, extra), mesh)
    return cls(loss, pure_params, extra, data, batch_size, mesh, output_hvp)


def ggn_operator(
    apply_fn: Callable[..., Any],
    output_loss: str | Callable[[Any, Any], jax.Array],
    params: Any,
    data: Any,
    *,
    batch_size: int | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> GGNOperator:
    r"""The generalized Gauss-Newton matrix of ``output_loss(apply_fn(params, x), y)``.

    .. math::
       G v = \sum_b \frac{n_b}{N} J_b^\top H_{z,b} J_b v,
       \qquad J_b = \frac{\partial f(\theta, x_b)}{\partial \theta},\;
       H_{z,b} = \nabla_z^2\, \ell(z, y_b)\big|_{z = f(\theta, x_b)}

    computed as ``jax.linearize`` of the model (:math:`J v`), the output loss's Hessian
    product (in closed form for ``"cross_entropy"``, :math:`(\mathrm{diag}(p) - pp^\top)u`
    per example, and ``"squared_error"``, :math:`2u/\mathrm{size}`; by autodiff for a
    function), and the transpose of the linearisation (:math:`J^\top`): one forward pass. Positive
    semi-definite for a loss convex in the outputs; equal to the Hessian for a linear
    model or at zero residual.

    Args:
      apply_fn: ``apply_fn(params, inputs) -> outputs`` (for a Flax NNX module,
        ``apply_fn(model, inputs)``, e.g. ``lambda m, x: m(x)``).
      output_loss: ``output_loss(outputs, targets) -> scalar``, the mean over the batch,
        or ``"cross_entropy"`` (integer labels) or ``"squared_error"``.
      params: a pytree of float arrays, or an ``nnx.Module`` (its ``nnx.Param`` state, in
        inference mode, as :func:`hvp_operator` takes it).
      data: ``(inputs, targets)`` with a shared leading example axis (a tuple or a
        NamedTuple such as ``jol.datasets.digits().train``).
      batch_size: examples per batch (None: all at once); a short last batch is weighted
        by its size.
      devices: devices to shard the examples over (default: all local devices).

    Returns:
      A :class:`GGNOperator`, accepted wherever a :class:`HessianOperator` is
      (``eigenvalues``, ``trace``, ``density``, ``analyze``).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_lab as jol
      >>> x, y = jnp.eye(3), jnp.zeros((3, 1))
      >>> apply = lambda w, x: x @ w
      >>> G = jol.curvature.ggn_operator(apply, "squared_error", jnp.zeros((3, 1)), (x, y))
      >>> [round(float(t), 4) for t in G.matvec(jnp.ones((3, 1))).ravel()]  # H = 2 X^T X / N
      [0.6667, 0.6667, 0.6667]

    References:
      Schraudolph (2002), "Fast curvature matrix-vector products for second-order
      gradient descent"; Martens (2010), "Deep learning via Hessian-free optimization".
    """
    return _build(GGNOperator, apply_fn, output_loss, params, data, batch_size, devices)


def fisher_operator(
    apply_fn: Callable[..., Any],
    output_loss: str | Callable[[Any, Any], jax.Array],
    params: Any,
    data: Any,
    *,
    batch_size: int | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> FisherOperator:
    r"""The empirical Fisher :math:`F = \frac1N \sum_i g_i g_i^\top` of per-example gradients.

    :math:`g_i = \nabla_\theta\, \ell(f(\theta, x_i), y_i)`, each example's loss computed as
    ``output_loss`` on a batch of one. :math:`F v = \frac1N \sum_i g_i (g_i^\top v)` is
    computed without per-example gradients in memory: a ``jvp`` gives every
    :math:`g_i^\top v`, then one gradient of :math:`\sum_i (g_i^\top v)\,\ell_i / N`.
    Positive semi-definite; its trace is the mean squared per-example gradient norm.

    Args: as :func:`ggn_operator`.

    Returns:
      A :class:`FisherOperator`, accepted wherever a :class:`HessianOperator` is.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_lab as jol
      >>> x, y = jnp.array([[1.0], [2.0]]), jnp.zeros((2, 1))
      >>> F = jol.curvature.fisher_operator(
      ...     lambda w, x: x @ w, "squared_error", jnp.ones((1, 1)), (x, y))
      >>> float(F.matvec(jnp.ones((1, 1)))[0, 0])  # g_i = 2 x_i^2: (4 + 64) / 2
      34.0

    References:
      Kunstner, Balles & Hennig (2019), "Limitations of the empirical Fisher
      approximation for natural gradient descent".
    """
    return _build(FisherOperator, apply_fn, output_loss, params, data, batch_size, devices)
