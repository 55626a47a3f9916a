"""One call that says what the curvature at a point means for optimisation."""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab._errors import DivergedError
from jaxopt_lab._validation import (
    check_choice,
    check_count,
    check_key,
    check_nonnegative,
    check_tolerance,
)
from jaxopt_lab.curvature._eigen import eigenvalues
from jaxopt_lab.curvature._operator import HessianOperator, as_operator

KINDS = ("minimum", "maximum", "saddle", "degenerate", "not_critical", "nonfinite")
METHODS = ("auto", "dense", "lanczos")


class CurvatureReport(NamedTuple):
    """What the Hessian at a point says (lectures 000, 001, 004). Numbers are Python floats."""

    loss: float  # the (data-averaged) loss at the point
    grad_norm: float  # ||grad L||_2
    eigenvalues: np.ndarray  # descending: all of them (dense) or the extremes found (lanczos)
    lambda_max: float  # largest eigenvalue
    lambda_min: float  # smallest eigenvalue
    condition_number: float  # lambda_max / lambda_min when H is positive definite, else nan
    condition_number_nonzero: float  # max |l| / min non-zero |l| (lecture 001); nan if unknown
    kind: str  # "minimum" | "maximum" | "saddle" | "degenerate" | "not_critical" | "nonfinite"
    counts: dict[str, int] | None  # {"positive", "negative", "zero"} (dense path), else None
    max_stable_lr: float  # 2 / lambda_max: gradient descent diverges above it (inf if <= 0)
    optimal_lr: float  # 1 / lambda_max: lecture 001's "optimal" step, optimal in 1-D only
    learning_rate: float  # the rate gd_rate refers to (given, else optimal_lr)
    gd_rate: float  # max(|1 - a l_min|, |1 - a l_max|): GD contraction per step near here
    method: str  # "dense" | "lanczos"
    size: int  # number of parameters D
    converged: bool  # eigenvalues met their tolerance (always True on the dense path)
    num_matvecs: int  # Hessian-vector products used (D on the dense path)
    grad_tol: float  # absolute: critical point when grad_norm <= grad_tol
    zero_tol: float  # absolute: an eigenvalue with |l| <= zero_tol counts as zero
    curvature: str = "hessian"  # the matrix analyzed: "hessian" | "ggn" | "fisher"
    # 2 / (lambda_max + lambda_min): the GD rate with the smallest worst-case contraction
    # (kappa - 1) / (kappa + 1) on a positive-definite quadratic; nan unless H is definite
    minimax_lr: float = math.nan

    def _matrix(self) -> str:
        return {"hessian": "H", "ggn": "the GGN", "fisher": "the Fisher"}.get(
            self.curvature, self.curvature
        )

    def _condition(self) -> str:
        if not math.isnan(self.condition_number):
            return f"{self.condition_number:.6g}"
        if self.lambda_min > 0:  # positive, but below zero_tol: numerically singular
            return f"undefined ({self._matrix()} is singular: lambda_min <= {self.zero_tol:.2g})"
        return f"undefined ({self._matrix()} is not positive definite)"

    def _nonzero_ratio(self) -> str:
        if not math.isnan(self.condition_number_nonzero):
            return f"{self.condition_number_nonzero:.6g}"
        if self.method == "dense":
            return "undefined (every eigenvalue is zero)"
        return "unknown (Lanczos finds the ends of the spectrum; method='dense' finds all)"

    def _minimax(self) -> str:
        if math.isnan(self.minimax_lr):
            return f"undefined ({self._matrix()} is not positive definite)"
        kappa = self.lambda_max / self.lambda_min
        rate = (kappa - 1) / (kappa + 1)
        return (
            f"{self.minimax_lr:.6g}  (2 / (lambda_max + lambda_min): gd rate "
            f"{rate:.6g} = (kappa - 1) / (kappa + 1))"
        )

    def _rows(self) -> list[tuple[str, str]]:
        shown = ", ".join(f"{v:.6g}" for v in self.eigenvalues[:6])
        if len(self.eigenvalues) > 6:
            shown += f", ... ({len(self.eigenvalues)} in all)"
        rows = [
            ("kind", self.kind),
            ("loss", f"{self.loss:.6g}"),
            ("grad norm", f"{self.grad_norm:.3g}  (critical below {self.grad_tol:.1g})"),
            ("lambda max / min", f"{self.lambda_max:.6g} / {self.lambda_min:.6g}"),
            ("eigenvalues", shown),
            ("condition number", self._condition()),
            ("  non-zero |l| ratio", self._nonzero_ratio()),
        ]
        if self.counts is not None:
            c = self.counts
            rows.append(
                (
                    "signs",
                    f"{c['positive']} positive, {c['negative']} negative, {c['zero']} zero"
                    f" (|l| <= {self.zero_tol:.2g})",
                )
            )
        rows += [
            ("max stable lr", f"{self.max_stable_lr:.6g}  (2 / lambda_max)"),
            ("optimal lr", f"{self.optimal_lr:.6g}  (1 / lambda_max: optimal in 1-D)"),
            ("minimax lr", self._minimax()),
            ("gd rate", f"{self.gd_rate:.6g}  at lr {self.learning_rate:.6g}"),
            (
                "method",
                f"{self.method}, D = {self.size:,}, {self.num_matvecs} HVPs, "
                f"converged = {self.converged}"
                + ("" if self.curvature == "hessian" else f", of the {self.curvature.upper()}"),
            ),
        ]
        return rows

    def __str__(self) -> str:
        rows = self._rows()
        width = max(len(k) for k, _ in rows)
        return "CurvatureReport\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self._rows()
        )
        return f"<table><caption>CurvatureReport</caption>{body}</table>"


