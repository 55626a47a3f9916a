"""``check_grad``: gradients against central finite differences, leaf by leaf."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._types import Params
from jaxopt_lab._validation import check_count, check_key, check_tolerance


class LeafCheck(NamedTuple):
    """The comparison for one parameter leaf."""

    name: str  # the leaf's path in the params pytree, e.g. "['w2']" or ".layers[0].kernel"
    size: int  # number of entries in the leaf
    relative_error: float  # ||fd - ad|| / max(||fd||, ||ad||) over the probes (0 if both 0)
    tolerance: float  # the relative error allowed: rtol plus the rounding-noise floor
    eps: float  # finite-difference step along each unit probe direction
    num_probes: int  # directional derivatives compared (random directions + coordinates)
    coordinates: bool  # every coordinate of the leaf was probed, not only random directions
    passed: bool  # relative_error <= tolerance


class GradCheck(NamedTuple):
    """What :func:`check_grad` returns; ``bool(result.passed)`` is the verdict."""

    passed: bool  # every leaf passed
    leaves: tuple[LeafCheck, ...]  # one per floating-point leaf, in tree-flattening order

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of the leaves whose gradient disagrees with the finite differences."""
        return tuple(leaf.name for leaf in self.leaves if not leaf.passed)

    @property
    def worst(self) -> LeafCheck:
        """The leaf with the largest relative error."""
        return max(self.leaves, key=lambda leaf: leaf.relative_error)

    def __str__(self) -> str:
        width = max([len(leaf.name) for leaf in self.leaves] + [4])
        lines = [f"GradCheck: {'passed' if self.passed else 'FAILED: ' + ', '.join(self.failed)}"]
        for leaf in self.leaves:
            probe = "coordinates" if leaf.coordinates else "directions"
            lines.append(
                f"  {leaf.name:<{width}}  rel. error {leaf.relative_error:.2e}"
                f" (tol {leaf.tolerance:.1e}, eps {leaf.eps:.0e}, {leaf.num_probes} {probe})"
                f"  {'ok' if leaf.passed else 'WRONG'}"
            )
        return "\n".join(lines)


_DEFAULTS = {  # dtype -> (eps, rtol): eps ~ cbrt(machine epsilon), rtol well above the error
    np.dtype(np.float64): (1e-5, 1e-6),
    np.dtype(np.float32): (1e-2, 1e-2),
    np.dtype(np.float16): (1e-1, 1e-1),
    np.dtype(jnp.bfloat16): (1e-1, 1e-1),
}


_HALF = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))


