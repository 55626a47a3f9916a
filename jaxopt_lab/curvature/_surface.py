r"""Loss surfaces: the loss along a line between two points, and on a plane through one.

Goodfellow et al. (2015) evaluate the loss on the segment
:math:`\theta(\alpha) = (1 - \alpha)\,\theta_a + \alpha\,\theta_b` between two parameter
vectors (e.g. the initialisation and a trained net, or two solutions) and find it often
monotone and convex-looking. Li et al. (2018) draw
:math:`f(a, b) = L(\theta + a\,\delta + b\,\eta)` on a 2-D grid with random Gaussian
directions :math:`\delta, \eta`, *filter-normalised* so that each filter of a direction
has the norm of the same filter of :math:`\theta`; the pictures are then comparable
between nets whose weights differ in scale.

Every point is the loss averaged over ``data`` like the rest of :mod:`jaxopt_lab.curvature`
(the mean of per-batch means weighted by batch size). The points are evaluated by one
compiled program per chunk of grid points (a ``lax.map``, ``vmap``-ed a few points at a time).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import tqdm.auto

from jaxopt_lab._validation import (
    check_bool,
    check_choice,
    check_count,
    check_key,
    check_positive,
)
from jaxopt_lab.curvature._eigen import eigenvalues
from jaxopt_lab.curvature._operator import (
    _data_mean,
    _is_nnx_module,
    check_problem,
    functional_loss,
    num_examples,
)

DIRECTIONS = ("filter", "hessian")
_CHUNK_BYTES = 2**26  # the parameter copies of one chunk of grid points: at most 64 MiB
_MAX_CHUNK = 256


class Interpolation(NamedTuple):
    """The loss along the line :math:`(1 - \\alpha)\\,\\theta_a + \\alpha\\,\\theta_b`."""

    alphas: np.ndarray  # (num,) the interpolation coefficients
    losses: np.ndarray  # (num,) the data-averaged loss at each alpha


class LossSurface(NamedTuple):
    """The loss on a 2-D grid :math:`L(\\theta + a\\,\\delta + b\\,\\eta)`.

    ``losses[i, j]`` is the loss at ``(a, b) = (x[j], y[i])``: rows follow ``y`` and
    columns ``x``, as ``matplotlib``'s ``contour(x, y, losses)`` expects.
    """

    x: np.ndarray  # (gx,) coordinates a along directions[0], in [-span, span]
    y: np.ndarray  # (gy,) coordinates b along directions[1], in [-span, span]
    losses: np.ndarray  # (gy, gx) the data-averaged loss at (x[j], y[i])
    directions: tuple  # (delta, eta): pytrees like the parameters (nnx.State for NNX)
    center_loss: float  # the loss at the centre, a = b = 0
    center: Any  # the parameters at the centre (the nnx.Param state for NNX), for projections


def _problem(loss_fn: Callable, params: Any, data: Any, batch_size: int | None, name: str):
    """``(loss, pure_params, extra)``, checked as every curvature function checks them."""
    loss, pure, extra = functional_loss(loss_fn, params)
    batch = None
    if data is not None:
        n = num_examples(data)
        b = n if batch_size is None else min(batch_size, n)
        batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct((b, *np.shape(x)[1:]), x.dtype), data)
    try:
        check_problem(loss, pure, extra, batch)
    except (TypeError, ValueError) as e:
        if name == "params":
            raise
        raise type(e)(str(e).replace("`params`", f"`{name}`", 1)) from None
    return loss, pure, extra


def _check_like(name: str, tree: Any, ref: Any, ref_name: str) -> None:
    """``tree`` must have the structure and leaf shapes of ``ref``; names the leaf that differs."""
    got = dict(jax.tree_util.tree_leaves_with_path(tree))
    want = dict(jax.tree_util.tree_leaves_with_path(ref))
    if jax.tree.structure(tree) != jax.tree.structure(ref):
        missing = [jax.tree_util.keystr(p) for p in want if p not in got]
        extra = [jax.tree_util.keystr(p) for p in got if p not in want]
        where = []
        if missing:
            where.append(f"it lacks the leaf {missing[0]}")
        if extra:
            where.append(f"it has a leaf {extra[0]} that `{ref_name}` lacks")
        detail = "; ".join(where) or (f"{jax.tree.structure(tree)} vs {jax.tree.structure(ref)}")
        raise ValueError(
            f"`{name}` must be a pytree structured like `{ref_name}`, but {detail}. Build it "
            f"from `{ref_name}`, e.g. jax.tree.map(jnp.zeros_like, {ref_name})."
        )
    for path, leaf in want.items():
        if np.shape(got[path]) != np.shape(leaf):
            raise ValueError(
                f"`{name}` has a leaf {jax.tree_util.keystr(path) or '(the root)'} of shape "
                f"{np.shape(got[path])}, but that leaf of `{ref_name}` has shape "
                f"{np.shape(leaf)}; every leaf must have the parameters' shape."
            )


def size_of(tree: Any) -> int:
    return int(sum(np.size(x) for x in jax.tree.leaves(tree)))


def _size_and_dtype(pure: Any) -> tuple[int, np.dtype]:
    leaves = jax.tree.leaves(pure)
    size = int(sum(np.size(x) for x in leaves))
    dtype = np.result_type(*(np.dtype(jnp.result_type(x)) for x in leaves))
    return size, dtype


def _vmap_width(size: int) -> int:
    """Grid points ``vmap``-ed together inside a chunk: 32 for models of a few thousand
    parameters, down to 1 from about 64k (measured on a 2-core CPU: at 2,410 parameters
    32 at a time is 2.4x a loop of jitted calls, at 85,002 a vmap of any width is slower
    than one point at a time)."""
    return int(max(1, min(32, 2**16 // max(size, 1))))


def _default_chunk(size: int, dtype: np.dtype) -> int:
    """Grid points per chunk: at most 256, and at most 64 MiB of parameter copies."""
    return max(1, min(_MAX_CHUNK, _CHUNK_BYTES // (np.dtype(dtype).itemsize * max(size, 1))))


def _combine(trees: tuple, c: jax.Array) -> Any:
    """:math:`\\sum_i c_i\\, t_i` over the pytrees ``trees``, leaf by leaf in each leaf's dtype."""

    def leaf(*xs):
        total = c[0].astype(xs[0].dtype) * xs[0]
        for i, x in enumerate(xs[1:], 1):
            total = total + c[i].astype(x.dtype) * x
        return total

    return jax.tree.map(leaf, *trees)


