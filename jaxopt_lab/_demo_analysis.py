"""What the demo's numbers mean: stability bounds, sharpness, spectrum, curve diagnosis.

Pure functions from the results of training and of ``jol.curvature`` to JSON-ready
dicts (and ``jol.diagnostics`` findings), used by :mod:`jaxopt_lab._demo` and the
``hessian --model demo`` command. ``best`` is a setting: a dict with ``optimizer``
(``"momentum"`` or ``"adam"``), ``learning_rate`` and ``momentum`` (None for Adam).
"""

from __future__ import annotations

import math

import numpy as np

from jaxopt_lab import curvature, diagnostics


def _finite(x) -> float | None:
    """A JSON-safe float: None for NaN and infinities."""
    x = float(x)
    return x if math.isfinite(x) else None


def effective_rate(best: dict) -> float:
    """The rate whose 2/rate is the gradient-descent stability bound of the optimizer.

    Heavy-ball momentum :math:`p \\leftarrow \\beta p - \\alpha g` on a quadratic is stable
    for :math:`\\alpha\\lambda < 2(1 + \\beta)`, so its bound is :math:`2/(\\alpha/(1+\\beta))`;
    plain SGD is :math:`\\beta = 0`. Adam's bound is on the preconditioned Hessian, so the
    rate itself is used, as a reference only.
    """
    lr = best["learning_rate"]
    return lr / (1.0 + best["momentum"]) if best["optimizer"] == "momentum" else lr


def sharpness_summary(history: dict, best: dict, examples: int) -> dict:
    """Sharpness over training next to the stability bound."""
    lam = np.asarray(history["sharpness"], np.float64)
    ok = np.isfinite(lam)
    steps = np.asarray(history["step"])[ok]
    lam = lam[ok]
    bound = float(np.asarray(history["2/learning_rate"], np.float64)[ok][0])
    converged = np.asarray(history["sharpness_converged"], np.float64)[ok]
    top = int(np.argmax(lam))
    if best["optimizer"] == "adam":
        bound_is = "2 / learning_rate (reference only: Adam's bound is on the preconditioned H)"
    elif best["momentum"]:
        bound_is = "2 (1 + momentum) / learning_rate (heavy-ball stability bound)"
    else:
        bound_is = "2 / learning_rate (gradient-descent stability bound)"
    return {
        "examples": examples,
        "evaluations": int(lam.size),
        "every": int(steps[1] - steps[0]) if lam.size > 1 else None,
        "initial": float(lam[0]),
        "max": float(lam[top]),
        "max_step": int(steps[top]),
        "final": float(lam[-1]),
        "bound": bound,
        "bound_is": bound_is,
        "max_over_bound": float(lam[top] / bound),
        "evaluations_above_bound": int(np.sum(lam > bound)),
        "converged_fraction": float(converged.mean()),
    }


def learning_rate_advice(report: curvature.CurvatureReport, best: dict) -> dict:
    """2 / lambda_max against the rate used, with what it means for this optimizer."""
    lam = report.lambda_max
    lr = best["learning_rate"]
    gd_bound = 2.0 / lam if lam > 0 else math.inf
    out = {
        "lambda_max": lam,
        "learning_rate": lr,
        "max_stable_lr_gd": gd_bound,
        "optimal_lr_gd": report.optimal_lr,
        "lr_times_lambda_max": lr * lam,
    }
    if best["optimizer"] == "adam":
        out["bound"] = None
        out["text"] = (
            f"Adam divides each coordinate by its RMS gradient, so 2/lambda_max = "
            f"{gd_bound:.3g} bounds plain gradient descent, not Adam's learning rate "
            f"({lr:.3g}); Adam's own bound is on the preconditioned Hessian (Cohen et al. "
            f"2022). At this point plain gradient descent would be stable up to "
            f"{gd_bound:.3g}, with the 'optimal' step 1/lambda_max = {report.optimal_lr:.3g}."
        )
        return out
    beta = best["momentum"] or 0.0
    bound = 2.0 * (1.0 + beta) / lam if lam > 0 else math.inf
    ratio = lr / bound
    if ratio < 0.25:
        verdict = f"well inside it (stable at this point up to about {1 / ratio:.3g}x the rate)"
    elif ratio <= 1.0:
        verdict = "close to the edge of stability"
    else:
        verdict = (
            "beyond it: the top direction is unstable on the local quadratic (the run "
            "survives at the edge of stability, or on minibatch noise)"
        )
    if beta == 0:
        rule = f"gradient descent is stable for lr < 2/lambda_max = {gd_bound:.3g}"
    else:
        rule = (
            f"2/lambda_max = {gd_bound:.3g}; with momentum {beta:g} gradient descent is "
            f"stable for lr < 2(1 + {beta:g})/lambda_max = {bound:.3g}"
        )
    out["bound"] = bound
    out["text"] = f"{rule}. The rate used, {lr:.3g}, is {ratio:.2g} of that bound: {verdict}."
    return out


def spectrum_summary(report: curvature.CurvatureReport, k: int, density) -> dict:
    """The analysis as JSON-ready numbers, with what the density says about the bulk."""
    values = [float(v) for v in report.eigenvalues]
    nodes = np.asarray(density.nodes, np.float64).reshape(-1)
    weights = np.asarray(density.weights, np.float64).reshape(-1)
    weights = weights / weights.sum()
    scale = max(abs(report.lambda_max), abs(report.lambda_min))
    return {
        "method": report.method,
        "num_params": report.size,
        "loss": report.loss,
        "grad_norm": report.grad_norm,
        "top_eigenvalues": values[:k],
        "bottom_eigenvalues": values[-k:],
        "lambda_max": report.lambda_max,
        "lambda_min": report.lambda_min,
        "condition_number": _finite(report.condition_number),
        "kind": report.kind,
        "grad_tol": report.grad_tol,
        "converged": report.converged,
        "num_matvecs": report.num_matvecs,
        "density": {
            "num_probes": int(np.asarray(density.nodes).shape[0]),
            "num_nodes": int(np.asarray(density.nodes).shape[-1]),
            "mass_near_zero": float(weights[np.abs(nodes) <= 0.01 * scale].sum()),
            "mass_negative": float(weights[nodes < -1e-3 * scale].sum()),
            "trace_estimate": float(np.sum(weights * nodes) * report.size),
        },
    }


def diagnose(history: dict, best: dict) -> tuple[diagnostics.Finding, ...]:
    """``jol.diagnostics.diagnose`` with the bound that applies to the optimizer.

    The sharpness history carries the heavy-ball bound for SGD with momentum; for Adam the
    gradient-descent bound does not apply, so the sharpness columns are left out.
    """
    if best["optimizer"] == "adam":
        history = {k: v for k, v in history.items() if k not in ("sharpness", "2/learning_rate")}
    return diagnostics.diagnose(
        history,
        learning_rate=effective_rate(best),
        gradient_descent=best["optimizer"] == "momentum" and not best["momentum"],
    )
