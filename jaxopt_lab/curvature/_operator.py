"""The Hessian of a loss averaged over a dataset, as a matrix-free operator on pytrees.

Curvature along a direction is :math:`v^\\top H v` and the Hessian-vector product
:math:`H v` is the directional derivative of the gradient (lecture 004, "the second
derivative in a specific direction d is d^T H d"). It is computed forward-over-reverse,
:math:`H v = \\partial_\\epsilon \\nabla L(\\theta + \\epsilon v)|_{\\epsilon=0}` (``jax.jvp`` of
``jax.grad``), at about the cost of two gradients and without forming :math:`H`.

The loss over a dataset of :math:`N` examples is the mean of per-batch means weighted by
batch size, :math:`L = \\sum_b (n_b / N) L_b`, so a short last batch counts for what it
holds. Batches are accumulated inside compiled code with ``lax.scan``; with several devices
the examples are sharded over them with ``shard_map`` and the partial sums ``psum``-reduced.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxopt_lab._types import Params
from jaxopt_lab._validation import check_choice, check_count, leading_axis
from jaxopt_lab.curvature._budget import check_dense_budget

_AXIS = "data"


def _call(loss_fn, params, batch, splat):
    if splat:
        return loss_fn(params, *batch)
    return loss_fn(params) if batch is None else loss_fn(params, batch)


@dataclasses.dataclass(frozen=True)
class _PlainLoss:
    """``loss_fn(params, batch)`` (or ``loss_fn(params)`` without data) as ``f(p, extra, b)``."""

    loss_fn: Callable[..., jax.Array]
    splat: bool = False  # batch is a tuple of positional arguments: loss_fn(params, *batch)

    def __call__(self, params, extra, batch):
        del extra
        return _call(self.loss_fn, params, batch, self.splat)


@dataclasses.dataclass(frozen=True)
class _NNXLoss:
    """``loss_fn(model, batch)`` on a Flax NNX model, seen as a function of its ``nnx.Param``s."""

    loss_fn: Callable[..., jax.Array]
    graphdef: Any
    splat: bool = False  # batch is a tuple of positional arguments: loss_fn(model, *batch)

    def __call__(self, params, extra, batch):
        from flax import nnx

        # fresh copies of the fixed state, so that batch norm in training mode may update
        # its statistics on this copy (discarded) from inside jax.grad's trace
        extra = jax.tree.map(lambda x: x, extra)
        return _call(self.loss_fn, nnx.merge(self.graphdef, params, extra), batch, self.splat)


def _is_nnx_module(obj: Any) -> bool:
    try:
        from flax import nnx
    except ImportError:  # pragma: no cover - flax is a dependency
        return False
    return isinstance(obj, nnx.Module)


BATCH_NORM = ("running", "batch")


def functional_loss(
    loss_fn: Callable[..., jax.Array],
    params: Any,
    *,
    splat: bool = False,
    batch_norm: str = "running",
) -> tuple[Callable, Any, Any]:
    """Splits a model into ``(f, params, extra)`` with ``f(params, extra, batch) -> scalar``.

    Plain pytrees pass through (``extra`` is None). A Flax NNX module is viewed in inference
    mode (``deterministic=True``, so dropout is off; with ``batch_norm="running"`` batch
    norm uses its running statistics, with ``"batch"`` the statistics of each batch, as
    training does), then split into its ``nnx.Param`` state, which the Hessian is taken
    over, and everything else (``extra``), which is held fixed.
    """
    check_choice("batch_norm", batch_norm, BATCH_NORM)
    if _is_nnx_module(params):
        from flax import nnx

        model = nnx.view(
            params,
            deterministic=True,
            use_running_average=batch_norm == "running",
            raise_if_not_found=False,
        )
        graphdef, param_state, extra = nnx.split(model, nnx.Param, ...)
        return _NNXLoss(loss_fn, graphdef, splat), param_state, extra
    return _PlainLoss(loss_fn, splat), params, None


def num_examples(data: Any) -> int:
    """Length of the leading axis shared by every leaf of ``data`` (``ValueError`` else)."""
    return leading_axis("data", data)


def _weighted_sum(fn: Callable[[Any], Any], data: Any, batch_size: int | None) -> Any:
    """:math:`\\sum_b n_b\\, fn(\\text{batch}_b)` over consecutive batches of ``data``."""
    n = num_examples(data)
    if batch_size is None or batch_size >= n:
        return jax.tree.map(lambda y: n * y, fn(data))
    num_full, rem = divmod(n, batch_size)
    full = jax.tree.map(
        lambda x: x[: num_full * batch_size].reshape(num_full, batch_size, *x.shape[1:]), data
    )

    def body(acc, batch):
        return jax.tree.map(jnp.add, acc, fn(batch)), None

    # The first batch starts the carry (rather than zeros), so under shard_map the carry
    # already has the per-device type of what the body returns.
    acc = fn(jax.tree.map(lambda x: x[0], full))
    if num_full > 1:
        acc, _ = jax.lax.scan(body, acc, jax.tree.map(lambda x: x[1:], full))
    acc = jax.tree.map(lambda a: batch_size * a, acc)
    if rem:
        tail = jax.tree.map(lambda x: x[num_full * batch_size :], data)
        acc = jax.tree.map(lambda a, y: a + rem * y, acc, fn(tail))
    return acc


def _data_mean(
    fn: Callable[[Any, Any], Any], args: Any, data: Any, batch_size: int | None, mesh: Mesh | None
) -> Any:
    """Mean of ``fn(args, batch)`` over the examples of ``data``, weighted by batch sizes."""
    if data is None:
        return fn(args, None)
    n = num_examples(data)
    if mesh is None or n < mesh.size:
        total = _weighted_sum(lambda b: fn(args, b), data, batch_size)
    else:
        per_device = n // mesh.size
        main = jax.tree.map(lambda x: x[: per_device * mesh.size], data)

        def local(args, shard):
            # Mark the replicated arguments per-device, so derivatives taken inside are the
            # local ones (an invariant input would get its cotangent psum-ed by AD already).
            args = jax.lax.pcast(args, (_AXIS,), to="varying")
            partial = _weighted_sum(lambda b: fn(args, b), shard, batch_size)
            return jax.lax.psum(partial, _AXIS)

        total = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(_AXIS)), out_specs=P())(args, main)
        if n > per_device * mesh.size:  # fewer leftover examples than devices: run them here
            tail = jax.tree.map(lambda x: x[per_device * mesh.size :], data)
            extra = _weighted_sum(lambda b: fn(args, b), tail, batch_size)
            total = jax.tree.map(jnp.add, total, extra)
    return jax.tree.map(lambda t: t / n, total)


@jax.tree_util.register_pytree_node_class
class HessianOperator:
    """The Hessian :math:`H = \\nabla^2 L(\\theta)` of a data-averaged loss, matrix-free.

    A pytree (the point, the fixed model state and the data are its leaves; the loss,
    batch size and device mesh are static), so it can be passed through ``jax.jit``
    without recompiling for new parameter values. Build it with :func:`hvp_operator`.

    Attributes:
      params: the point :math:`\\theta` (a pytree; an ``nnx.State`` for NNX models).
      size: :math:`D`, the number of scalar parameters.
      dtype: the parameters' dtype (the promoted one when leaves differ).
    """

    kind = "hessian"  # the matrix: "hessian", "ggn" (GGNOperator), "fisher" (FisherOperator)

    def __init__(self, loss, params, extra, data, batch_size, mesh):
        self.loss = loss
        self.params = params
        self.extra = extra
        self.data = data
        self.batch_size = batch_size
        self.mesh = mesh

    def tree_flatten(self):
        return (self.params, self.extra, self.data), (self.loss, self.batch_size, self.mesh)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(aux[0], *children, *aux[1:])

    @property
    def size(self) -> int:
        return int(sum(np.size(x) for x in jax.tree.leaves(self.params)))

    @property
    def dtype(self) -> np.dtype:
        return jnp.result_type(*jax.tree.leaves(self.params))

    def with_params(self, params: Params) -> HessianOperator:
        """The same operator at another point."""
        return HessianOperator(self.loss, params, self.extra, self.data, self.batch_size, self.mesh)

    def matvec(self, v: Params) -> Params:
        """:math:`H v` for a pytree ``v`` shaped like ``params`` (compiled once per shape)."""
        return _matvec_jit(self, v)

    __call__ = matvec

    def loss_and_grad(self) -> tuple[jax.Array, Params]:
        """The data-averaged loss and its gradient at ``params``."""
        return _loss_and_grad_jit(self)

    def _matvec(self, v: Params) -> Params:
        v = jax.tree.map(lambda t, p: jnp.asarray(t, p.dtype), v, self.params)

        def hvp(args, batch):
            params, extra, v = args
            grad = lambda p: jax.grad(self.loss)(p, extra, batch)
            return jax.jvp(grad, (params,), (v,))[1]

        return _data_mean(hvp, (self.params, self.extra, v), self.data, self.batch_size, self.mesh)

    def _loss_and_grad(self) -> tuple[jax.Array, Params]:
        def value_and_grad(args, batch):
            params, extra = args
            return jax.value_and_grad(self.loss)(params, extra, batch)

        return _data_mean(
            value_and_grad, (self.params, self.extra), self.data, self.batch_size, self.mesh
        )

    def flat(self) -> tuple[Callable[[jax.Array], jax.Array], jax.Array, Callable]:
        """``(matvec_flat, params_flat, unravel)`` on vectors of length :attr:`size`."""
        flat, unravel = ravel_pytree(self.params)

        def matvec_flat(x):
            return ravel_pytree(self.matvec(unravel(x)))[0]

        return matvec_flat, flat, unravel

    def dense(self, *, max_bytes: int | None = None, chunk: int = 256) -> jax.Array:
        """The (D, D) matrix, built from ``D`` Hessian-vector products ``chunk`` at a time.

        Refused with a ``ValueError`` above ``max_bytes`` (default
        :data:`jaxopt_lab.curvature.DENSE_MAX_BYTES`). Symmetrised as
        :math:`(H + H^\\top)/2`.
        """
        check_dense_budget(self.size, self.dtype, max_bytes)
        return _dense_jit(self, min(chunk, self.size))


@jax.jit
def _matvec_jit(op: HessianOperator, v: Params) -> Params:
    return op._matvec(v)


@jax.jit
def _loss_and_grad_jit(op: HessianOperator) -> tuple[jax.Array, Params]:
    return op._loss_and_grad()


@functools.partial(jax.jit, static_argnums=1)
def _dense_jit(op: HessianOperator, chunk: int) -> jax.Array:
    flat, unravel = ravel_pytree(op.params)
    dim = flat.size
    num_chunks = -(-dim // chunk)
    chunk = -(-dim // num_chunks)  # equal chunks: one compiled body, at most num_chunks - 1 pad
    eye = jnp.eye(num_chunks * chunk, dim, dtype=flat.dtype).reshape(num_chunks, chunk, dim)
    matvec_flat = jax.vmap(lambda x: ravel_pytree(op._matvec(unravel(x)))[0])
    rows = jax.lax.map(matvec_flat, eye).reshape(-1, dim)[:dim]
    return 0.5 * (rows + rows.T)


def default_mesh(devices: Sequence[jax.Device] | None, data: Any = None) -> Mesh | None:
    """A 1-D ``"data"`` mesh over ``devices``, None for one device.

    The default is every local device, or, for data that spans several processes
    (``jaxopt_lab.distributed.shard_data``), the devices it is sharded over.
    """
    if devices is None:
        spread = [
            x
            for x in jax.tree.leaves(data)
            if isinstance(x, jax.Array) and not x.is_fully_addressable
        ]
        devices = jax.local_devices()
        if spread:
            mesh = getattr(spread[0].sharding, "mesh", None)
            devices = list(mesh.devices.ravel()) if mesh is not None else jax.devices()
    devices = list(devices)
    if len(devices) <= 1:
        return None
    return Mesh(np.array(devices), (_AXIS,))


def replicate(tree: Any, mesh: Mesh | None) -> Any:
    """``tree`` on every device of ``mesh`` when it spans processes (else as it is).

    A jitted program over devices of several processes takes only global arrays; every
    process holds the same values of the point and the fixed state, so each puts its
    copy on its own devices.
    """
    if mesh is None or all(d.process_index == jax.process_index() for d in mesh.devices.ravel()):
        return tree
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda x: jax.device_put(jnp.asarray(x), sharding), tree)


def hvp_operator(
    loss_fn: Callable[..., jax.Array],
    params: Any,
    data: Any = None,
    *,
    batch_size: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    batch_norm: str = "running",
) -> HessianOperator:
    r"""The Hessian of ``loss_fn`` averaged over ``data``, as Hessian-vector products.

    .. math::
       H v = \sum_b \frac{n_b}{N}\, \frac{\partial}{\partial\epsilon}
       \nabla_\theta L_b(\theta + \epsilon v)\Big|_{\epsilon = 0}

    (forward-over-reverse; lecture 004: :math:`d^\top H d` is the second derivative along
    :math:`d`). Nothing of size :math:`D \times D` is formed.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``, the mean loss over ``batch``
        (``loss_fn(params)`` when ``data`` is None). For a Flax NNX model,
        ``loss_fn(model, batch)``.
      params: a pytree of arrays, or an ``nnx.Module`` (the Hessian is taken over its
        ``nnx.Param`` state, in inference mode; other state is held fixed).
      data: a pytree of arrays with a shared leading example axis, or None.
      batch_size: examples per batch (None: all at once). Batches are accumulated inside
        compiled code; a short last batch is weighted by its size.
      devices: devices to shard the examples over (default: all local devices when there
        are several). Each device sums its share; the sums are ``psum``-reduced.
      batch_norm: for an NNX model, ``"running"`` (batch norm normalises with its running
        statistics, as the trained net predicts) or ``"batch"`` (with the statistics of
        each batch, as training computes the loss: then a parameter that batch norm
        cancels, such as a bias before it, has no curvature, as it has no gradient).

    Returns:
      A :class:`HessianOperator`; ``op.matvec(v)`` (or ``op(v)``) gives :math:`Hv` as a pytree.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_lab as jol
      >>> loss = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
      >>> x, y = jnp.eye(3), jnp.zeros(3)
      >>> op = jol.curvature.hvp_operator(loss, jnp.zeros(3), (x, y), batch_size=2)
      >>> [round(float(t), 4) for t in op.matvec(jnp.ones(3))]  # H = 2 X^T X / N
      [0.6667, 0.6667, 0.6667]
    """
    if batch_size is not None:
        batch_size = check_count(
            batch_size,
            "batch_size",
            fix="Pass e.g. 256, or None to use the whole dataset at once.",
        )
    if data is not None:
        n = num_examples(data)
    loss, pure_params, extra = functional_loss(loss_fn, params, batch_norm=batch_norm)
    batch = None
    if data is not None:
        b = n if batch_size is None else min(batch_size, n)
        batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct((b, *np.shape(x)[1:]), x.dtype), data)
    check_problem(loss, pure_params, extra, batch)
    mesh = default_mesh(devices, data)
    pure_params, extra = replicate((pure_params, extra), mesh)
    return HessianOperator(loss, pure_params, extra, data, batch_size, mesh)


def check_problem(loss: Callable, params: Any, extra: Any, batch: Any) -> None:
    """The parameters must be float32/float64 arrays; the loss must return a real scalar.

    Checked abstractly (``jax.eval_shape``: nothing is computed), once, where every
    curvature function builds its problem, so each refuses the same things by name.

    Raises:
      ValueError, TypeError: naming ``params`` (the leaf) or ``loss_fn`` (what it returned).
    """
    leaves = jax.tree_util.tree_leaves_with_path(params)
    if not leaves:
        raise ValueError(
            f"`params` holds no arrays ({params!r}): there is no Hessian to take; pass the "
            "parameters (a pytree of float arrays, or an nnx.Module)."
        )
    for path, leaf in leaves:
        dtype = jnp.result_type(leaf)
        if dtype not in (jnp.float32, jnp.float64):
            where = jax.tree_util.keystr(path) or "(the root)"
            why = (
                "half precision is too coarse for Hessian-vector products and the "
                "eigen-solvers (eigh_tridiagonal takes float32 and float64 only)"
                if jnp.issubdtype(dtype, jnp.floating)
                else "the Hessian is taken with respect to real parameters"
            )
            raise TypeError(
                f"`params` has a leaf {where} of dtype {dtype}: {why}. Cast it, e.g. "
                "jax.tree.map(lambda x: x.astype(jnp.float32), params)."
            )
    try:
        out = jax.eval_shape(loss, params, extra, batch)
    except TypeError as e:
        if "positional argument" not in str(e):
            raise
        call = "loss_fn(params)" if batch is None else "loss_fn(params, batch)"
        raise TypeError(f"`loss_fn` is called as {call} here, and that call failed: {e}") from None
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise TypeError(
            f"`loss_fn` must return a real scalar, got {jax.tree.structure(out)}; return only "
            "the loss (a float of shape ())."
        )
    if out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
        fix = (
            "reduce it to one number, e.g. with .mean() over the batch"
            if out.shape
            else "compute it in floating point"
        )
        raise TypeError(
            f"`loss_fn` must return a real scalar (shape ()), got an array of shape "
            f"{out.shape} and dtype {out.dtype}; {fix}."
        )


def as_operator(
    loss_fn_or_op: Callable[..., jax.Array] | HessianOperator,
    params: Any,
    data: Any,
    batch_size: int | None,
) -> HessianOperator:
    """An operator from either an operator or ``(loss_fn, params, data, batch_size)``."""
    if isinstance(loss_fn_or_op, HessianOperator):
        if params is not None or data is not None:
            raise ValueError(
                f"Got a {type(loss_fn_or_op).__name__} together with `params`/`data`: the "
                "operator already holds them. Pass only the operator, or a loss function with "
                "params and data."
            )
        return loss_fn_or_op
    if params is None:
        raise ValueError("`params` is required when the first argument is a loss function.")
    return hvp_operator(loss_fn_or_op, params, data, batch_size=batch_size)
