"""Construction-time checks of hyperparameters.

A hyperparameter given as a Python number or a concrete array is checked when the
transformation is built, so a bad configuration fails before anything is compiled.
A traced value (inside ``jit`` or ``vmap``) cannot be inspected and is not checked.

A hyperparameter must be one real number: ``None``, a list or tuple, a ``bool``, a string
or (except where a schedule is allowed) a callable is a ``TypeError`` naming the
argument, and a concrete array of a shape other than ``()`` a ``ValueError``. Checks of a
range refuse NaN and infinity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np


def concrete_value(value: Any) -> np.ndarray | None:
    """Returns ``value`` as a NumPy array when it is concrete, else ``None``."""
    if value is None or callable(value) or isinstance(value, jax.core.Tracer):
        return None
    try:
        return np.asarray(value)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return None


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def real_scalar(
    name: str, value: Any, *, example: str = "0.01", schedule: bool = False
) -> np.ndarray | None:
    """``value`` as a 0-d real NumPy array, ``None`` when traced (it cannot be checked).

    Refuses, naming ``name``: ``None``, lists and tuples, booleans, strings, callables
    (unless ``schedule``), and anything that is not a real number (``TypeError``); a
    concrete array of any shape but ``()`` (``ValueError``). Python and NumPy scalars and
    0-d arrays pass; a traced value (inside ``jit`` or ``vmap``) is returned as ``None``.
    """
    what = "a real number or a schedule (step -> value)" if schedule else "a real number"
    if isinstance(value, jax.core.Tracer):
        return None
    if callable(value) and not schedule:
        raise TypeError(
            f"`{name}` must be {what}, got {_describe(value)}; only a learning rate may be "
            f"a schedule. Pass a number, e.g. {example}."
        )
    refused = value is None or isinstance(
        value, bool | np.bool_ | str | bytes | list | tuple | dict | set
    )
    arr = None if refused or callable(value) else concrete_value(value)
    if refused or (arr is not None and arr.dtype.kind not in "iuf"):
        raise TypeError(f"`{name}` must be {what}, got {_describe(value)}. Pass e.g. {example}.")
    if arr is None:
        return None
    if arr.ndim:
        raise ValueError(
            f"`{name}` must be a scalar, got an array of shape {arr.shape}: one value applies "
            f"to every parameter. Pass e.g. {example}; to try several values, sweep over them "
            "(vmap or jol.sweep)."
        )
    return arr


def _check(
    name: str,
    value: Any,
    ok: Callable[[np.ndarray], np.ndarray],
    allowed: str,
    fix: str,
    example: str = "0.01",
) -> None:
    arr = real_scalar(name, value, example=example)
    if arr is None:
        return
    if not np.all(ok(arr)):
        raise ValueError(f"`{name}` must be {allowed}, got {value!r}. {fix}")


def check_unit_interval(name: str, value: Any, example: str = "0.9", fix: str = "") -> None:
    """Requires ``0 <= value < 1`` (decay rates, momenta); NaN and inf fail.

    ``fix`` replaces the default advice, which is about decay rates.
    """
    _check(
        name,
        value,
        lambda a: (a >= 0) & (a < 1),
        "in [0, 1)",
        fix or f"Pass a value such as {example}; `{name}` = 1 would never forget and > 1 diverges.",
        example,
    )


def check_nonnegative(name: str, value: Any, example: str = "1e-8", fix: str = "") -> None:
    """Requires a finite ``value >= 0`` (epsilons, damping, increments, absolute tolerances);
    NaN and inf fail. ``fix`` replaces the default advice, which is about update rules.
    """
    _check(
        name,
        value,
        lambda a: np.isfinite(a) & (a >= 0),
        "a finite number >= 0",
        fix
        or f"Pass a small non-negative `{name}`, e.g. {example} (an infinite one freezes or "
        "overflows the update).",
        example,
    )


def check_positive(name: str, value: Any, fix: str, example: str = "100.0") -> None:
    """Requires a finite ``value > 0`` (time scales, tolerances); NaN and inf fail."""
    _check(name, value, lambda a: np.isfinite(a) & (a > 0), "a finite number > 0", fix, example)


def check_tolerance(name: str, value: Any, example: str = "1e-4") -> None:
    """Requires a finite tolerance ``value > 0`` (``tol``, ``rtol``, a step ``eps``).

    The one check of every positive tolerance: a ``TypeError`` for ``None``, a string, a
    bool or a list, a ``ValueError`` for zero, a negative number, NaN or infinity (and an
    array that is not 0-d), naming ``name``. A traced value is not checked.
    """
    check_positive(
        name,
        value,
        f"Pass a small positive `{name}`, e.g. {example}; 0 could never be met.",
        example,
    )


def check_learning_rate(name: str, value: Any, *, schedule: bool = True) -> None:
    """Requires a finite learning rate ``>= 0``; a schedule is checked at step 0.

    With ``schedule=False`` a callable is refused (``TypeError``) like any non-number.
    """
    if schedule and callable(value) and not isinstance(value, jax.core.Tracer):
        try:
            at_zero = value(0)
        except Exception:  # a schedule that cannot run eagerly is left unchecked
            return
        try:
            arr = real_scalar(name, at_zero, example="0.01")
        except (TypeError, ValueError) as e:
            note = f" (The schedule passed as `{name}` returned this at step 0.)"
            raise type(e)(f"{e}{note}") from None
        label = f"{at_zero!r} (the schedule's value at step 0)"
    else:
        arr = real_scalar(name, value, example="0.01", schedule=schedule)
        label = repr(value)
    if arr is not None and not (np.isfinite(arr) and arr >= 0):
        raise ValueError(
            f"`{name}` must be a finite number >= 0, got {label}. The update rules already "
            "move against the gradient: pass a positive learning rate (e.g. 0.01), not a "
            "negative one."
        )


def check_bool(name: str, value: Any) -> None:
    """Requires a Python (or NumPy) ``bool`` for a static switch."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(
            f"`{name}` is a static switch and must be True or False, got {_describe(value)}."
        )


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Requires ``value`` to be one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {options}, got {value!r}.")