def classify(
    grad_norm: float, lam_max: float, lam_min: float, grad_tol: float, zero_tol: float
) -> str:
    """Second-derivative test (lecture 004): the kind of point from the gradient and spectrum.

    ``"nonfinite"`` when the gradient norm or an eigenvalue is inf or NaN (the loss or the
    point is not finite: nothing can be told); not critical when ``grad_norm > grad_tol``;
    else a minimum when every eigenvalue is
    > ``zero_tol`` (H positive definite), a maximum when every one is < ``-zero_tol``, a
    saddle when there are both signs, and degenerate ("inconclusive, may be a saddle point
    or a part of a flat region") when some are zero and the rest share one sign.
    """
    for name, value in (("grad_tol", grad_tol), ("zero_tol", zero_tol)):
        _check_absolute_tolerance(name, value)
    numbers = (grad_norm, lam_max, lam_min)
    if not all(isinstance(v, int | float | np.number) for v in numbers):
        raise TypeError(f"`grad_norm`, `lam_max` and `lam_min` must be numbers, got {numbers!r}.")
    if not all(math.isfinite(v) for v in numbers):
        return "nonfinite"
    if not grad_norm <= grad_tol:
        return "not_critical"
    if lam_min > zero_tol:
        return "minimum"
    if lam_max < -zero_tol:
        return "maximum"
    if lam_max > zero_tol and lam_min < -zero_tol:
        return "saddle"
    return "degenerate"


@jax.jit
def _loss_and_grad_norm(op: HessianOperator):
    loss, grad = op.loss_and_grad()
    return loss, optax.tree.norm(grad)


@jax.jit
def _eigvalsh(matrix: jax.Array) -> jax.Array:
    return jnp.linalg.eigvalsh(matrix)


def _check_absolute_tolerance(name: str, value: Any) -> None:
    check_nonnegative(name, value, "1e-5", f"Pass e.g. `{name}`=1e-5 (0 asks for exact zeros).")


def _nonfinite(loss, grad_norm, method, size, grad_tol, learning_rate, throw) -> CurvatureReport:
    """The report at a point whose loss, gradient or Hessian is not finite."""
    if throw:
        raise DivergedError(
            f"`analyze` (throw=True): the loss ({loss}) or its derivatives are not finite at "
            f"this point (gradient norm {grad_norm}); check the parameters and the data."
        )
    nan = math.nan
    return CurvatureReport(
        loss=loss,
        grad_norm=grad_norm,
        eigenvalues=np.full(1, nan),
        lambda_max=nan,
        lambda_min=nan,
        condition_number=nan,
        condition_number_nonzero=nan,
        kind="nonfinite",
        counts=None,
        max_stable_lr=nan,
        optimal_lr=nan,
        learning_rate=nan if learning_rate is None else float(learning_rate),
        gd_rate=nan,
        method=method,
        size=size,
        converged=False,
        num_matvecs=0,
        grad_tol=float(grad_tol),
        zero_tol=nan,
    )


