"""Construction-time checks of hyperparameters.

A hyperparameter given as a Python number or a concrete array is checked when the
transformation is built, so a bad configuration fails before anything is compiled.
A traced value (inside ``jit`` or ``vmap``) cannot be inspected and is not checked.
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


def _check(
    name: str, value: Any, ok: Callable[[np.ndarray], np.ndarray], allowed: str, fix: str
) -> None:
    arr = concrete_value(value)
    if arr is None:
        return
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must be a real number, got {value!r} of type {type(value)}.")
    if not np.all(ok(arr)):
        raise ValueError(f"`{name}` must be {allowed}, got {value!r}. {fix}")


def check_unit_interval(name: str, value: Any) -> None:
    """Requires ``0 <= value < 1`` (decay rates, momenta)."""
    _check(
        name,
        value,
        lambda a: (a >= 0) & (a < 1),
        "in [0, 1)",
        f"Pass a value such as 0.9; `{name}` = 1 would never forget and > 1 diverges.",
    )


def check_nonnegative(name: str, value: Any) -> None:
    """Requires ``value >= 0`` (epsilons, damping)."""
    _check(name, value, lambda a: a >= 0, ">= 0", f"Pass a small non-negative `{name}`, e.g. 1e-8.")


def check_learning_rate(name: str, value: Any) -> None:
    """Requires a non-negative learning rate; schedules are checked at step 0."""
    if callable(value):
        try:
            value = value(0)
        except Exception:  # a schedule that cannot run eagerly is left unchecked
            return
    _check(
        name,
        value,
        lambda a: np.isfinite(a) & (a >= 0),
        "a finite number >= 0",
        "The update rules already move against the gradient: pass a positive "
        "learning rate (e.g. 0.01), not a negative one.",
    )


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """Requires ``value`` to be one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {options}, got {value!r}.")


def positive_int(name: str, value: Any, fix: str = "") -> int:
    """``value`` as an ``int >= 1``; else ``ValueError`` naming ``name`` (and ``fix``)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}. {fix}".rstrip())
    return int(value)


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