def check_count(
    value: Any, name: str, *, minimum: int = 1, maximum: int | None = None, fix: str = ""
) -> int:
    """``value`` as a Python ``int`` in ``[minimum, maximum]``.

    Python and NumPy integers (and integer 0-d arrays) are accepted alike; a ``bool``, a
    float or anything else is a ``TypeError``, an integer out of range a ``ValueError``,
    each naming ``name``, the value and ``fix``.
    """
    if (
        isinstance(value, np.ndarray | jax.Array)
        and value.shape == ()
        and not isinstance(value, jax.core.Tracer)
    ):
        value = value.item() if np.issubdtype(value.dtype, np.integer) else value
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise TypeError(
            f"`{name}` must be a whole number >= {minimum}, got {_describe(value)}. {fix}".rstrip()
        )
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum:,}]"
        raise ValueError(f"`{name}` must be a whole number {bound}, got {value}. {fix}".rstrip())
    return value


def leading_axis(name: str, tree: Any) -> int:
    """The shared leading-axis length of the arrays in ``tree``."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        raise ValueError(f"`{name}` must be a pytree of arrays, got {tree!r} (no arrays).")
    sizes = set()
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        shape = np.shape(leaf)
        if not shape:
            raise ValueError(
                f"`{name}` holds a scalar at {jax.tree_util.keystr(path)}; every array "
                "needs a leading example axis."
            )
        sizes.add(shape[0])
    if len(sizes) != 1:
        shapes = {
            jax.tree_util.keystr(p): np.shape(x)
            for p, x in jax.tree_util.tree_leaves_with_path(tree)
        }
        raise ValueError(
            f"`{name}`: arrays must share their leading (example) axis, got shapes {shapes}."
        )
    n = sizes.pop()
    if n < 1:
        raise ValueError(f"`{name}` is empty (leading axis of length 0).")
    return n


def check_key(key: Any, name: str = "key", fix: str = " (or None for full-batch training)") -> Any:
    """``key`` must be a PRNG key: ``jax.random.key(s)`` or a legacy ``PRNGKey(s)``."""
    if key is None:
        return None
    ok = isinstance(key, jax.Array | np.ndarray) and (
        (jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ())
        or (key.dtype == np.uint32 and key.shape == (2,))
    )
    if not ok:
        raise TypeError(
            f"`{name}` must be a PRNG key, got {key!r}; pass e.g. jax.random.key(0){fix}."
        )
    return key
