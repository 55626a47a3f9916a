"""Small pieces shared by the transformation families."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab._types import ScalarOrSchedule
from jaxopt_lab._validation import check_bool, check_learning_rate

_keystr = jax.tree_util.keystr


def cast_like(value: jax.typing.ArrayLike, like: jax.Array) -> jax.Array:
    """``value`` as an array of ``like``'s dtype (keeps bf16 params bf16 under vmap)."""
    return jnp.asarray(value, dtype=like.dtype)


def safe_increment(count: jax.Array) -> jax.Array:
    """``count + 1`` that saturates instead of wrapping around."""
    return optax.safe_increment(count)


def _dtype(leaf: Any) -> np.dtype:
    dtype = getattr(leaf, "dtype", None)
    return np.dtype(jnp.result_type(leaf) if dtype is None else dtype)


def check_float_params(params: Any, name: str = "params") -> None:
    """Refuses a parameter leaf that is not floating point, naming its path and dtype.

    An update rule's arithmetic on an integer (or boolean, or complex) leaf silently
    rounds or misbehaves: Adam turns ``int32 [1, 2, 3]`` into ``[0, 0, 0]`` and SGD leaves
    it unchanged. Every ``init`` calls this, and every ``update`` that is given
    ``params``. Runs at trace time only (dtypes are static).
    """
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dtype = _dtype(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"`{name}`{_keystr(path)} has dtype {dtype}: the update rules move "
                "floating-point parameters only (an integer parameter would be rounded, "
                "e.g. Adam turns [1, 2, 3] into [0, 0, 0]). Cast it first, e.g. "
                "params = jax.tree.map(lambda p: p.astype(jnp.float32), params)."
            )


def _short(treedef: Any) -> str:
    text = str(treedef)
    return text if len(text) <= 300 else text[:297] + "..."


def check_updates(updates: Any, like: Any, source: str = "`params`") -> None:
    """Requires ``updates`` to have the tree structure and leaf shapes of ``like``.

    ``like`` is the parameters, or a part of the optimizer state that ``init`` built from
    them (``source`` says which, for the message). Without this check a gradient tree of
    another structure fails with jax's pytree message, and a gradient leaf of shape
    ``(1,)`` against a parameter of shape ``(3,)`` is broadcast silently. Shapes are
    static: this runs at trace time only.
    """
    u_leaves, u_def = jax.tree_util.tree_flatten_with_path(updates)
    r_leaves, r_def = jax.tree_util.tree_flatten_with_path(like)
    if u_def != r_def:
        u_paths = [_keystr(p) for p, _ in u_leaves]
        r_paths = [_keystr(p) for p, _ in r_leaves]
        missing = [p for p in r_paths if p not in set(u_paths)]
        extra = [p for p in u_paths if p not in set(r_paths)]
        where = []
        if missing:
            where.append(f"no leaf at {', '.join(missing[:5])}")
        if extra:
            where.append(f"a leaf at {', '.join(extra[:5])}, where the parameters have none")
        detail = f"they have {'; '.join(where)}. " if where else ""
        raise ValueError(
            "`updates` (the gradients) must have the tree structure of the parameters "
            f"({source}): {detail}Structure of the updates: {_short(u_def)}; of the "
            f"parameters: {_short(r_def)}. Take the gradient with respect to the "
            "parameters that were passed to `init`."
        )
    for (path, u), (_, r) in zip(u_leaves, r_leaves, strict=True):
        if np.shape(u) != np.shape(r):
            raise ValueError(
                f"`updates`{_keystr(path)} has shape {np.shape(u)} but the parameter there "
                f"has shape {np.shape(r)} ({source}); a gradient must have its parameter's "
                "shape (it would be broadcast silently)."
            )


def check_update_args(updates: Any, like: Any = None, params: Any = None) -> None:
    """The checks every ``update`` makes (at trace time).

    ``updates`` against ``params`` when given (whose leaves must also be floating point),
    and against ``like``, the part of the state that ``init`` built from the parameters
    (``None`` for a stateless transformation, which can check only given ``params``).
    """
    if params is not None:
        check_float_params(params)
        check_updates(updates, params)
    if like is not None:
        check_updates(updates, like, "as recorded by `init` in the optimizer state")


def compute_dtype(dtype: Any) -> np.dtype:
    """The dtype of arithmetic and accumulated moments: float32 for half precision.

    bfloat16 and float16 second moments overflow (float16: ``g * g`` beyond 65504) or stop
    changing (bfloat16: ``0.999 * r`` rounds to ``r``); wider dtypes are kept.
    """
    dtype = np.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize < 4:
        return np.dtype(np.float32)
    return dtype


def zeros_moment(params: Any) -> Any:
    """Zeros like ``params`` in :func:`compute_dtype` of each leaf."""
    return jax.tree.map(lambda p: jnp.zeros_like(p, dtype=compute_dtype(_dtype(p))), params)


def out_dtypes(updates: Any, params: Any = None) -> Any:
    """Per leaf, the dtype an update is returned in: the parameter's when ``params`` is
    given, else the incoming update's (the same when it is a gradient of the parameters).
    """
    return jax.tree.map(lambda x: _dtype(x), updates if params is None else params)


def scale(factor: jax.typing.ArrayLike, g: jax.Array) -> jax.Array:
    """``factor * g`` computed in :func:`compute_dtype` and returned in ``g``'s dtype.

    One rounding to ``g``'s dtype, and no underflow of a small factor in float16 (a
    learning rate of 1e-8 is 0 there).
    """
    g = jnp.asarray(g)
    c = compute_dtype(g.dtype)
    return (jnp.asarray(factor, c) * g.astype(c)).astype(g.dtype)


class ScaleByScheduleState(NamedTuple):
    """State of :func:`scale_by_learning_rate` when the rate is a schedule."""

    count: jax.Array  # int32 scalar: number of updates applied so far


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule, *, flip_sign: bool = True
) -> optax.GradientTransformationExtraArgs:
    r"""Multiplies updates by :math:`-\alpha` (or :math:`+\alpha` with ``flip_sign=False``).

    Unlike ``optax.scale_by_learning_rate`` the product is returned in each leaf's dtype,
    so a traced float32 learning rate (``vmap`` over a grid) leaves bfloat16 parameters
    bfloat16; for half-precision leaves it is computed in float32 and rounded once. A
    schedule is evaluated at the update count, starting at 0.

    Args:
      learning_rate: a non-negative scalar, a traced array, or a schedule
        ``step -> value``. Concrete values are checked at construction (``None``, lists,
        booleans and strings are a ``TypeError``); traced ones cannot be.
      flip_sign: multiply by ``-learning_rate`` (descent) when True.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.
    """
    check_learning_rate("learning_rate", learning_rate)
    check_bool("flip_sign", flip_sign)
    sign = -1.0 if flip_sign else 1.0

    if callable(learning_rate):

        def init_fn(params):
            check_float_params(params)
            return ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

        def update_fn(updates, state, params=None, **extra_args):
            del extra_args
            check_update_args(updates, params=params)
            step_size = sign * learning_rate(state.count)
            updates = jax.tree.map(lambda g: scale(step_size, g), updates)
            return updates, ScaleByScheduleState(count=safe_increment(state.count))

    else:

        def init_fn(params):
            check_float_params(params)
            return optax.EmptyState()

        def update_fn(updates, state, params=None, **extra_args):
            del extra_args
            check_update_args(updates, params=params)
            updates = jax.tree.map(lambda g: scale(sign * learning_rate, g), updates)
            return updates, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