def check_grad(
    f: Callable[..., jax.Array],
    params: Params,
    *args: Any,
    grad_fn: Callable[..., Params] | None = None,
    num_directions: int = 4,
    max_coordinates: int = 64,
    eps: float | None = None,
    rtol: float | None = None,
    key: jax.Array | None = None,
    throw: bool = False,
) -> GradCheck:
    r"""Compares a gradient with central finite differences, one parameter leaf at a time.

    The "incorrect gradients" row of lecture 000's recap table
    (Grosse & Ba, lectures 7-8): diagnose with finite differences, fix them or use
    autodiff. For each leaf :math:`\theta_\ell` and unit probe direction :math:`v`
    supported on that leaf,

    .. math::
       \frac{f(\theta + \epsilon v) - f(\theta - \epsilon v)}{2\epsilon}
       = \nabla_{\theta_\ell} f \cdot v + O(\epsilon^2),

    with ``num_directions`` random Gaussian directions per leaf, plus every coordinate
    direction of leaves with at most ``max_coordinates`` entries. The leaf's relative
    error is :math:`\|d_{fd} - d_{ad}\| / \max(\|d_{fd}\|, \|d_{ad}\|)` over its probes,
    compared with ``rtol`` plus the rounding-noise floor of the differences
    (:math:`8\,\mathrm{eps}_{mach} \max|f| / \epsilon` per probe, relative to the
    derivative's size), so a leaf whose gradient is tiny compared with the rounding of
    ``f`` is not failed for noise.

    The step and tolerance default to the leaf's dtype: float64 ``eps=1e-5, rtol=1e-6``;
    float32 ``eps=1e-2, rtol=1e-2`` (a wrong factor, sign or transpose shows as an error
    of order 1; for a finer check run in float64 with ``jax.experimental.enable_x64``).
    Leaves in bfloat16 or float16 are moved in float32 (``f`` is evaluated at the
    parameters cast to float32; half precision cannot resolve the differences), with the
    float32 defaults, against the gradient computed at the half-precision parameters.

    Args:
      f: ``f(params, *args) -> scalar``, traceable (it is jitted and vmapped over probes).
      params: a pytree of arrays; non-floating leaves are not checked.
      *args: further arguments of ``f`` (e.g. a batch), held fixed.
      grad_fn: the gradient to check, ``grad_fn(params, *args) -> pytree like params``;
        default ``jax.grad(f)`` (which checks any ``custom_vjp`` inside ``f``).
      num_directions: random directions per leaf, ``>= 1``.
      max_coordinates: leaves with at most this many entries are also probed along every
        coordinate (0 disables).
      eps: finite-difference step; default by dtype (above).
      rtol: relative tolerance; default by dtype (above).
      key: PRNG key for the directions (default ``jax.random.key(0)``).
      throw: raise ``ValueError`` naming the failing leaves instead of returning a failed
        result.

    Returns:
      A :class:`GradCheck` with the verdict ``passed``, a :class:`LeafCheck` per leaf and
      ``failed`` (the names of the wrong leaves); ``print`` it for a table.

    Raises:
      TypeError: for an argument of the wrong type (e.g. ``rtol="1e-2"``).
      ValueError: for an argument out of range, or when ``throw=True`` and a leaf fails.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_lab as jol
      >>> f = lambda p, x: jnp.sum(jnp.tanh(x @ p["w"]) ** 2)
      >>> result = jol.diagnostics.check_grad(f, {"w": jnp.ones((3, 2))}, jnp.ones((4, 3)))
      >>> result.passed
      True
    """
    num_directions = check_count(num_directions, "num_directions", fix="E.g. num_directions=4.")
    max_coordinates = check_count(
        max_coordinates, "max_coordinates", minimum=0, fix="E.g. 64, or 0 for none."
    )
    if eps is not None:
        check_tolerance("eps", eps, "1e-3 in float32")
    if rtol is not None:
        check_tolerance("rtol", rtol, "1e-2 in float32")
    check_key(key, fix=" (or None)")
    key = jax.random.key(0) if key is None else key
    grad_fn = jax.grad(f) if grad_fn is None else grad_fn

    path_leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    leaves = [jnp.asarray(x) for _, x in path_leaves]
    inexact = [jnp.issubdtype(x.dtype, jnp.inexact) for x in leaves]
    if not any(inexact):
        raise ValueError("`params` has no floating-point leaves to check.")
    value = jax.eval_shape(lambda p: f(p, *args), params)  # the shape only: no compilation
    shape = getattr(value, "shape", None)
    if shape != ():
        raise ValueError(f"`f` must return a scalar, got shape {shape}.")
    grads = treedef.flatten_up_to(jax.jit(lambda p: grad_fn(p, *args))(params))
    # Half precision rounds f(theta +- eps v) too coarsely to tell a gradient from half or
    # twice it: the differences are taken at the parameters cast to float32 (the gradient
    # checked is still the one computed at the half-precision parameters).
    leaves = [x.astype(jnp.float32) if x.dtype in _HALF else x for x in leaves]

    # Probe directions per leaf; all probes are evaluated by one compiled, mapped call.
    probes, plan = [], []
    for i, leaf in enumerate(leaves):
        if not inexact[i]:
            continue
        dtype = np.dtype(leaf.dtype)
        d_eps, d_rtol = _DEFAULTS.get(dtype, _DEFAULTS[np.dtype(np.float32)])
        size = int(leaf.size)
        dirs = np.array(
            jax.random.normal(jax.random.fold_in(key, i), (num_directions, size)), np.float64
        )
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        coords = 0 < size <= max_coordinates
        if coords:
            dirs = np.concatenate([dirs, np.eye(size)])
        step = d_eps if eps is None else eps
        plan.append((i, dirs, step, d_rtol if rtol is None else rtol, coords))
        probes += [(i, step * d) for d in dirs] + [(i, -step * d) for d in dirs]

    deltas = [np.zeros((len(probes), *x.shape), x.dtype) for x in leaves]
    for row, (i, d) in enumerate(probes):
        deltas[i][row] = d.reshape(leaves[i].shape)

    @jax.jit
    def evaluate(deltas):
        def one(delta):
            moved = [x + dx if ok else x for x, dx, ok in zip(leaves, delta, inexact, strict=True)]
            return f(jax.tree.unflatten(treedef, moved), *args)

        return jax.lax.map(one, deltas, batch_size=min(len(probes), 16))

    values = np.asarray(evaluate(deltas), np.float64)

    checks, row = [], 0
    for i, dirs, step, tol, coords in plan:
        n = len(dirs)
        f_plus, f_minus = values[row : row + n], values[row + n : row + 2 * n]
        row += 2 * n
        fd = (f_plus - f_minus) / (2 * step)
        ad = dirs @ np.asarray(jnp.reshape(grads[i], -1), np.float64)
        err = float(np.linalg.norm(fd - ad))
        scale = max(float(np.linalg.norm(fd)), float(np.linalg.norm(ad)))
        f_abs = float(np.max(np.abs(np.concatenate([f_plus, f_minus]))))
        eps_mach = float(np.finfo(leaves[i].dtype).eps)
        noise = 8 * eps_mach * f_abs / step * np.sqrt(n)
        rel = err / scale if scale > 0 else 0.0
        allowed = tol + (noise / scale if scale > 0 else 0.0)
        if not (np.isfinite(rel) and np.isfinite(err) and np.isfinite(scale)):
            rel = float("inf")  # a NaN or inf difference or gradient fails, never passes
        name = jax.tree_util.keystr(path_leaves[i][0]) or "params"
        checks.append(
            LeafCheck(name, leaves[i].size, rel, allowed, step, n, coords, bool(rel <= allowed))
        )

    result = GradCheck(passed=all(c.passed for c in checks), leaves=tuple(checks))
    if throw and not result.passed:
        raise ValueError(
            f"The gradient of `f` disagrees with finite differences for {list(result.failed)}; "
            f"fix the derivative of these parameters (or use autodiff).\n{result}"
        )
    return result