def _inv(x: float) -> float:
    return 1.0 / x if x > 0 else math.inf


def analyze(
    loss_fn: Callable[..., jax.Array] | HessianOperator,
    params: Any = None,
    data: Any = None,
    *,
    batch_size: int | None = None,
    method: str = "auto",
    max_dense: int = 2048,
    max_bytes: int | None = None,
    k: int = 3,
    tol: float = 1e-4,
    grad_tol: float = 1e-5,
    eig_tol: float = 1e-5,
    learning_rate: float | None = None,
    key: jax.Array | None = None,
    throw: bool = False,
) -> CurvatureReport:
    r"""Gradient, extreme eigenvalues, condition numbers, kind of point and learning-rate bounds.

    * kind: the second-derivative test of lecture 004 (see :func:`classify`).
    * condition number :math:`\lambda_{\max}/\lambda_{\min}` when H is positive definite
      (lectures 000 and 004), and the ratio of the largest to the smallest non-zero
      :math:`|\lambda|` (lecture 001), which on the Lanczos path is known only when H is
      definite (the smallest :math:`|\lambda|` is interior otherwise) and is nan there.
    * gradient descent on the local quadratic multiplies the error along eigenvector i by
      :math:`1 - \alpha\lambda_i` (lecture 000), so it is stable for
      :math:`\alpha < 2/\lambda_{\max}` (``max_stable_lr``) and contracts at
      :math:`\max(|1-\alpha\lambda_{\min}|, |1-\alpha\lambda_{\max}|)` per step (``gd_rate``,
      LeCun & Defazio, lecture 001), which at :math:`\alpha = 1/\lambda_{\max}`
      (``optimal_lr``) is :math:`1 - \mu/L`.
    * ``optimal_lr`` :math:`= 1/\lambda_{\max}` is lecture 001's "optimal learning rate =
      inverse second derivative": optimal in one dimension (one step to the minimum of a
      parabola), and along the top eigenvector only. In several dimensions the rate that
      minimises the worst contraction :math:`\max_i |1 - \alpha\lambda_i|` of gradient
      descent on a quadratic is ``minimax_lr`` :math:`= 2/(\lambda_{\max} + \lambda_{\min})`,
      where the two extremes contract equally, at :math:`(\kappa - 1)/(\kappa + 1)` per step
      (:math:`\kappa = \lambda_{\max}/\lambda_{\min}`) against :math:`1 - 1/\kappa` at
      ``optimal_lr``. It needs H positive definite (nan otherwise) and both ends of the
      spectrum, and it sits just below the divergence bound ``max_stable_lr`` when
      :math:`\kappa` is large, so it is a statement about the local quadratic, not a
      safe rate for a network.

    Args:
      loss_fn: ``loss_fn(params, batch)`` (``loss_fn(params)`` when ``data`` is None), or
        an operator (:func:`hvp_operator`, :func:`ggn_operator`, :func:`fisher_operator`;
        then omit ``params`` and ``data``): the report is then of that matrix (its
        ``curvature`` field says which), the loss and gradient those of its loss.
      params: a pytree or an ``nnx.Module`` (inference mode).
      data: a pytree of arrays with a leading example axis, or None.
      batch_size: examples per batch when accumulating over ``data``.
      method: ``"dense"`` (all eigenvalues, ``eigh``), ``"lanczos"`` (the ``k`` largest and
        ``k`` smallest by :func:`eigenvalues`), or ``"auto"``: dense when D <= ``max_dense``.
      max_dense: the size up to which ``"auto"`` goes dense.
      max_bytes: memory budget of the dense matrix (see :func:`dense_hessian`).
      k: eigenvalues at each end on the Lanczos path.
      tol: Lanczos relative residual tolerance.
      grad_tol: the point is critical when the gradient norm is at most this (absolute).
      eig_tol: an eigenvalue is zero when :math:`|\lambda| \le` ``eig_tol`` :math:`\cdot
        \max|\lambda|` (relative, so it scales with the loss).
      learning_rate: the rate at which to report ``gd_rate`` (default ``optimal_lr``).
      key: PRNG key for Lanczos.
      throw: raise :class:`jaxopt_lab.DivergedError` when a Lanczos eigenvalue did not
        converge (``converged`` in the report says it otherwise).

    Returns:
      A :class:`CurvatureReport`; ``print(report)`` gives a readable summary.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxopt_lab as jol
      >>> f = lambda p: p[0] ** 2 - p[1] ** 2
      >>> jol.curvature.analyze(f, jnp.zeros(2)).kind
      'saddle'
    """
    check_choice("method", method, METHODS)
    for name, value in (("grad_tol", grad_tol), ("eig_tol", eig_tol)):
        _check_absolute_tolerance(name, value)
    max_dense = check_count(max_dense, "max_dense", fix="E.g. max_dense=2048.")
    k = check_count(k, "k", fix="E.g. k=3 eigenvalues at each end.")
    check_tolerance("tol", tol)
    check_key(key, fix=" (or None)")
    if learning_rate is not None and (
        isinstance(learning_rate, bool | str)
        or not np.isscalar(learning_rate)
        or not learning_rate > 0
    ):
        raise ValueError(
            f"`learning_rate` must be a number > 0 (or None for 1 / lambda_max), got "
            f"{learning_rate!r}."
        )
    op = as_operator(loss_fn, params, data, batch_size)
    size = op.size
    if method == "auto":
        method = "dense" if size <= max_dense else "lanczos"
    if method == "lanczos" and size >= 2 and 2 * k > size:
        raise ValueError(
            f"`k` = {k} asks for {2 * k} eigenvalues ({k} at each end) of a {size}-parameter "
            f"Hessian; pass k <= {size // 2}, or method='dense' for all of them."
        )
    loss, grad_norm = (float(x) for x in _loss_and_grad_norm(op))
    if not (math.isfinite(loss) and math.isfinite(grad_norm)):
        return _nonfinite(loss, grad_norm, method, size, grad_tol, learning_rate, throw)

    if method == "dense":
        values = np.asarray(_eigvalsh(op.dense(max_bytes=max_bytes)), dtype=np.float64)
        values = np.sort(values)[::-1]
        converged, num_matvecs = True, size
    else:
        kk = k if size >= 2 else 1
        which = "both" if size >= 2 else "largest"
        eig = eigenvalues(op, k=kk, which=which, tol=tol, key=key, throw=throw)
        values = np.sort(np.asarray(eig.values, dtype=np.float64))[::-1]
        converged, num_matvecs = bool(np.all(eig.converged)), int(eig.num_matvecs)

    if not np.all(np.isfinite(values)):
        return _nonfinite(loss, grad_norm, method, size, grad_tol, learning_rate, throw)
    lam_max, lam_min = float(values[0]), float(values[-1])
    scale = float(np.max(np.abs(values)))
    zero_tol = eig_tol * scale
    kind = classify(grad_norm, lam_max, lam_min, grad_tol, zero_tol)
    definite = lam_min > zero_tol or lam_max < -zero_tol
    condition = lam_max / lam_min if lam_min > zero_tol else math.nan
    counts = None
    if method == "dense":
        nonzero = np.abs(values)[np.abs(values) > zero_tol]
        ratio = float(nonzero.max() / nonzero.min()) if nonzero.size else math.nan
        counts = {
            "positive": int(np.sum(values > zero_tol)),
            "negative": int(np.sum(values < -zero_tol)),
            "zero": int(np.sum(np.abs(values) <= zero_tol)),
        }
    else:
        ratio = scale / float(np.min(np.abs(values))) if definite else math.nan
    optimal_lr = _inv(lam_max)
    minimax_lr = 2.0 / (lam_max + lam_min) if lam_min > zero_tol else math.nan
    lr = optimal_lr if learning_rate is None else float(learning_rate)
    if math.isinf(lr):
        gd_rate = math.inf if lam_min < 0 else 1.0
    else:
        gd_rate = max(abs(1 - lr * lam_min), abs(1 - lr * lam_max))
    return CurvatureReport(
        loss=loss,
        grad_norm=grad_norm,
        eigenvalues=values,
        lambda_max=lam_max,
        lambda_min=lam_min,
        condition_number=condition,
        condition_number_nonzero=ratio,
        kind=kind,
        counts=counts,
        max_stable_lr=2 * optimal_lr,
        optimal_lr=optimal_lr,
        learning_rate=lr,
        gd_rate=gd_rate,
        method=method,
        size=size,
        converged=converged,
        num_matvecs=num_matvecs,
        grad_tol=float(grad_tol),
        zero_tol=zero_tol,
        curvature=op.kind,
        minimax_lr=minimax_lr,
    )
