"""``diagnose``: reading a training curve as lectures 000 and 002 teach."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

L000 = "Grosse & Ba, CSC421 lectures 7-8 (optimization), recap table"
L002 = "Congeduti, Optimization, learning rate diagnostics"

PROBLEMS = (
    "instability",
    "oscillations",
    "fluctuations",
    "slow_progress",
    "plateau",
    "overfitting",
)

WORKAROUNDS = {
    "instability": "decrease the learning rate (below 2 / lambda_max for gradient descent)",
    "oscillations": "decrease the learning rate; add momentum",
    "fluctuations": "decay the learning rate (linear or exponential schedule); iterate averaging",
    "slow_progress": "increase the learning rate; add momentum",
    "plateau": (
        "break symmetry with small random initial weights; check for dead or saturated "
        "units (unit_health); momentum or an adaptive method to cross the flat region"
    ),
    "overfitting": (
        "stop early at the best validation step; regularize (weight decay, data "
        "augmentation) or get more data"
    ),
}

REFERENCES = {
    "instability": f"{L002}; {L000}",
    "oscillations": f"{L002}; {L000}",
    "fluctuations": f"{L000}; {L002} (SGD learning rate)",
    "slow_progress": f"{L002}; {L000}",
    "plateau": "Grosse & Ba, CSC421 lectures 7-8 (optimization), saddle points and plateaux",
    "overfitting": "Congeduti, Optimization, training curves",
}


class Finding(NamedTuple):
    """One problem read from a training history."""

    problem: str  # one of PROBLEMS, e.g. "oscillations"
    confidence: float  # in (0, 1); >= 0.8 high, >= 0.5 medium, else low
    evidence: dict[str, float]  # the numbers behind it, by name
    summary: str  # what was seen, with the numbers
    workaround: str  # what the lectures advise
    reference: str  # where the lectures say so

    @property
    def level(self) -> str:
        """``"high"``, ``"medium"`` or ``"low"`` confidence."""
        return "high" if self.confidence >= 0.8 else "medium" if self.confidence >= 0.5 else "low"

    def __str__(self) -> str:
        return (
            f"{self.problem} ({self.level} confidence, {self.confidence:.2f}): {self.summary}\n"
            f"  -> {self.workaround}  [{self.reference}]"
        )


class _Curve(NamedTuple):
    steps: np.ndarray  # (n,) step of each row
    excess: np.ndarray  # (n,) loss minus loss_floor, before any divergence
    grad_norm: np.ndarray | None  # (n,) or None; NaN where unknown
    learning_rate: np.ndarray | None  # (n,) or None
    deterministic: bool | None  # full batch (True), minibatch (False), unknown (None)


def _column(history: Mapping[str, Any], name: str) -> np.ndarray | None:
    if name not in history:
        return None
    return np.asarray(history[name], np.float64).reshape(-1)


def _finding(problem: str, confidence: float, evidence: dict, summary: str) -> Finding:
    evidence = {k: float(v) for k, v in evidence.items()}
    return Finding(
        problem,
        float(np.clip(confidence, 0.05, 0.99)),
        evidence,
        summary,
        WORKAROUNDS[problem],
        REFERENCES[problem],
    )


def _combine(confidences: list[float]) -> float:
    """The strongest signal, raised a little when independent signals agree."""
    return max(confidences) + 0.05 * (len(confidences) - 1)


def _descent_ratio(c: _Curve) -> np.ndarray | None:
    r"""Actual over first-order predicted loss decrease, per logged interval.

    For a step :math:`-\alpha g`, :math:`L(\theta - \alpha g) = L - \alpha\|g\|^2
    + \tfrac{\alpha^2}{2} g^\top H g + \dots`, so the ratio is
    :math:`\rho = 1 - \alpha\lambda_g/2` with :math:`\lambda_g = g^\top H g/\|g\|^2`: the
    trust-region ratio, and an estimate of :math:`\alpha\lambda_g = 2(1 - \rho)`.
    """
    if c.grad_norm is None or c.learning_rate is None or c.deterministic is False:
        return None
    gaps = np.diff(c.steps)
    actual = c.excess[:-1] - c.excess[1:]
    predicted = c.learning_rate[:-1] * c.grad_norm[:-1] ** 2 * gaps
    ok = (
        np.isfinite(actual)
        & np.isfinite(predicted)
        & (predicted > 1e-6 * np.abs(c.excess[:-1]))
        & (c.excess[:-1] > 1e-9 * c.excess[0])
    )
    if ok.sum() < 3:
        return None
    return actual[ok] / predicted[ok]


def diagnose(
    history: Mapping[str, Any],
    *,
    learning_rate: float | None = None,
    gradient_descent: bool = False,
    stochastic: bool | None = None,
    loss_floor: float = 0.0,
) -> tuple[Finding, ...]:
    r"""Reads a training history and names the problems lectures 000 and 002 teach to spot.

    Congeduti's lecture on optimization reads training curves for the learning
    rate: gradient descent with :math:`\alpha = 0.01` makes slow progress, :math:`0.48`
    oscillates, :math:`0.51` is unstable. The slide shows the curves, not the function:
    :math:`L(w) = 2w^2` from :math:`w = 1` (so :math:`\alpha = 1/\lambda = 0.25` is
    optimal) is this project's reconstruction, the quadratic whose curvature :math:`4`
    puts those three rates in those three regimes. The recap table of Grosse & Ba
    (lectures 7-8) gives the workarounds. Each check reads numbers off the
    history (``train_loss`` minus ``loss_floor``, called the excess :math:`E`):

    - **instability** (cost increases): a non-finite or ``diverged`` row; the final loss
      above the initial one while rising; a spike above 3x the best loss so far; with
      gradient descent, the descent ratio :math:`\rho < 0`; with ``sharpness`` in the
      history, :math:`\alpha\lambda_{\max} > 2` (reported against :math:`2/\alpha`).
    - **oscillations** (alternating increases): on a full-batch curve, increases in at
      least 20% of the intervals (alternating ones above all); with gradient descent,
      :math:`0 < \rho \le 0.25`, i.e. :math:`\alpha\lambda_g \ge 1.5`: each step overshoots
      the valley floor along the gradient; with sharpness, :math:`\alpha\lambda_{\max}` in
      [1.5, 2].
    - **fluctuations** (SGD noise around the trend): on a minibatch run, the loss on the
      fixed monitoring subset rises in at least 25% of the intervals of the second half,
      with noise at least twice the trend.
    - **slow progress** (slow, linear training curve): the curve has not bent (the last
      third falls at least half as fast as the first third), or, with gradient descent,
      :math:`\rho \ge 0.9`, i.e. :math:`\alpha\lambda_g \le 0.2`: the step could be five
      times larger before curvature matters.
    - **plateau or saddle**: at least ``max(3, n/10)`` rows with a gradient norm below 1%
      of its largest value (or zero) and a flat loss, while the excess is above 5% of the
      initial one (not a low loss); more certain when the loss later drops.
    - **overfitting**: the (smoothed) validation loss rises at least 2% above its best
      while the training loss keeps falling.

    The descent ratio :math:`\rho` is the actual decrease of the loss between rows over
    the first-order prediction :math:`\alpha\|g\|^2` per step; for an update
    :math:`-\alpha g`, :math:`\rho = 1 - \alpha\lambda_g/2` where :math:`\lambda_g` is the
    curvature along the gradient (the trust-region ratio). It needs ``grad_norm``, the
    learning rate, a deterministic (full-batch) run and ``gradient_descent=True``.

    Args:
      history: a mapping of equal-length arrays, as ``jol.train(...).history``:
        ``train_loss`` (or ``loss``) required; optional ``step``, ``val_loss``,
        ``grad_norm``, ``learning_rate``, ``batch_loss``, ``diverged``, ``nonfinite``,
        ``sharpness`` and ``2/learning_rate`` (``jol.curvature.sharpness_callback``);
        with ``stability_threshold`` the sharpness is judged against the threshold of the
        rule that trained (``(2 + 2 beta) / lr`` with momentum), and with
        ``preconditioned_sharpness`` that one is (Adam: against ``38 / lr``).
      learning_rate: the learning rate, when the history does not log it.
      gradient_descent: the updates were :math:`-\alpha g` (plain SGD/GD, no momentum or
        adaptive scaling): enables the descent ratio and the :math:`2/\alpha` bound as
        evidence on their own.
      stochastic: minibatch (True) or full-batch (False) training; default: inferred,
        minibatch when ``batch_loss`` differs from ``train_loss``.
      loss_floor: a known lower bound of the loss (0 for squared error and cross-entropy);
        "low loss" and ratios are measured above it.

    Returns:
      A tuple of :class:`Finding` s, most certain first; empty for a healthy curve.

    Raises:
      ValueError: ``history`` lacks a loss, or its arrays differ in length.

    Example:
      >>> import numpy as np
      >>> import jaxopt_lab as jol
      >>> w = 1.0 * (1 - 4 * 0.51) ** np.arange(30)     # GD on 2 w^2 at lr 0.51
      >>> history = {"train_loss": 2 * w**2, "grad_norm": np.abs(4 * w)}
      >>> [f.problem for f in jol.diagnostics.diagnose(history, learning_rate=0.51)]
      ['instability']
    """
    if not isinstance(history, Mapping):
        raise TypeError(
            f"`history` must be a mapping of metric -> array, got {type(history).__name__}; "
            "pass `jol.train(...).history`."
        )
    for name, value in (("learning_rate", learning_rate), ("loss_floor", loss_floor)):
        if value is None and name == "learning_rate":
            continue
        if isinstance(value, bool | str) or not np.isscalar(value) or not np.isfinite(value):
            raise ValueError(f"`{name}` must be a finite number, got {value!r}.")
    if learning_rate is not None and not learning_rate > 0:
        raise ValueError(f"`learning_rate` must be > 0, got {learning_rate!r}.")
    loss_key = "train_loss" if "train_loss" in history else "loss" if "loss" in history else None
    if loss_key is None:
        raise ValueError(
            f"`history` needs a `train_loss` (or `loss`) entry; it has {sorted(history)}. "
            "Pass `jol.train(...).history` or a dict of arrays."
        )
    if np.ndim(history[loss_key]) != 1:
        raise ValueError(
            f"`history[{loss_key!r}]` must be one run's curve (1-D), got shape "
            f"{np.shape(history[loss_key])}: diagnose each run of a sweep on its own, e.g. "
            f"[diagnose({{k: v[i] for k, v in result.curves.items()}}) for i in "
            "range(result.num_runs)]."
        )
    loss = _column(history, loss_key)
    n_all = loss.size
    used = (
        "step",
        "val_loss",
        "grad_norm",
        "learning_rate",
        "batch_loss",
        "diverged",
        "nonfinite",
        "sharpness",
        "2/learning_rate",
        "preconditioned_sharpness",
        "stability_threshold",
    )
    for name in (n for n in used if n in history):
        if np.ndim(history[name]) != 1 or np.size(history[name]) != n_all:
            raise ValueError(
                f"`history[{name!r}]` must be 1-D with {n_all} rows like `{loss_key}`, got "
                f"shape {np.shape(history[name])}."
            )
    steps = _column(history, "step")
    steps = np.arange(n_all, dtype=np.float64) if steps is None else steps

    # Rows up to the first non-finite or flagged one.
    bad = ~np.isfinite(loss)
    for flag in ("diverged", "nonfinite"):
        col = _column(history, flag)
        if col is not None:
            bad |= col > 0
    first_bad = int(np.argmax(bad)) if bad.any() else n_all
    n = first_bad
    findings: list[Finding] = []
    if bad.any():
        findings.append(
            _finding(
                "instability",
                1.0,
                {"diverged_at_step": steps[first_bad], "last_finite_loss": loss[max(n - 1, 0)]},
                f"the run diverged at step {steps[first_bad]:.0f} (non-finite or flagged "
                "loss): the cost increases without bound",
            )
        )
    if n < 4:
        return tuple(findings)

    lr_hist = _column(history, "learning_rate")
    if learning_rate is not None:
        lr = np.full(n_all, float(learning_rate))
    elif lr_hist is not None:
        lr = lr_hist
    elif "2/learning_rate" in history:
        lr = 2.0 / _column(history, "2/learning_rate")
    else:
        lr = None
    batch = _column(history, "batch_loss")
    if stochastic is None and batch is not None:
        both = np.isfinite(batch[:n]) & np.isfinite(loss[:n])
        if both.any():
            stochastic = not np.allclose(batch[:n][both], loss[:n][both], rtol=1e-4, atol=0)
    grad_norm = _column(history, "grad_norm")
    curve = _Curve(
        steps=steps[:n],
        excess=loss[:n] - loss_floor,
        grad_norm=None if grad_norm is None else grad_norm[:n],
        learning_rate=None if lr is None else lr[:n],
        deterministic=None if stochastic is None else not stochastic,
    )
    rho = _descent_ratio(curve) if gradient_descent else None
    rho_med = None if rho is None else float(np.median(rho))
    sharp = _sharpness_product(history, lr, n)

    if not bad.any():
        findings += _instability(curve, rho_med, sharp, gradient_descent)
    findings += _oscillations(curve, rho_med, sharp, gradient_descent)
    findings += _fluctuations(curve)
    findings += _slow_progress(curve, rho_med, sharp)
    findings += _plateau(curve)
    findings += _overfitting(history, loss, n)
    return tuple(sorted(findings, key=lambda f: -f.confidence))


def _sharpness_product(history: Mapping[str, Any], lr: np.ndarray | None, n: int):
    """The sharpness against its threshold, medians over the last half of the evaluations.

    With ``stability_threshold`` in the history (``sharpness_callback`` with the rule that
    trains), the sharpness that threshold bounds (``preconditioned_sharpness`` when
    recorded, as for Adam) is compared with it; ``lr_times_sharpness`` is then
    ``2 * sharpness / threshold``, in gradient descent's units (unstable above 2).
    Otherwise ``sharpness`` against ``2 / lr``.
    """
    threshold = _column(history, "stability_threshold")
    if threshold is not None:
        name = "preconditioned_sharpness" if "preconditioned_sharpness" in history else "sharpness"
        sharp = _column(history, name)[:n]
        threshold = threshold[:n]
        ok = np.isfinite(sharp) & np.isfinite(threshold) & (threshold > 0)
        if not ok.any():
            return None
        half = ok.sum() // 2
        sharp, threshold = sharp[ok][half:], threshold[ok][half:]
        out = {
            "lr_times_sharpness": float(np.median(2.0 * sharp / threshold)),
            name: float(np.median(sharp)),
            "stability_threshold": float(np.median(threshold)),
        }
        two_over_lr = _column(history, "2/learning_rate")
        if two_over_lr is not None:
            out["2/learning_rate"] = float(np.median(two_over_lr[:n][ok][half:]))
        return out
    sharp = _column(history, "sharpness")
    if sharp is None or lr is None:
        return None
    sharp, lr = sharp[:n], lr[:n]
    ok = np.isfinite(sharp) & np.isfinite(lr) & (lr > 0)
    if not ok.any():
        return None
    sharp, lr = sharp[ok][ok.sum() // 2 :], lr[ok][ok.sum() // 2 :]
    return {
        "lr_times_sharpness": float(np.median(lr * sharp)),
        "sharpness": float(np.median(sharp)),
        "2/learning_rate": float(np.median(2.0 / lr)),
    }


def _sharp_words(sharp: dict) -> tuple[str, str]:
    """``("sharpness lambda_max = 12.3", "2/lr = 20")`` for a note, whichever pair it is."""
    if "preconditioned_sharpness" in sharp:
        what = (
            f"preconditioned sharpness lambda_max(P^-1 H) = {sharp['preconditioned_sharpness']:.4g}"
        )
    else:
        what = f"sharpness lambda_max = {sharp['sharpness']:.4g}"
    threshold = sharp.get("stability_threshold")
    if threshold is not None and not np.isclose(threshold, sharp.get("2/learning_rate", np.nan)):
        return what, f"the optimizer's stability threshold {threshold:.4g}"
    return what, f"2/lr = {sharp['2/learning_rate']:.4g}"


def _increases(e: np.ndarray) -> tuple[float, float]:
    """Fraction of rising intervals, and of sign changes between consecutive intervals."""
    d = np.diff(e)
    d = d[np.abs(d) > 1e-7 * np.abs(e[:-1]).max()]
    if d.size < 2:
        return 0.0, 0.0
    s = np.sign(d)
    return float(np.mean(s > 0)), float(np.mean(s[1:] != s[:-1]))


def _instability(c: _Curve, rho_med, sharp, gd: bool) -> list[Finding]:
    e = c.excess
    evidence: dict[str, float] = {}
    votes: list[float] = []
    notes: list[str] = []
    third = e[2 * e.size // 3]
    if e[-1] > e[0] and e[-1] > third:
        ratio = e[-1] / e[0] if e[0] > 0 else np.inf
        evidence["final_over_initial_loss"] = ratio
        votes.append(0.95 if ratio > 2 else 0.8)
        notes.append(f"the loss rose to {ratio:.3g}x its initial value and is still rising")
    else:
        best = np.minimum.accumulate(e)
        jump = e[1:] / np.maximum(best[:-1], 1e-300)
        k = int(np.argmax(jump))
        if jump[k] >= 3 and e[k + 1] - best[k] >= 0.1 * e[0]:
            evidence["spike_over_best_loss"] = jump[k]
            evidence["spike_step"] = c.steps[k + 1]
            votes.append(0.6)
            notes.append(f"the loss spiked to {jump[k]:.3g}x its best at step {c.steps[k + 1]:.0f}")
    if gd and rho_med is not None and rho_med < 0:
        evidence["descent_ratio"] = rho_med
        evidence["lr_times_curvature_along_gradient"] = 2 * (1 - rho_med)
        votes.append(0.8)
        notes.append(
            f"each step raises the loss (descent ratio {rho_med:.3g}): "
            f"lr * curvature along the gradient = {2 * (1 - rho_med):.3g} > 2"
        )
    if sharp is not None and sharp["lr_times_sharpness"] > 2:
        evidence.update(sharp)
        votes.append(0.7 if gd else 0.4)
        what, bound = _sharp_words(sharp)
        notes.append(
            f"{what} exceeds {bound} (lr * lambda_max = {sharp['lr_times_sharpness']:.3g}"
            + (" in gradient descent's units)" if bound.startswith("the optimizer") else ")")
        )
    elif sharp is not None and votes:
        evidence.update(sharp)
    if not votes:
        return []
    return [_finding("instability", _combine(votes), evidence, "; ".join(notes))]


def _oscillations(c: _Curve, rho_med, sharp, gd: bool) -> list[Finding]:
    e = c.excess
    evidence: dict[str, float] = {}
    votes: list[float] = []
    notes: list[str] = []
    up, alternation = _increases(e)
    if c.deterministic is not False and up >= 0.2 and not e[-1] > e[0]:
        evidence["fraction_increasing"] = up
        evidence["fraction_alternating"] = alternation
        regular = alternation >= 0.8
        votes.append(0.8 if regular and c.deterministic else 0.6 if c.deterministic else 0.5)
        notes.append(
            f"the loss rises in {100 * up:.0f}% of the intervals"
            + (f", alternating in {100 * alternation:.0f}% of them" if regular else "")
        )
    elif c.deterministic is False and up >= 0.3 and alternation >= 0.9:
        evidence["fraction_increasing"] = up
        evidence["fraction_alternating"] = alternation
        votes.append(0.5)
        notes.append(f"the loss alternates up and down in {100 * alternation:.0f}% of intervals")
    if gd and rho_med is not None and 0 <= rho_med <= 0.25:
        evidence["descent_ratio"] = rho_med
        evidence["lr_times_curvature_along_gradient"] = 2 * (1 - rho_med)
        votes.append(0.8)
        notes.append(
            f"each step achieves only {100 * rho_med:.0f}% of the first-order decrease: "
            f"lr * curvature along the gradient = {2 * (1 - rho_med):.3g} >= 1.5, so the "
            "iterate overshoots the valley floor and bounces"
        )
    if sharp is not None and 1.5 <= sharp["lr_times_sharpness"] <= 2:
        evidence.update(sharp)
        votes.append(0.6 if gd else 0.3)
        what, bound = _sharp_words(sharp)
        notes.append(
            f"lr * lambda_max = {sharp['lr_times_sharpness']:.3g} in [1.5, 2]: the top "
            f"direction flips sign each step ({bound}, {what})"
        )
    if not votes:
        return []
    return [_finding("oscillations", _combine(votes), evidence, "; ".join(notes))]


def _fluctuations(c: _Curve) -> list[Finding]:
    if c.deterministic is not False:
        return []
    e = c.excess[c.excess.size // 2 :]
    if e.size < 6 or np.any(e <= 0):
        return []
    up, _ = _increases(e)
    d = np.diff(np.log(e))
    noise, trend = float(np.std(d)), abs(float(np.mean(d)))
    ratio = noise / max(trend, 1e-12)
    if up < 0.25 or ratio < 2:
        return []
    evidence = {"fraction_increasing": up, "noise_over_trend": ratio, "relative_noise": noise}
    summary = (
        f"in the second half the monitoring loss rises in {100 * up:.0f}% of the intervals; "
        f"its step-to-step noise ({100 * noise:.1f}% of the loss) is {ratio:.3g}x the trend"
    )
    return [_finding("fluctuations", 0.5 + 0.8 * min(up - 0.25, 0.5), evidence, summary)]


def _slow_progress(c: _Curve, rho_med, sharp) -> list[Finding]:
    e = c.excess
    n = e.size
    if e[0] <= 0 or e[-1] <= 1e-6 * e[0]:
        return []
    evidence: dict[str, float] = {}
    votes: list[float] = []
    notes: list[str] = []
    first = e[0] - e[n // 3]
    last = e[2 * n // 3] - e[-1]
    up, _ = _increases(e)
    if first > 0 and last >= 0.5 * first and up < 0.2:
        evidence["last_third_over_first_third_decrease"] = last / first
        evidence["final_over_initial_loss"] = e[-1] / e[0]
        votes.append(0.6)
        notes.append(
            f"the curve is still linear: the last third fell {last / first:.2f}x as much "
            f"as the first third; the loss is at {100 * e[-1] / e[0]:.3g}% of its initial value"
        )
    if rho_med is not None and rho_med >= 0.9:
        evidence["descent_ratio"] = rho_med
        evidence["lr_times_curvature_along_gradient"] = 2 * (1 - rho_med)
        votes.append(0.85)
        notes.append(
            f"each step achieves {100 * rho_med:.0f}% of its first-order decrease: lr * "
            f"curvature along the gradient = {2 * (1 - rho_med):.3g} <= 0.2, so steps "
            "several times larger would still be safe"
        )
    if not votes:
        return []
    ill_conditioned = sharp is not None and sharp["lr_times_sharpness"] >= 1
    if sharp is not None:
        evidence.update(sharp)
    if ill_conditioned:
        notes.append(
            f"but lr * lambda_max = {sharp['lr_times_sharpness']:.3g} already: the "
            "curvature is ill-conditioned, prefer momentum to a larger learning rate"
        )
    finding = _finding("slow_progress", _combine(votes), evidence, "; ".join(notes))
    if ill_conditioned:  # lecture 000: ill-conditioning -> momentum, normalization, Adam
        finding = finding._replace(
            workaround="add momentum (the learning rate is already near 2 / lambda_max); "
            "normalization, Adam or a second-order method"
        )
    return [finding]


def _plateau(c: _Curve) -> list[Finding]:
    if c.grad_norm is None:
        return []
    g, e = c.grad_norm, c.excess
    known = np.isfinite(g)
    if known.sum() < 4 or e[0] <= 0:
        return []
    g_max = float(np.nanmax(g))
    tiny = known & ((g <= 0.01 * g_max) | (g == 0))
    flat = np.zeros_like(tiny)
    flat[:-1] = np.abs(np.diff(e)) <= 1e-3 * np.abs(e[:-1])
    flat[-1] = flat[-2] if e.size > 1 else True
    stuck = tiny & flat & (e > 0.05 * e[0])
    best_len, best_start, run = 0, 0, 0
    for k, s in enumerate(stuck):
        run = run + 1 if s else 0
        if run > best_len:
            best_len, best_start = run, k - run + 1
    if best_len < max(3, e.size // 10):
        return []
    stop = best_start + best_len - 1
    level = float(np.median(e[best_start : stop + 1]))
    later = e[stop + 1 :]
    escaped = later.size > 0 and float(later.min()) <= 0.5 * level
    evidence = {
        "start_step": c.steps[best_start],
        "end_step": c.steps[stop],
        "loss": level,
        "grad_norm": float(np.nanmedian(g[best_start : stop + 1])),
        "max_grad_norm": g_max,
        "loss_over_initial": level / e[0],
    }
    summary = (
        f"from step {c.steps[best_start]:.0f} to {c.steps[stop]:.0f} the gradient norm is "
        f"{evidence['grad_norm']:.3g} (largest {g_max:.3g}) and the loss stays at "
        f"{level:.4g} ({100 * level / e[0]:.3g}% of its initial value)"
        + (", then it drops: a plateau or saddle was crossed" if escaped else "")
    )
    return [_finding("plateau", 0.9 if escaped else 0.6, evidence, summary)]


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return x
    kernel = np.ones(width) / width
    padded = np.concatenate([np.full(width // 2, x[0]), x, np.full(width - 1 - width // 2, x[-1])])
    return np.convolve(padded, kernel, mode="valid")


def _overfitting(history: Mapping[str, Any], loss: np.ndarray, n: int) -> list[Finding]:
    val = _column(history, "val_loss")
    if val is None:
        return []
    val, train = val[:n], loss[:n]
    ok = np.isfinite(val)
    if ok.sum() < 6:
        return []
    steps = _column(history, "step")
    steps = np.arange(loss.size, dtype=np.float64)[:n] if steps is None else steps[:n]
    val, train, steps = val[ok], train[ok], steps[ok]
    width = max(1, val.size // 20)
    v, t = _smooth(val, width), _smooth(train, width)
    best = int(np.argmin(v))
    if best >= v.size - max(2, v.size // 10):
        return []
    rise = (v[-1] - v[best]) / max(abs(v[best]), 1e-12)
    train_drop = (t[best] - t[-1]) / max(abs(t[best]), 1e-12)
    if rise < 0.02 or train_drop < 0.01:
        return []
    evidence = {
        "best_val_step": steps[best],
        "best_val_loss": v[best],
        "final_val_loss": v[-1],
        "val_rise": rise,
        "train_drop_since_best": train_drop,
    }
    summary = (
        f"the validation loss bottomed at {v[best]:.4g} at step {steps[best]:.0f} and rose "
        f"{100 * rise:.3g}% since, while the training loss fell {100 * train_drop:.3g}%"
    )
    return [_finding("overfitting", 0.5 + 2 * min(rise, 0.2), evidence, summary)]
