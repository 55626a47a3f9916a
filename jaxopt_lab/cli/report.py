"""The demo's outputs: ``report.json``, ``report.md``, the sweep figure and the terminal summary.

Everything here reads the JSON-ready dict built by :func:`jaxopt_lab.cli.demo.run`, so the
terminal, the Markdown and the JSON always show the same numbers.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import platform
import textwrap
from pathlib import Path
from typing import Any

import jax
import numpy as np
from matplotlib.figure import Figure

from jaxopt_lab import plot
from jaxopt_lab.cli import registry

WIDTH = 100  # terminal summary width


def describe(setting: dict) -> str:
    """``"SGD + momentum 0.9, lr 0.1"``, ``"SGD, lr 0.3"`` or ``"Adam, lr 0.003"``."""
    return f"{_name(setting)}, lr {setting['learning_rate']:g}"


def _name(setting: dict) -> str:
    """The optimizer's display name with its coefficient: plain SGD when momentum is 0."""
    entry = registry.get(setting["optimizer"])
    if entry.momentum_key is None or setting.get("momentum") is None:
        return entry.display
    return entry.label({entry.momentum_key: setting["momentum"]})


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _num(x: Any, fmt: str = ".3g") -> str:
    return "-" if x is None else format(x, fmt)


def settings_table(settings: list[dict], best: dict | None = None) -> str:
    """One line per setting: mean final validation loss and accuracy over seeds."""
    head = (
        f"{'optimizer':<15} {'lr':>7} {'momentum':>8} {'val loss (mean +- std)':>23} "
        f"{'val acc':>8} {'diverged':>9}"
    )
    lines = [head, "-" * len(head)]
    for s in settings:
        mark = (
            "  <- best"
            if best is not None
            and all(s[k] == best[k] for k in ("optimizer", "learning_rate", "momentum"))
            else ""
        )
        loss = (
            "-"
            if s["final_val_loss_mean"] is None
            else f"{s['final_val_loss_mean']:.4f} +- {s['final_val_loss_std']:.4f}"
        )
        acc = "-" if s["val_accuracy_mean"] is None else f"{100 * s['val_accuracy_mean']:.1f}%"
        lines.append(
            f"{_name(s):<15} {s['learning_rate']:>7g} "
            f"{_num(s['momentum'], 'g'):>8} {loss:>23} {acc:>8} "
            f"{s['num_diverged']:>5}/{s['seeds']:<3}{mark}"
        )
    return "\n".join(lines)


