"""What the demo's numbers mean: stability bounds, sharpness, spectrum, curve diagnosis.

Pure functions from the results of training and of ``jol.curvature`` to JSON-ready
dicts (and ``jol.diagnostics`` findings), used by :mod:`jaxopt_lab.cli.demo` and the
``hessian`` command. ``best`` is a setting: a dict with ``optimizer`` (a name of
:mod:`jaxopt_lab.cli.registry`), ``learning_rate`` and ``momentum`` (the momentum-like
coefficient, or None for the optimizer's default). What each optimizer's stability
bound is comes from the registry.
"""

from __future__ import annotations

import math

import numpy as np

from jaxopt_lab import curvature, diagnostics
from jaxopt_lab.cli import registry
from jaxopt_lab.cli.report import clean


def _entry_and_coefficient(best: dict) -> tuple[registry.Entry, float | None]:
    entry = registry.get(best["optimizer"])
    c = best.get("momentum")
    return entry, (entry.default_coefficient if c is None else float(c))


def effective_rate(best: dict) -> float:
    """The rate whose 2/rate is the optimizer's stability bound on the sharpness.

    Heavy-ball momentum :math:`p \\leftarrow \\beta p - \\alpha g` on a quadratic is stable
    for :math:`\\alpha\\lambda < 2(1 + \\beta)`, so its bound is :math:`2/(\\alpha/(1+\\beta))`;
    plain SGD is :math:`\\beta = 0` (the registry holds every rule's bound). Adam's bound is
    on the preconditioned Hessian, and rules without a bound have none, so there the rate
    itself is used, as a reference only.
    """
    entry, c = _entry_and_coefficient(best)
    lr = best["learning_rate"]
    bound = entry.threshold(lr, c)
    if bound is None or entry.preconditioned:
        return lr
    return 2.0 / bound


def sharpness_summary(history: dict, best: dict, examples: int) -> dict:
    """Sharpness over training next to the stability bound."""
    lam = np.asarray(history["sharpness"], np.float64)
    ok = np.isfinite(lam)
    steps = np.asarray(history["step"])[ok]
    lam = lam[ok]
    bound = float(np.asarray(history["2/learning_rate"], np.float64)[ok][0])
    converged = np.asarray(history["sharpness_converged"], np.float64)[ok]
    top = int(np.argmax(lam))
    entry, c = _entry_and_coefficient(best)
    if entry.preconditioned:
        bound_is = (
            f"2 / learning_rate (reference only: {entry.display}'s bound "
            f"{entry.stability_formula} is on the preconditioned H)"
        )
    elif entry.stability is None:
        bound_is = f"2 / learning_rate (reference only: {entry.display} has no such bound)"
    elif entry.heavy_ball and c:
        bound_is = "2 (1 + momentum) / learning_rate (heavy-ball stability bound)"
    elif entry.heavy_ball:
        bound_is = "2 / learning_rate (gradient-descent stability bound)"
    else:
        bound_is = f"{entry.stability_formula} ({entry.display}'s stability bound)"
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
    entry, c = _entry_and_coefficient(best)
    if entry.preconditioned or entry.stability is None:
        out["bound"] = None
        why = (
            f"{entry.display} divides each coordinate by its RMS gradient"
            if entry.preconditioned or entry.adaptive
            else f"{entry.display}'s step does not scale with the gradient"
        )
        own = (
            f"; {entry.display}'s own bound, {entry.stability_formula}, is on the "
            "preconditioned Hessian (Cohen et al. 2022)"
            if entry.preconditioned
            else ""
        )
        out["text"] = (
            f"{why}, so 2/lambda_max = {gd_bound:.3g} bounds plain gradient descent, not "
            f"{entry.display}'s learning rate ({lr:.3g}){own}. At this point plain gradient "
            f"descent would be stable up to {gd_bound:.3g}, with the 'optimal' step "
            f"1/lambda_max = {report.optimal_lr:.3g}."
        )
        return out
    beta = c or 0.0
    factor = entry.stability(beta)  # stable for lr * lambda_max < factor
    bound = factor / lam if lam > 0 else math.inf
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
    if entry.heavy_ball and beta == 0:
        rule = f"gradient descent is stable for lr < 2/lambda_max = {gd_bound:.3g}"
    elif entry.heavy_ball:
        rule = (
            f"2/lambda_max = {gd_bound:.3g}; with momentum {beta:g} gradient descent is "
            f"stable for lr < 2(1 + {beta:g})/lambda_max = {bound:.3g}"
        )
    else:
        rule = (
            f"2/lambda_max = {gd_bound:.3g}; {entry.label({entry.momentum_key: beta})} is "
            f"stable for lr < {factor:.3g}/lambda_max = {bound:.3g} (the bound "
            f"{entry.stability_formula} on the sharpness)"
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
        "condition_number": clean(float(report.condition_number)),
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

    The sharpness history carries the optimizer's own bound (the registry's); where the
    bound is on the preconditioned Hessian (Adam) or there is none, the raw-sharpness
    columns are left out.
    """
    entry, c = _entry_and_coefficient(best)
    if entry.preconditioned or entry.stability is None:
        history = {k: v for k, v in history.items() if k not in ("sharpness", "2/learning_rate")}
    return diagnostics.diagnose(
        history,
        learning_rate=effective_rate(best),
        gradient_descent=entry.heavy_ball and not c,
    )
