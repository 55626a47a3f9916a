r"""Weight initialization heuristics, as the lectures name them.

Goodfellow et al. ch. 8 as taught by Favaro (lecture 003), "Weight Initialization
Strategies": random weights break the symmetry between units; their scale decides
whether signals and gradients survive the depth of the network (too large: saturated
units and exploding gradients; too small: vanishing activations). Grosse & Ba,
"CSC421/2516 Lectures 7–8: Optimization" (lecture 000), recap table: the workaround
for dead or saturated units is the initial scale of W.

Every initializer here has the ``(key, shape, dtype)`` signature of
``jax.nn.initializers`` and goes where Flax takes one::

    nnx.Linear(64, 64, kernel_init=jol.init.normalized(), rngs=nnx.Rngs(0))

A kernel has shape ``(fan_in, fan_out)`` (Flax convention); for more axes, every axis
but the last counts towards the fan-in (a convolution's window and input channels).

==========================  ==============================================  ==================
name                        rule                                            variance
==========================  ==============================================  ==================
:func:`lecture_uniform`     :math:`U(-1/\sqrt m, 1/\sqrt m)`                :math:`1/(3m)`
:func:`normalized`          :math:`U(-\sqrt{6/(m+n)}, \sqrt{6/(m+n)})`      :math:`2/(m+n)`
:func:`orthogonal`          scaled orthogonal matrix                        :math:`s^2/\max(m, n)`
:func:`sparse`              k nonzero :math:`N(0, s^2)` weights per unit    :math:`k s^2/m`
==========================  ==============================================  ==================

(:math:`m` fan-in, :math:`n` fan-out; a uniform law on :math:`[-a, a]` has variance
:math:`a^2/3`.) :func:`lsuv` then rescales a network's layers on data.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import check_count, check_key, check_positive, check_tolerance

Initializer = Callable[..., jax.Array]
"""``init(key, shape, dtype=None) -> array``, as in ``jax.nn.initializers``."""


def _check_scale(scale: Any) -> None:
    check_positive(
        "scale",
        scale,
        "Pass a positive standard deviation (gain), e.g. 1.0; a zero scale makes every "
        "unit identical, which lecture 003 warns against (symmetry).",
        "1.0",
    )


def lecture_uniform() -> Initializer:
    r"""Lecture 003's heuristic #1: :math:`W_{ij} \sim U(-1/\sqrt m, 1/\sqrt m)`.

    :math:`m` is the fan-in. The variance is :math:`1/(3m)` (a uniform law on
    :math:`[-a, a]` has variance :math:`a^2/3`). The same as
    ``jax.nn.initializers.variance_scaling(1/3, "fan_in", "uniform")``, which draws from
    :math:`U(-\sqrt{3 s/m}, \sqrt{3 s/m})`.

    Returns:
      An initializer ``(key, shape, dtype=None) -> array``.

    Example:
      >>> import jax, jaxopt_lab as jol
      >>> w = jol.init.lecture_uniform()(jax.random.key(0), (100, 50))
      >>> bool(abs(w).max() <= 0.1)  # 1 / sqrt(100)
      True

    References:
      Goodfellow et al. ch. 8 as taught by Favaro (lecture 003), "Weight Initialization
      Strategies", heuristic #1.
    """
    return jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def normalized() -> Initializer:
    r"""Glorot & Bengio's normalized initialization (lecture 003's heuristic #2).

    .. math::
      W_{ij} \sim U\left(-\sqrt{\tfrac{6}{m+n}}, \sqrt{\tfrac{6}{m+n}}\right),
      \qquad \operatorname{Var} W_{ij} = \frac{2}{m+n},

    a compromise between the same activation variance in every layer (fan-in
    :math:`m`) and the same gradient variance (fan-out :math:`n`). The same as
    ``jax.nn.initializers.glorot_uniform()``.

    Returns:
      An initializer ``(key, shape, dtype=None) -> array``.

    References:
      Goodfellow et al. ch. 8 as taught by Favaro (lecture 003), "Weight Initialization
      Strategies", heuristic #2; Glorot & Bengio, "Understanding the difficulty of
      training deep feedforward neural networks", 2010.
    """
    return jax.nn.initializers.glorot_uniform()


def orthogonal(scale: float = 1.0) -> Initializer:
    r"""A random orthogonal matrix times ``scale`` (lecture 003; Saxe et al., 2014).

    For a kernel of shape ``(m, n)``: :math:`W^\top W = s^2 I` when :math:`m \ge n`,
    :math:`W W^\top = s^2 I` otherwise, so a linear layer preserves the norm of its
    input (lecture 003: "preserve the scale of a signal"). ``jax.nn.initializers.
    orthogonal(scale)``; a kernel with more than two axes is orthogonal after reshaping
    to ``(prod(shape[:-1]), shape[-1])``. Half-precision kernels are drawn in float32
    and rounded (the QR decomposition has no bfloat16 kernel on CPU).

    Args:
      scale: the gain :math:`s > 0`.

    Returns:
      An initializer ``(key, shape, dtype=None) -> array``.

    References:
      Goodfellow et al. ch. 8 as taught by Favaro (lecture 003), "Weight Initialization
      Strategies"; Saxe, McClelland & Ganguli, "Exact solutions to the nonlinear dynamics
      of learning in deep linear neural networks", 2014.
    """
    _check_scale(scale)
    draw = jax.nn.initializers.orthogonal(scale)

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = None) -> jax.Array:
        dtype = jax.dtypes.canonicalize_dtype(float if dtype is None else dtype)
        if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32:
            # LAPACK's QR has no half-precision kernels: draw in float32, then round
            return draw(key, shape, jnp.float32).astype(dtype)
        return draw(key, shape, dtype)

    return init


def _float_dtype(dtype: Any) -> np.dtype:
    dtype = jax.dtypes.canonicalize_dtype(float if dtype is None else dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"`dtype` must be a floating dtype, got {dtype}; e.g. jnp.float32.")
    return dtype


def sparse(k: int = 15, scale: float = 1.0) -> Initializer:
    r"""Martens' sparse initialization: exactly ``k`` nonzero incoming weights per unit.

    Each unit (column of the kernel) gets ``k`` incoming weights drawn from
    :math:`N(0, s^2)` at positions chosen uniformly without replacement; the other
    :math:`m - k` weights are zero. Unlike the fan-scaled rules, a wide layer does not
    shrink its individual weights (lecture 003: "a drawback of fixing the scaling is that
    large layers shrink their individual weights"), while the total input of a unit stays
    bounded. Each weight has variance :math:`k s^2 / m`.

    Args:
      k: nonzero incoming weights per unit, a whole number >= 1 (Martens: 15). Static.
      scale: the standard deviation :math:`s > 0` of the nonzero weights (Martens: 1).

    Returns:
      An initializer ``(key, shape, dtype=None) -> array``; every axis but the last is the
      fan-in :math:`m`, which must be at least ``k`` (a ``ValueError`` otherwise).

    Example:
      >>> import jax, jaxopt_lab as jol
      >>> w = jol.init.sparse(k=3)(jax.random.key(0), (20, 4))
      >>> (w != 0).sum(axis=0).tolist()
      [3, 3, 3, 3]

    References:
      Goodfellow et al. ch. 8 as taught by Favaro (lecture 003), "Weight Initialization
      Strategies" (sparse initialization); Martens, "Deep learning via Hessian-free
      optimization", ICML 2010.
    """
    k = check_count(k, "k", fix="Martens uses k=15 nonzero incoming weights per unit.")
    _check_scale(scale)

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = None) -> jax.Array:
        dtype = _float_dtype(dtype)
        shape = tuple(int(d) for d in shape)
        if len(shape) < 2:
            raise ValueError(
                f"`shape` must have at least two axes (fan-in..., fan-out) for sparse(), got "
                f"{shape}; a bias is initialized to zeros instead."
            )
        fan_in = math.prod(shape[:-1])
        if k > fan_in:
            raise ValueError(
                f"`k` = {k} exceeds the fan-in {fan_in} of shape {shape}: a unit cannot have "
                f"{k} distinct incoming weights. Pass sparse(k=...) with k <= {fan_in}."
            )
        return _sparse_draw(key, jnp.asarray(scale, dtype), shape, k).astype(dtype)

    return init


@functools.partial(jax.jit, static_argnums=(2, 3))
def _sparse_draw(key: jax.Array, scale: jax.Array, shape: tuple[int, ...], k: int) -> jax.Array:
    """One compiled draw (eagerly, each operation would compile on its own)."""
    fan_in, fan_out = math.prod(shape[:-1]), shape[-1]
    where_key, value_key = jax.random.split(key)
    # a random permutation of the fan-in positions of each unit: ranks below k are kept
    order = jnp.argsort(jax.random.uniform(where_key, (fan_in, fan_out)), axis=0)
    ranks = jnp.argsort(order, axis=0)
    values = jax.random.normal(value_key, (fan_in, fan_out), scale.dtype) * scale
    return jnp.where(ranks < k, values, jnp.zeros((), scale.dtype)).reshape(shape)


# --- LSUV ------------------------------------------------------------------------------------


class LSUVResult(NamedTuple):
    """What :func:`lsuv` returns."""

    params: Any  # the rescaled parameters, structured as the `params` given
    variances: tuple[float, ...]  # per layer, in order: Var of its output on `batch`, at the end
    iterations: tuple[int, ...]  # per layer: how many times its kernel was rescaled
    converged: tuple[bool, ...]  # per layer: |variance - 1| < tol


def _kernel_name(layer: Any, name: Any) -> str:
    if isinstance(layer, Mapping):
        for key in ("w", "kernel"):
            if key in layer:
                return key
    raise ValueError(
        f"`params[{name!r}]` must be a mapping with a kernel under 'w' (or 'kernel') of "
        f"shape (fan_in, fan_out), got {type(layer).__name__}"
        + (f" with keys {sorted(map(str, layer))}" if isinstance(layer, Mapping) else "")
        + '. Pass dense layers such as {"w": w, "b": b}.'
    )


def _outputs(apply_fn: Callable, params: Any, batch: Any, names: list) -> dict:
    out = apply_fn(params, batch)
    if isinstance(params, Mapping):
        if not isinstance(out, Mapping) or set(out) != set(params):
            got = sorted(map(str, out)) if isinstance(out, Mapping) else type(out).__name__
            raise ValueError(
                "`apply_fn(params, batch)` must return a mapping with the keys of `params` "
                f"({sorted(map(str, params))}), each layer's output before its nonlinearity; "
                f"got {got}."
            )
        return {n: out[n] for n in names}
    if isinstance(out, Mapping) or not isinstance(out, Sequence) or len(out) != len(params):
        got = f"length {len(out)}" if isinstance(out, Sequence) else type(out).__name__
        raise ValueError(
            f"`apply_fn(params, batch)` must return a list of {len(params)} arrays (one per "
            f"layer of `params`, its output before the nonlinearity), got {got}."
        )
    return dict(enumerate(out))


def lsuv(
    apply_fn: Callable[[Any, Any], Any],
    params: Sequence[Mapping[str, Any]] | Mapping[Any, Mapping[str, Any]],
    batch: Any,
    *,
    tol: float = 0.1,
    max_iter: int = 10,
    key: jax.Array | None = None,
) -> LSUVResult:
    r"""Layer-sequential unit-variance initialization (Mishkin & Matas).

    Lecture 003's rule of thumb made into an algorithm: look at the standard deviation of
    each layer's activations on one minibatch and rescale the weights until the output of
    every layer has unit variance. For each layer :math:`L` in order,

    .. math::
      \text{while } |\operatorname{Var}(B_L) - 1| \ge \text{tol and fewer than max\_iter
      rescalings:} \quad W_L \leftarrow W_L / \sqrt{\operatorname{Var}(B_L)},

    where :math:`B_L` is the layer's output (before its nonlinearity) on ``batch`` and the
    variance is over all its entries. Earlier layers are fixed by then, so a layer without
    bias reaches variance 1 in one rescaling; a bias makes it take a few. Biases are left
    as they are. The paper starts from orthogonal kernels: pass ``key`` to redraw every
    kernel from :func:`orthogonal` first, or leave it ``None`` to rescale the kernels
    given.

    The model form: ``params`` is a list (or a dict) of dense layers, each a mapping with
    its kernel under ``"w"`` (or ``"kernel"``), shape ``(fan_in, fan_out)``, and any other
    entries (``"b"``); ``apply_fn(params, batch)`` returns every layer's output before its
    nonlinearity, a list in the order of ``params`` (a dict with the same keys for a dict).
    This runs eagerly, one forward pass per rescaling; ``apply_fn`` may be jitted.

    Args:
      apply_fn: ``(params, batch) -> per-layer outputs``, as above.
      params: the layers, a list or a dict of mappings with a ``"w"`` kernel.
      batch: one minibatch, passed to ``apply_fn`` as it is.
      tol: the tolerance on :math:`|\operatorname{Var} - 1|` (the paper: 0.1), > 0.
      max_iter: the most rescalings per layer (the paper: 10), a whole number >= 1.
      key: a PRNG key to start from orthogonal kernels, or ``None`` to keep ``params``'
        kernels as the start.

    Returns:
      An :class:`LSUVResult`: the new ``params`` (the input is not modified), and per layer
      the output variance reached, the rescalings applied and whether it is within ``tol``.

    Raises:
      ValueError: a layer's output has zero or non-finite variance on ``batch`` (nothing
        to rescale: a constant batch or dead layer), or ``params``/``apply_fn`` do not have
        the form above.

    Example:
      >>> import jax, jax.numpy as jnp, jaxopt_lab as jol
      >>> def apply_fn(params, x):
      ...     outs = []
      ...     for layer in params:
      ...         x = x @ layer["w"] + layer["b"][None, :]
      ...         outs.append(x)
      ...         x = jnp.tanh(x)
      ...     return outs
      >>> params = [{"w": jnp.ones((8, 16)), "b": jnp.zeros(16)},
      ...           {"w": jnp.ones((16, 4)), "b": jnp.zeros(4)}]
      >>> x = jax.random.normal(jax.random.key(0), (64, 8))
      >>> result = jol.init.lsuv(apply_fn, params, x, key=jax.random.key(1))
      >>> result.converged
      (True, True)

    References:
      Goodfellow et al. ch. 8 as taught by Favaro (lecture 003), "Weight Initialization
      Strategies"; Mishkin & Matas, "All you need is a good init", ICLR 2016, algorithm 1.
    """
    if not callable(apply_fn):
        raise TypeError(
            f"`apply_fn` must be a function (params, batch) -> per-layer outputs, got "
            f"{type(apply_fn).__name__}."
        )
    check_tolerance("tol", tol, "0.1")
    max_iter = check_count(max_iter, "max_iter", fix="The paper uses max_iter=10.")
    check_key(key, "key", fix=" (or None to start from the kernels in `params`)")
    if isinstance(params, Mapping):
        names = list(params)
        new = {n: dict(_check_layer(params[n], n)) for n in names}
    elif isinstance(params, Sequence) and not isinstance(params, str):
        names = list(range(len(params)))
        new = [dict(_check_layer(layer, i)) for i, layer in enumerate(params)]
    else:
        raise TypeError(
            f"`params` must be a list or a dict of dense layers ({{'w': ..., 'b': ...}}), "
            f"got {type(params).__name__}."
        )
    if not names:
        raise ValueError("`params` has no layers; pass at least one {'w': ..., 'b': ...}.")
    if key is not None:
        ortho = jax.nn.initializers.orthogonal()
        for name, k in zip(names, jax.random.split(key, len(names)), strict=True):
            w_key = _kernel_name(new[name], name)
            w = new[name][w_key]
            new[name][w_key] = ortho(k, w.shape, w.dtype)

    variances, iterations = [], []
    outs = _outputs(apply_fn, new, batch, names)
    for name in names:
        w_key = _kernel_name(new[name], name)
        var, count = _variance(outs[name], name), 0
        while abs(var - 1.0) >= tol and count < max_iter:
            w = new[name][w_key]
            new[name][w_key] = w * jnp.asarray(1.0 / math.sqrt(var), w.dtype)
            count += 1
            outs = _outputs(apply_fn, new, batch, names)
            var = _variance(outs[name], name)
        variances.append(var)
        iterations.append(count)
    converged = tuple(abs(v - 1.0) < tol for v in variances)
    return LSUVResult(new, tuple(variances), tuple(iterations), converged)


def _check_layer(layer: Any, name: Any) -> Mapping:
    w = layer[_kernel_name(layer, name)]
    shape = np.shape(w)
    if len(shape) < 2 or not jnp.issubdtype(jnp.asarray(w).dtype, jnp.floating):
        raise ValueError(
            f"`params[{name!r}]`'s kernel must be a floating array of shape (fan_in, fan_out), "
            f"got shape {shape}."
        )
    return layer


def _variance(out: Any, name: Any) -> float:
    var = float(np.var(np.asarray(out, np.float64)))
    if not (math.isfinite(var) and var > 0):
        raise ValueError(
            f"The output of layer {name!r} has variance {var} on `batch`; LSUV divides its "
            "kernel by the standard deviation, so it needs outputs that vary. Pass a batch "
            "of distinct examples, and check that the layers before it are not dead or "
            "non-finite."
        )
    return var