def sweep_figure(results: dict, *, on: str = "digits") -> Figure:
    """The final loss (validation when there is one) against the learning rate, one panel
    per optimizer."""
    fig = Figure(figsize=(6.0 * len(results), 4.5), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, (name, result) in zip(axes, results.items(), strict=True):
        metric = "final_val_loss" if "val_loss" in result.curves else "final_train_loss"
        title = f"{registry.get(name).display} on {on}"
        plot.sweep_results(result, metric=metric, ax=ax, title=title)
    return fig


def versions() -> dict[str, str]:
    """Versions of the packages the numbers depend on, and the device."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("jaxopt_lab", "jax", "jaxlib", "flax", "optax", "matfree", "numpy"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "not installed"
    device = jax.devices()[0]
    out["device"] = f"{device.platform}: {device.device_kind} x {jax.device_count()}"
    return out


# --- the terminal summary ----------------------------------------------------------------


def _rows(result: dict, out: Path) -> list[tuple[str, str]]:
    sw, best, re_, sh, cu = (
        result[k] for k in ("sweep", "best", "retrained", "sharpness", "curvature")
    )
    advice = cu["learning_rate_advice"]
    lrs = ", ".join(f"{x:g}" for x in sw["learning_rates"])
    moms = ", ".join(f"{x:g}" for x in sw["momenta"])
    dens = cu["density"]
    top = ", ".join(f"{v:.4g}" for v in cu["top_eigenvalues"])
    kind = cu["kind"]
    if kind == "not_critical":
        kind += f" (grad norm {cu['grad_norm']:.2g} > {cu['grad_tol']:.0e})"
    condition = (
        f"{cu['condition_number']:.4g}"
        if cu["condition_number"] is not None
        else "undefined (H is not positive definite)"
    )
    findings = (
        "; ".join(f"{f['problem']} ({f['level']})" for f in result["findings"])
        or "no problem found"
    )
    stages = ", ".join(f"{k} {v:.0f}" for k, v in result["elapsed_seconds"]["stages"].items())
    return [
        (
            "sweep",
            f"{sw['num_runs']} runs in {len(sw['optimizers'])} vmapped sweeps, "
            f"{sw['steps']} steps each, batch {sw['batch_size']}: lr in {{{lrs}}} x "
            f"{{SGD with momentum {moms}; Adam}} x {sw['seeds']} seeds; "
            f"{sw['num_diverged']} diverged (flagged, frozen)",
        ),
        (
            "best setting",
            f"{describe(best)}: val loss {best['final_val_loss_mean']:.4f} +- "
            f"{best['final_val_loss_std']:.4f} over {best['seeds']} seeds, val accuracy "
            f"{100 * best['val_accuracy_mean']:.1f}%",
        ),
        (
            "retrained",
            f"seed 0 with sharpness tracking: val loss {_num(re_['final_val_loss'], '.4f')} "
            f"(the sweep's run: {_num(re_['sweep_final_val_loss'], '.4f')}), val accuracy "
            f"{100 * re_['val_accuracy']:.1f}%, train accuracy {100 * re_['train_accuracy']:.1f}%",
        ),
        (
            "sharpness",
            f"{_quantity(sh)} on {sh['examples']} training examples: {sh['initial']:.3g} at "
            f"step {sh['initial_step']}, "
            f"max {sh['max']:.3g} at step "
            f"{sh['max_step']}, {sh['final']:.3g} at the end; bound {sh['bound']:.3g} = "
            f"{sh['bound_is']}",
        ),
        (
            "Hessian",
            f"D = {cu['num_params']:,}, {cu['method']}, {cu['num_matvecs']} HVPs, "
            f"converged = {cu['converged']}",
        ),
        ("  top eigenvalues", top),
        ("  lambda_min", f"{cu['lambda_min']:.4g}"),
        ("  condition number", condition),
        ("  kind", kind),
        (
            "  spectral density",
            f"{100 * dens['mass_near_zero']:.0f}% of the mass within 1% of lambda_max of zero, "
            f"{100 * dens['mass_negative']:.0f}% below -0.001 lambda_max "
            f"({dens['num_probes']} probes x {dens['num_nodes']} nodes)",
        ),
        ("lr advice", advice["text"]),
        ("diagnosis", findings),
        (
            "output",
            f"{out}/: report.md, report.json, {len(result['figures'])} figures "
            f"({', '.join(result['figures'].values())})",
        ),
        ("elapsed", f"{result['elapsed_seconds']['total']:.0f} s ({stages})"),
    ]


def _quantity(sh: dict) -> str:
    if sh.get("quantity") == "preconditioned_sharpness":
        return "preconditioned sharpness lambda_max(P^-1 H)"
    return "lambda_max"


def summary(result: dict, out: Path) -> str:
    """The two-column summary table printed at the end of the demo."""
    rows = _rows(result, out)
    key_width = max(len(k) for k, _ in rows) + 2
    title = "jaxopt-lab demo: summary" + (" (--quick)" if result["quick"] else "")
    lines = [title, "=" * WIDTH]
    for key, value in rows:
        wrapped = textwrap.wrap(value, WIDTH - key_width) or [""]
        lines.append(f"{key:<{key_width}}{wrapped[0]}")
        lines += [" " * key_width + w for w in wrapped[1:]]
    lines.append("=" * WIDTH)
    return "\n".join(lines)


# --- the files ------------------------------------------------------------------------------


def _markdown(result: dict) -> str:
    sw, best, re_, sh, cu = (
        result[k] for k in ("sweep", "best", "retrained", "sharpness", "curvature")
    )
    figs = result["figures"]
    md = [
        "# jaxopt-lab demo report" + (" (--quick)" if result["quick"] else ""),
        "",
        f"A Flax NNX MLP ({result['model']['kind']}, {result['model']['num_params']:,} "
        f"parameters) on the {result['model']['data']}. Made by "
        f"`jaxopt-lab demo` in {result['elapsed_seconds']['total']:.0f} s.",
        "",
        "## 1. Update rules on the lectures' landscapes",
        "",
        "Every rule from a common start; steps until the loss is within 1e-6 of the minimum.",
        "",
        *[f"![{name}]({file})" for name, file in figs.items() if name.startswith("race_")],
        "",
        "| optimizer | landscape | lr | steps to 1e-6 | final loss |",
        "|---|---|---:|---:|---:|",
    ]
    for r in result["race"]:
        steps = "did not" if r["steps_to_target"] is None else r["steps_to_target"]
        md.append(
            f"| {r['display']} | {r['landscape']} | {r['learning_rate']:g} | {steps} | "
            f"{_num(r['final_loss'])} |"
        )
    md += [
        "",
        "## 2. Learning-rate sweep",
        "",
        f"{_runs(sw['num_runs'])} ({sw['steps']} steps, batch {sw['batch_size']}, "
        f"{sw['seeds']} seeds per setting), each sweep one vmapped program (`jol.sweep`). "
        f"{_runs(sw['num_diverged'])} diverged (loss above 10x its initial value, or "
        "non-finite): they are frozen and flagged, the others are unaffected.",
        "",
        f"![sweep]({figs['sweep']})",
        "",
        "| optimizer | lr | momentum | final val loss (mean +- std) | val accuracy | diverged |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in sw["settings"]:
        loss = (
            "-"
            if s["final_val_loss_mean"] is None
            else f"{s['final_val_loss_mean']:.4f} +- {s['final_val_loss_std']:.4f}"
        )
        acc = "-" if s["val_accuracy_mean"] is None else f"{100 * s['val_accuracy_mean']:.1f}%"
        is_best = all(s[k] == best[k] for k in ("optimizer", "learning_rate", "momentum"))
        name = _name(s)
        md.append(
            f"| {'**' + name + '**' if is_best else name} | {s['learning_rate']:g} | "
            f"{_num(s['momentum'], 'g')} | {loss} | {acc} | {s['num_diverged']}/{s['seeds']} |"
        )
    md += [
        "",
        f"**Best setting** by mean final validation loss: {describe(best)}.",
        "",
        "## 3. Retrained with sharpness tracking",
        "",
        f"Seed 0 of the best setting again (`jol.train`, the same keys as the sweep), with "
        f"`jol.curvature.sharpness_callback` every {sh['every']} steps: final validation loss "
        f"{_num(re_['final_val_loss'], '.4f')} (the sweep's run: "
        f"{_num(re_['sweep_final_val_loss'], '.4f')}), validation accuracy "
        f"{100 * re_['val_accuracy']:.1f}%, training accuracy "
        f"{100 * re_['train_accuracy']:.1f}%.",
        "",
        f"![training curves]({figs['training_curves']})",
        "",
        f"{_quantity(sh).capitalize()} (on the first {sh['examples']} training examples): "
        f"{sh['initial']:.4g} at step {sh['initial_step']}, at most {sh['max']:.4g} (step "
        f"{sh['max_step']}), {sh['final']:.4g} at the end, against the bound "
        f"{sh['bound']:.4g} = {sh['bound_is']}; above it in {sh['evaluations_above_bound']} "
        f"of {sh['evaluations']} evaluations.",
        "",
        f"![sharpness]({figs['sharpness']})",
        "",
        "## 4. The trained net's Hessian",
        "",
        f"`jol.curvature.analyze` ({cu['method']}, {cu['num_matvecs']} Hessian-vector "
        f"products, converged = {cu['converged']}) on all training examples:",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| loss | {cu['loss']:.4g} |",
        f"| gradient norm | {cu['grad_norm']:.3g} |",
        f"| top eigenvalues | {', '.join(f'{v:.4g}' for v in cu['top_eigenvalues'])} |",
        f"| bottom eigenvalues | {', '.join(f'{v:.4g}' for v in cu['bottom_eigenvalues'])} |",
        f"| lambda_max | {cu['lambda_max']:.4g} |",
        f"| lambda_min | {cu['lambda_min']:.4g} |",
        f"| condition number | {_num(cu['condition_number'], '.4g')} |",
        f"| kind | {cu['kind']} (critical when the gradient norm is below {cu['grad_tol']:.0e}) |",
        f"| 2 / lambda_max | {cu['learning_rate_advice']['max_stable_lr_gd']:.4g} |",
        f"| learning rate used | {cu['learning_rate_advice']['learning_rate']:.4g} |",
        "",
        f"**Learning-rate advice.** {cu['learning_rate_advice']['text']}",
        "",
        f"Spectral density by stochastic Lanczos quadrature ({cu['density']['num_probes']} "
        f"probes x {cu['density']['num_nodes']} nodes): "
        f"{100 * cu['density']['mass_near_zero']:.0f}% of the mass lies within 1% of "
        f"lambda_max of zero, {100 * cu['density']['mass_negative']:.0f}% below -0.001 "
        "lambda_max; "
        f"the few large outliers set the stability bound.",
        "",
        f"![spectral density]({figs['spectral_density']})",
        "",
        "## 5. Diagnosis of the training curve",
        "",
    ]
    if result["findings"]:
        for f in result["findings"]:
            md.append(
                f"- **{f['problem']}** ({f['level']} confidence, {f['confidence']:.2f}): "
                f"{f['summary']}. *Workaround:* {f['workaround']} ({f['reference']})."
            )
    else:
        md.append("No problem found (`jol.diagnostics.diagnose`): a healthy curve.")
    v = result["versions"]
    md += [
        "",
        "## Versions",
        "",
        ", ".join(f"{k} {val}" for k, val in v.items()),
        "",
        "Stages (s): "
        + ", ".join(f"{k} {val:.1f}" for k, val in result["elapsed_seconds"]["stages"].items()),
        "",
    ]
    return "\n".join(md)


def plain(x: Any) -> Any:
    """A NumPy or JAX scalar as a Python number; float32 by its shortest repr (0.9, not
    0.8999...)."""
    if getattr(x, "shape", None) == () and not isinstance(x, np.generic):
        x = np.asarray(x)[()]
    if isinstance(x, np.floating):
        return float(str(x))
    return x.item() if isinstance(x, np.generic) else x


def clean(obj: Any) -> Any:
    """``obj`` with NumPy scalars as Python numbers and NaN or infinities as None: the one
    way every report of the command makes numbers JSON-safe."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    obj = plain(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write(out: Path, result: dict) -> None:
    """Writes ``report.json`` (strict JSON: NaN and infinities as null) and ``report.md``."""
    text = json.dumps(clean(result), indent=2, allow_nan=False)
    (out / "report.json").write_text(text + "\n")
    (out / "report.md").write_text(_markdown(result))
