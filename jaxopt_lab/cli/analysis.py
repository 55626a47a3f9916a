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
    """The rate whose 2/rate is the optimizer's stability bound on the raw sharpness.

    Heavy-ball momentum :math:`p \\leftarrow \\beta p - \\alpha g` on a quadratic is stable
    for :math:`\\alpha\\lambda < 2(1 + \\beta)`, so its bound is :math:`2/(\\alpha/(1+\\beta))`;
    plain SGD is :math:`\\beta = 0` (``jol.curvature.stability_threshold`` holds every
    rule's bound). Adaptive rules bound the preconditioned sharpness instead, and rules
    without a bound have none, so there the rate itself is used, as a reference only.
    """
    entry, c = _entry_and_coefficient(best)
    lr = best["learning_rate"]
    bound = entry.threshold(lr, c)
    if bound is None or entry.preconditioned:
        return lr
    return 2.0 / bound


def _bound_is(entry: registry.Entry, c: float | None) -> str:
    if entry.preconditioned:
        return (
            f"{entry.stability_formula} ({entry.display}'s threshold on the preconditioned "
            "sharpness lambda_max(P^-1 H), Cohen et al. 2022)"
        )
    if entry.threshold(1.0, c) is None:
        return f"2 / learning_rate (reference only: {entry.display} has no such bound)"
    if entry.heavy_ball and c:
        return "2 (1 + momentum) / learning_rate (heavy-ball stability bound)"
    if entry.heavy_ball:
        return "2 / learning_rate (gradient-descent stability bound)"
    return f"{entry.stability_formula} ({entry.display}'s stability bound)"


def sharpness_summary(history: dict, best: dict, examples: int) -> dict:
    """The sharpness the optimizer's threshold bounds, over training, next to that threshold:
    the preconditioned sharpness for adaptive rules (``sharpness_callback(...,
    preconditioned=True)``), the raw one otherwise."""
    entry, c = _entry_and_coefficient(best)
    key = "sharpness"
    if entry.preconditioned and "preconditioned_sharpness" in history:
        key = "preconditioned_sharpness"
    bound_key = "stability_threshold" if "stability_threshold" in history else "2/learning_rate"
    lam = np.asarray(history[key], np.float64)
    ok = np.isfinite(lam)
    steps = np.asarray(history["step"])[ok]
    lam = lam[ok]
    bound = float(np.asarray(history[bound_key], np.float64)[ok][0])
    converged = np.asarray(history[f"{key}_converged"], np.float64)[ok]
    top = int(np.argmax(lam))
    return {
        "quantity": key,
        "examples": examples,
        "evaluations": int(lam.size),
        "every": int(steps[1] - steps[0]) if lam.size > 1 else None,
        "initial": float(lam[0]),
        "initial_step": int(steps[0]),
        "max": float(lam[top]),
        "max_step": int(steps[top]),
        "final": float(lam[-1]),
        "bound": bound,
        "bound_is": _bound_is(entry, c),
        "max_over_bound": float(lam[top] / bound),
        "evaluations_above_bound": int(np.sum(lam > bound)),
        "converged_fraction": float(converged.mean()),
    }


def _verdict(ratio: float) -> str:
    if ratio < 0.25:
        return f"well inside it (stable at this point up to about {1 / ratio:.3g}x the rate)"
    if ratio <= 1.0:
        return "close to the edge of stability"
    return (
        "beyond it: the top direction is unstable on the local quadratic (the run "
        "survives at the edge of stability, or on minibatch noise)"
    )


def learning_rate_advice(
    report: curvature.CurvatureReport, best: dict, preconditioned: float | None = None
) -> dict:
    """2 / lambda_max against the rate used, with what it means for this optimizer.

    ``preconditioned``: :math:`\\lambda_{\\max}(P^{-1}H)` at the same point, for an adaptive
    rule, which is then judged against its own threshold.
    """
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
    threshold = entry.threshold(lr, c)
    if entry.preconditioned and preconditioned is not None and threshold is not None:
        ratio = preconditioned / threshold
        out.update(
            preconditioned_sharpness=preconditioned,
            threshold=threshold,
            bound=lr / ratio,
        )
        out["text"] = (
            f"{entry.display} divides each coordinate by its RMS gradient, so what bounds its "
            f"rate is the preconditioned sharpness lambda_max(P^-1 H) = {preconditioned:.4g} "
            f"here, against its threshold {entry.stability_formula} = {threshold:.4g} at lr "
            f"{lr:.3g} (Cohen et al. 2022): {ratio:.2g} of it, {_verdict(ratio)}. (The raw "
            f"2/lambda_max = {gd_bound:.3g} bounds plain gradient descent only.)"
        )
        return out
    if entry.preconditioned or threshold is None:
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
    factor = entry.factor(beta)  # stable for lr * lambda_max < factor
    bound = factor / lam if lam > 0 else math.inf
    ratio = lr / bound
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
    out["text"] = (
        f"{rule}. The rate used, {lr:.3g}, is {ratio:.2g} of that bound: {_verdict(ratio)}."
    )
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
    """``jol.diagnostics.diagnose`` with the threshold that belongs to the optimizer.

    The sharpness history carries the optimizer's own threshold (``stability_threshold``)
    and, for adaptive rules, the preconditioned sharpness it bounds; where the rule has no
    threshold, the sharpness columns are left out.
    """
    entry, c = _entry_and_coefficient(best)
    if entry.threshold(1.0, c) is None or (
        entry.preconditioned and "preconditioned_sharpness" not in history
    ):  # no threshold that the recorded sharpness answers to
        drop = ("sharpness", "2/learning_rate", "stability_threshold", "preconditioned_sharpness")
        history = {k: v for k, v in history.items() if k not in drop}
    return diagnostics.diagnose(
        history,
        learning_rate=effective_rate(best),
        gradient_descent=entry.heavy_ball and not c,
    )