@functools.partial(jax.jit, static_argnames=("loss", "batch_size", "width"))
def _losses_jit(loss, trees, extra, data, coords, *, batch_size, width):
    """The loss at :math:`\\sum_i c_i t_i` for each row ``c`` of ``coords``: ``lax.map``
    over the rows, ``width`` of them ``vmap``-ed together (1 for a large model, where one
    point's products already fill the CPU and a batch of different weights only costs
    memory traffic; more for a small one, whose points are cheap)."""

    def one(c):
        fn = lambda args, batch: loss(args[0], args[1], batch)
        return _data_mean(fn, (_combine(trees, c), extra), data, batch_size, None)

    return jax.lax.map(one, coords, batch_size=width)


def _evaluate(
    loss: Callable,
    trees: tuple,
    extra: Any,
    data: Any,
    coords: np.ndarray,
    *,
    batch_size: int | None,
    chunk_size: int,
    dtype: np.dtype,
    progress: bool = False,
    desc: str = "loss surface",
) -> np.ndarray:
    """The loss at each row of ``coords`` (``(n, len(trees))``), ``chunk_size`` rows per call.

    The last chunk is padded with copies of the last row, so one program is compiled.
    """
    n = coords.shape[0]
    chunk = min(chunk_size, n)
    num_chunks = -(-n // chunk)
    padded = np.pad(coords, ((0, num_chunks * chunk - n), (0, 0)), mode="edge").astype(dtype)
    trees, extra, data = jax.device_put((trees, extra, data))  # moved once, not per chunk
    out = []
    with tqdm.auto.tqdm(total=n, disable=not progress, unit="point", desc=desc) as bar:
        for i in range(num_chunks):
            values = _losses_jit(
                loss,
                trees,
                extra,
                data,
                jnp.asarray(padded[i * chunk : (i + 1) * chunk]),
                batch_size=batch_size,
                width=min(_vmap_width(size_of(trees[0])), chunk),
            )
            out.append(np.asarray(values))
            bar.update(min(chunk, n - i * chunk))
    return np.concatenate(out)[:n]


def _check_batch_size(batch_size: int | None) -> int | None:
    if batch_size is None:
        return None
    return check_count(
        batch_size, "batch_size", fix="Pass e.g. 256, or None to use the whole dataset at once."
    )


def _check_loss_fn(loss_fn: Any) -> None:
    if not callable(loss_fn):
        raise TypeError(
            f"`loss_fn` must be callable, got {type(loss_fn).__name__}: pass "
            "loss_fn(params, batch) -> scalar (loss_fn(params) when data is None)."
        )


def _check_alphas(alphas: Any) -> np.ndarray:
    if isinstance(alphas, str) or not isinstance(alphas, Sequence | np.ndarray | jax.Array):
        raise TypeError(
            f"`alphas` must be a 1-D sequence of numbers, got {type(alphas).__name__}; pass "
            "e.g. np.linspace(-0.5, 1.5, 81), or None for np.linspace(0, 1, num)."
        )
    try:
        arr = np.asarray(alphas, np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"`alphas` must be a 1-D sequence of numbers, got {alphas!r}; pass e.g. "
            "np.linspace(-0.5, 1.5, 81)."
        ) from None
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(
            f"`alphas` must be a non-empty 1-D array of finite numbers, got shape {arr.shape}"
            f"{'' if arr.size == 0 or np.all(np.isfinite(arr)) else ' with non-finite values'}; "
            "pass e.g. np.linspace(-0.5, 1.5, 81)."
        )
    return arr


def interpolate(
    loss_fn: Callable[..., jax.Array],
    params_a: Any,
    params_b: Any,
    data: Any = None,
    *,
    num: int = 51,
    alphas: Any = None,
    batch_size: int | None = None,
) -> Interpolation:
    r"""The loss along the straight line between two parameter vectors (Goodfellow et al.).

    .. math::
       \ell(\alpha) = L\big((1 - \alpha)\,\theta_a + \alpha\,\theta_b\big),
       \qquad L = \sum_b \frac{n_b}{N} L_b,

    so :math:`\ell(0)` is the loss at ``params_a`` and :math:`\ell(1)` at ``params_b``;
    values of :math:`\alpha` outside [0, 1] extrapolate past the end points. A loss that
    decreases monotonically from the initialisation to the solution says the two are
    joined by an easy path (Goodfellow et al. 2015); a bump between two solutions is a
    barrier between their basins.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``, the mean loss over ``batch``
        (``loss_fn(params)`` when ``data`` is None). For a Flax NNX model,
        ``loss_fn(model, batch)``.
      params_a: the start, a pytree of float arrays or an ``nnx.Module`` (viewed in
        inference mode; its ``nnx.Param`` state is interpolated, other state such as batch
        statistics is taken from ``params_a``).
      params_b: the end, structured like ``params_a`` (a module of the same graph for NNX).
      data: a pytree of arrays with a shared leading example axis, or None.
      num: the number of evenly spaced alphas in [0, 1] (an int >= 2); ignored when
        ``alphas`` is given.
      alphas: the coefficients to evaluate, a 1-D array (may leave [0, 1], e.g.
        ``np.linspace(-0.5, 1.5, 81)``).
      batch_size: examples per batch (None: all at once); a short last batch is weighted
        by its size.

    Returns:
      :class:`Interpolation` ``(alphas, losses)``, NumPy arrays of shape (num,).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_lab as jol
      >>> f = lambda w: jnp.sum(w**2)
      >>> res = jol.curvature.interpolate(f, jnp.zeros(2), jnp.ones(2), num=3)
      >>> res.alphas.tolist(), res.losses.tolist()
      ([0.0, 0.5, 1.0], [0.0, 0.5, 2.0])

    References:
      Goodfellow, Vinyals & Saxe, "Qualitatively characterizing neural network
      optimization problems", ICLR 2015; Li, Xu, Taylor, Studer & Goldstein, "Visualizing
      the Loss Landscape of Neural Nets", NeurIPS 2018.
    """
    _check_loss_fn(loss_fn)
    num = check_count(
        num, "num", minimum=2, fix="Pass e.g. num=51, or the coefficients themselves as `alphas`."
    )
    alphas = np.linspace(0.0, 1.0, num) if alphas is None else _check_alphas(alphas)
    batch_size = _check_batch_size(batch_size)
    if _is_nnx_module(params_a) != _is_nnx_module(params_b):
        module, other = (
            ("params_a", params_b) if _is_nnx_module(params_a) else ("params_b", params_a)
        )
        raise TypeError(
            f"`{module}` is an nnx.Module but the other end is a {type(other).__name__}: pass "
            "two modules of the same graph (e.g. nnx.clone(model) before training and the "
            "model after), or two pytrees of arrays."
        )
    loss, pure_a, extra = _problem(loss_fn, params_a, data, batch_size, "params_a")
    _, pure_b, _ = _problem(loss_fn, params_b, data, batch_size, "params_b")
    _check_like("params_b", pure_b, pure_a, "params_a")
    pure_b = jax.tree.map(lambda b, a: jnp.asarray(b, a.dtype), pure_b, pure_a)
    size, dtype = _size_and_dtype(pure_a)
    coords = np.stack([1.0 - alphas, alphas], axis=1)
    losses = _evaluate(
        loss,
        (pure_a, pure_b),
        extra,
        data,
        coords,
        batch_size=batch_size,
        chunk_size=_default_chunk(size, dtype),
        dtype=dtype,
    )
    return Interpolation(alphas=alphas, losses=losses)


def _filter_normalized(params: Any, key: jax.Array) -> Any:
    r"""A random Gaussian direction, filter-normalised to ``params`` (Li et al. 2018).

    For a weight leaf of ``ndim >= 2`` each filter, the slice along the last axis (the
    output unit of a Dense or Conv kernel in JAX/Flax layout), is rescaled to the norm of
    the same filter of ``params``: :math:`d_{\dots j} \leftarrow d_{\dots j}\,
    \|\theta_{\dots j}\| / (\|d_{\dots j}\| + 10^{-10})`. Leaves of ``ndim <= 1`` (biases,
    normalisation scales) get zeros.
    """
    leaves, treedef = jax.tree.flatten(params)
    out = []
    for i, p in enumerate(leaves):
        p = jnp.asarray(p)
        if p.ndim <= 1:
            out.append(jnp.zeros_like(p))
            continue
        d = jax.random.normal(jax.random.fold_in(key, i), p.shape, p.dtype)
        axes = tuple(range(p.ndim - 1))
        p_norm = jnp.sqrt(jnp.sum(p * p, axis=axes, keepdims=True))
        d_norm = jnp.sqrt(jnp.sum(d * d, axis=axes, keepdims=True))
        out.append(d * (p_norm / (d_norm + jnp.asarray(1e-10, p.dtype))))
    return jax.tree.unflatten(treedef, out)


def _user_directions(directions: Any, pure: Any) -> tuple[Any, Any]:
    if not isinstance(directions, tuple | list) or len(directions) != 2:
        raise TypeError(
            f"`directions` must be 'filter', 'hessian' or a pair (delta, eta) of pytrees "
            f"shaped like the parameters, got {type(directions).__name__}"
            f"{f' of length {len(directions)}' if isinstance(directions, tuple | list) else ''}."
        )
    out = []
    for i, d in enumerate(directions):
        if _is_nnx_module(d):
            from flax import nnx

            d = nnx.state(d, nnx.Param)
        _check_like(f"directions[{i}]", d, pure, "params")
        out.append(jax.tree.map(lambda x, p: jnp.asarray(x, p.dtype), d, pure))
    return out[0], out[1]


def _check_grid(grid: Any) -> tuple[int, int]:
    fix = "Pass e.g. grid=(41, 41), or one int for both axes."
    if isinstance(grid, tuple | list):
        if len(grid) != 2:
            raise ValueError(
                f"`grid` must be one int or a pair (gx, gy), got {grid!r} of length {len(grid)}. "
                f"{fix}"
            )
        return (
            check_count(grid[0], "grid[0]", minimum=2, fix=fix),
            check_count(grid[1], "grid[1]", minimum=2, fix=fix),
        )
    g = check_count(grid, "grid", minimum=2, fix=fix)
    return g, g


def loss_surface(
    loss_fn: Callable[..., jax.Array],
    params: Any,
    data: Any = None,
    *,
    directions: str | tuple[Any, Any] = "filter",
    grid: int | tuple[int, int] = (41, 41),
    span: float = 1.0,
    key: jax.Array | None = None,
    batch_size: int | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
) -> LossSurface:
    r"""The loss on a 2-D slice through ``params``, as Li et al. (2018) draw it.

    .. math::
       f(a, b) = L(\theta + a\,\delta + b\,\eta), \qquad
       a, b \in [-\mathrm{span}, \mathrm{span}],

    on a ``grid`` of evenly spaced points (the loss averaged over ``data`` as in
    :func:`hvp_operator`). The directions :math:`\delta, \eta` are

    - ``"filter"``: random Gaussian directions, filter-normalised: each filter of a weight
      leaf with ``ndim >= 2`` (the slice along its last axis: an output unit of a Dense or
      Conv kernel in JAX/Flax layout) is rescaled to the norm of that filter of
      :math:`\theta`; leaves with ``ndim <= 1`` (biases, normalisation scales) get zero
      (Li et al.'s default). Then :math:`a = 1` is a step as large as the weights.
    - ``"hessian"``: the top two Hessian eigenvectors (unit norm, from
      :func:`eigenvalues` with ``k=2``): the two directions of largest curvature, where
      :math:`f \approx L_0 + \frac12(\lambda_1 a^2 + \lambda_2 b^2)` near a minimum.
    - ``(delta, eta)``: two pytrees shaped like the parameters (used as given, e.g. the
      principal directions of a training trajectory).

    The grid points are evaluated by one compiled program called once per chunk of
    ``chunk_size`` points (the last one padded): a ``lax.map`` over the chunk's points,
    ``vmap``-ed a few at a time for small models (up to 32 points of a model of 2k
    parameters), one at a time from about 64k parameters, where a vmap of different
    weights only adds memory traffic on a CPU. Memory grows with that width times one
    loss evaluation.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``, the mean loss over ``batch``
        (``loss_fn(params)`` when ``data`` is None). For a Flax NNX model,
        ``loss_fn(model, batch)``.
      params: the centre, a pytree of float arrays or an ``nnx.Module`` (viewed in
        inference mode; its ``nnx.Param`` state is moved, other state held fixed).
      data: a pytree of arrays with a shared leading example axis, or None.
      directions: ``"filter"``, ``"hessian"``, or a pair of pytrees like the parameters
        (``nnx.State`` of the ``nnx.Param`` s, or modules, for NNX).
      grid: points per axis, ``(gx, gy)`` or one int for both (each >= 2).
      span: the half-width of the grid along each direction, > 0.
      key: PRNG key of the random ``"filter"`` directions (default ``jax.random.key(0)``);
        also the Lanczos start for ``"hessian"``.
      batch_size: examples per batch (None: all at once).
      chunk_size: grid points per call of the compiled program (default: up to 256, fewer
        for large models, so that a chunk's parameter copies take at most 64 MiB); the
        progress bar moves once per chunk.
      progress: show a tqdm progress bar over the grid points.

    Returns:
      :class:`LossSurface` ``(x, y, losses, directions, center_loss, center)``;
      ``losses[i, j]`` is the loss at ``(x[j], y[i])``, ready for
      ``contour(x, y, losses)`` or ``jol.plot.loss_surface``.

    Raises:
      ValueError, TypeError: for a bad argument, naming it (and, for a direction of the
        wrong shape, the leaf).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_lab as jol
      >>> f = lambda w: 0.5 * jnp.sum(jnp.array([1.0, 4.0]) * w**2)  # H = diag(1, 4)
      >>> e1, e2 = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
      >>> s = jol.curvature.loss_surface(f, jnp.zeros(2), directions=(e1, e2), grid=3)
      >>> s.x.tolist(), s.losses.tolist()  # 0.5 * (a**2 + 4 b**2)
      ([-1.0, 0.0, 1.0], [[2.5, 2.0, 2.5], [0.5, 0.0, 0.5], [2.5, 2.0, 2.5]])

    References:
      Li, Xu, Taylor, Studer & Goldstein, "Visualizing the Loss Landscape of Neural
      Nets", NeurIPS 2018 (filter normalisation); Goodfellow, Vinyals & Saxe,
      "Qualitatively characterizing neural network optimization problems", ICLR 2015.
    """
    _check_loss_fn(loss_fn)
    gx, gy = _check_grid(grid)
    check_positive(
        "span",
        span,
        "Pass e.g. span=1.0: the grid covers [-span, span] along each direction.",
        "1.0",
    )
    span = float(span)
    batch_size = _check_batch_size(batch_size)
    if chunk_size is not None:
        chunk_size = check_count(
            chunk_size, "chunk_size", fix="Pass e.g. chunk_size=64, or None for the default."
        )
    check_bool("progress", progress)
    check_key(key, fix=" (or None)")
    if isinstance(directions, str):
        check_choice("directions", directions, DIRECTIONS)
    loss, pure, extra = _problem(loss_fn, params, data, batch_size, "params")
    size, dtype = _size_and_dtype(pure)

    if isinstance(directions, str) and directions == "filter":
        key = jax.random.key(0) if key is None else key
        k1, k2 = jax.random.split(key)
        if all(np.ndim(x) <= 1 for x in jax.tree.leaves(pure)):
            raise ValueError(
                "`directions='filter'` leaves every parameter unmoved: all leaves of `params` "
                "have ndim <= 1, and filter normalisation gives those direction zero. Pass "
                "directions='hessian', or your own pair (delta, eta) of pytrees."
            )
        delta, eta = _filter_normalized(pure, k1), _filter_normalized(pure, k2)
    elif isinstance(directions, str):  # "hessian"
        eig = eigenvalues(loss_fn, params, data, k=2, batch_size=batch_size, key=key)
        if not bool(np.all(np.asarray(eig.converged))):
            warnings.warn(
                "loss_surface(directions='hessian'): the top two Hessian eigenvectors did not "
                f"converge (residuals {np.asarray(eig.residuals).tolist()}); the directions "
                "are approximate.",
                RuntimeWarning,
                stacklevel=2,
            )
        delta = jax.tree.map(lambda v: v[0], eig.vectors)
        eta = jax.tree.map(lambda v: v[1], eig.vectors)
    else:
        delta, eta = _user_directions(directions, pure)

    x = np.linspace(-span, span, gx)
    y = np.linspace(-span, span, gy)
    xx, yy = np.meshgrid(x, y)  # (gy, gx): row i is y[i]
    # The centre is appended as one more point: its loss comes from the same program.
    a, b = np.append(xx.ravel(), 0.0), np.append(yy.ravel(), 0.0)
    coords = np.stack([np.ones_like(a), a, b], axis=1)
    chunk = _default_chunk(size, dtype) if chunk_size is None else chunk_size
    values = _evaluate(
        loss,
        (pure, delta, eta),
        extra,
        data,
        coords,
        batch_size=batch_size,
        chunk_size=chunk,
        dtype=dtype,
        progress=progress,
    )
    return LossSurface(
        x=x,
        y=y,
        losses=values[:-1].reshape(gy, gx),
        directions=(delta, eta),
        center_loss=float(values[-1]),
        center=pure,
    )
