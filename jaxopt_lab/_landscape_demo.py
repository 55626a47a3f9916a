"""The update rules raced on the lectures' landscapes (``jaxopt-lab landscape``, and the
first step of ``jaxopt-lab demo``).

Every optimizer has a learning rate tuned by hand on the lecture quadratic and on
Rosenbrock. On the other landscapes the rate follows from the landscape itself (see
:func:`learning_rate`): a rate scaled by the curvature for the rules whose step is
proportional to the gradient, and by the size of the plotting box for the rules whose
step is not (adaptive, sign and normalized rules).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab import landscapes, optimizers, schedules

TARGET_LOSS = 1e-6  # "reached": within this of the landscape's lowest minimum


@dataclasses.dataclass(frozen=True)
class RaceEntry:
    """One optimizer with a setting that suits each landscape."""

    name: str  # shown in tables and legends
    make: Callable[[float], optax.GradientTransformation]
    learning_rates: dict[str, float]  # landscape name -> tuned learning rate
    key: str = ""  # command-line name (default: derived from `name`)
    # Elsewhere: ("curvature", c): c / L, with L the largest |eigenvalue| of the Hessian at
    # the start and at the first minimum; ("distance", c): c times the box's longest side;
    # ("fixed", value).
    rule: tuple[str, float] = ("curvature", 1.0)

    @property
    def cli_name(self) -> str:
        return self.key or self.name.replace(" ", "-")


ENTRIES = (
    RaceEntry("sgd", optimizers.sgd, {"lecture_quadratic": 0.45, "rosenbrock": 1.5e-3}),
    RaceEntry(
        "momentum (velocity)",
        lambda lr: optimizers.momentum(lr, 0.9),
        {"lecture_quadratic": 0.1, "rosenbrock": 1e-3},
        key="momentum",
        rule=("curvature", 0.1),
    ),
    RaceEntry(
        "momentum (ema)",
        lambda lr: optimizers.momentum(lr, 0.9, form="ema"),
        {"lecture_quadratic": 1.0, "rosenbrock": 1e-2},
        key="momentum-ema",
    ),
    RaceEntry(
        "nesterov",
        lambda lr: optimizers.nesterov(lr, 0.9),
        {"lecture_quadratic": 0.1, "rosenbrock": 1e-3},
        rule=("curvature", 0.1),
    ),
    RaceEntry(
        "adagrad",
        optimizers.adagrad,
        {"lecture_quadratic": 1.0, "rosenbrock": 1.5},
        rule=("distance", 0.25),
    ),
    RaceEntry(
        "rmsprop",
        lambda lr: optimizers.rmsprop(lr),
        {"lecture_quadratic": 0.01, "rosenbrock": 1e-3},
        rule=("distance", 1e-3),
    ),
    RaceEntry(
        "adam",
        optimizers.adam,
        {"lecture_quadratic": 0.1, "rosenbrock": 0.02},
        rule=("distance", 0.01),
    ),
    RaceEntry(
        "adam (no bias corr.)",
        lambda lr: optimizers.adam(lr, bias_correction=False),
        {"lecture_quadratic": 0.1, "rosenbrock": 0.02},
        key="adam-nobc",
        rule=("distance", 0.01),
    ),
    RaceEntry(
        "adadelta",
        optimizers.adadelta,
        {"lecture_quadratic": 1.0, "rosenbrock": 1.0},
        rule=("fixed", 1.0),
    ),
    RaceEntry(
        "delta-bar-delta",
        lambda lr: optimizers.delta_bar_delta(lr, kappa=0.05 * lr, phi=0.3, gamma=0.7),
        {"lecture_quadratic": 0.3, "rosenbrock": 1e-3},
        rule=("curvature", 0.5),
    ),
    RaceEntry(
        "sign sgd (1/t decay)",
        lambda lr: optimizers.sign_sgd(schedules.inverse_time(lr, 100.0)),
        {"lecture_quadratic": 0.05, "rosenbrock": 0.01},
        key="sign-sgd",
        rule=("distance", 0.005),
    ),
    RaceEntry(
        "normalized sgd (1/t)",
        lambda lr: optimizers.normalized_sgd(schedules.inverse_time(lr, 100.0)),
        {"lecture_quadratic": 0.1, "rosenbrock": 0.1},
        key="normalized-sgd",
        rule=("distance", 0.02),
    ),
)

DEFAULT_STEPS = {"lecture_quadratic": 2000, "rosenbrock": 10000}  # others: 2000


def entry(name: str) -> RaceEntry:
    """The entry called ``name`` on the command line (``-`` and ``_`` alike)."""
    wanted = name.strip().lower().replace("_", "-")
    for e in ENTRIES:
        if wanted == e.cli_name:
            return e
    names = [e.cli_name for e in ENTRIES]
    close = difflib.get_close_matches(wanted, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown optimizer {name!r}{hint}; choose from {', '.join(names)}")


def _curvature_scale(landscape: landscapes.Landscape) -> float:
    """The largest |eigenvalue| of the Hessian at the start and at the first minimum."""
    points = [landscape.start] + [c.location for c in landscape.minima[:1]]
    scale = 0.0
    for p in points:
        h = jax.hessian(landscape.fn)(jnp.asarray(p, jnp.float32))
        scale = max(scale, float(np.max(np.abs(np.linalg.eigvalsh(np.asarray(h))))))
    return scale


def learning_rate(
    e: RaceEntry, landscape: landscapes.Landscape, curvature_scale: float | None = None
) -> float:
    """The tuned rate on the lecture quadratic and Rosenbrock; elsewhere ``e.rule``.

    ``("curvature", c)`` gives :math:`c / L` (``c = 1``: lecture 001's "optimal" step
    :math:`1/\\lambda_{\\max}` for gradient descent; ``c = 0.1`` with momentum 0.9, whose
    steady step is :math:`\\alpha / (1 - \\beta)`); ``("distance", c)`` gives ``c`` times the
    longest side of the plotting box, for rules whose step does not scale with the gradient.
    ``curvature_scale`` is :math:`L` when already known.
    """
    if landscape.name in e.learning_rates:
        return e.learning_rates[landscape.name]
    kind, c = e.rule
    if kind == "fixed":
        return float(c)
    if kind == "distance":
        return float(c * max(high - low for low, high in landscape.bounds))
    scale = _curvature_scale(landscape) if curvature_scale is None else curvature_scale
    return float(c / scale) if scale > 0 else 0.01


def learning_rates(entries: Sequence[RaceEntry], landscape: landscapes.Landscape) -> list[float]:
    """:func:`learning_rate` of each entry, with the curvature computed at most once."""
    scale = None
    if any(landscape.name not in e.learning_rates and e.rule[0] == "curvature" for e in entries):
        scale = _curvature_scale(landscape)
    return [learning_rate(e, landscape, scale) for e in entries]


@dataclasses.dataclass(frozen=True)
class RaceResult:
    """The outcome of one optimizer on one landscape."""

    optimizer: str
    landscape: str
    learning_rate: float
    steps_to_target: int | None  # first step within TARGET_LOSS of the minimum; None if never
    final_loss: float
    path: np.ndarray  # (steps + 1, 2) iterates, starting point first
    has_target: bool = True  # False when the landscape has no minimum (saddles, maxima)


def run(tx: optax.GradientTransformation, landscape: landscapes.Landscape, steps: int):
    """Minimizes ``landscape`` from its start; returns the iterates and the losses."""
    w0 = jnp.asarray(landscape.start, jnp.float32)
    value_and_grad = jax.value_and_grad(landscape.fn)

    def body(carry, _):
        w, state = carry
        loss, g = value_and_grad(w)
        u, state = tx.update(g, state, w)
        return (optax.apply_updates(w, u), state), (w, loss)

    @jax.jit
    def go(w0):
        (w, _), (ws, losses) = jax.lax.scan(body, (w0, tx.init(w0)), None, length=steps)
        path = jnp.concatenate([ws, w[None]])
        return path, jnp.append(losses, landscape.fn(w))

    path, losses = go(w0)
    return np.asarray(path), np.asarray(losses)


def race_one(
    landscape: landscapes.Landscape,
    entries: Sequence[RaceEntry] = ENTRIES,
    steps: int | None = None,
    lr: float | None = None,
) -> list[RaceResult]:
    """Runs ``entries`` on one landscape, at ``lr`` or each entry's :func:`learning_rate`."""
    steps = steps or DEFAULT_STEPS.get(landscape.name, 2000)
    floor = min((c.value for c in landscape.minima), default=None)
    rates = learning_rates(entries, landscape) if lr is None else [float(lr)] * len(entries)
    results = []
    for e, rate in zip(entries, rates, strict=True):
        path, losses = run(e.make(rate), landscape, steps)
        hit = np.flatnonzero(losses <= floor + TARGET_LOSS) if floor is not None else []
        finite = np.flatnonzero(~np.isfinite(losses))
        n_ok = int(finite[0]) if finite.size else losses.size
        results.append(
            RaceResult(
                optimizer=e.name,
                landscape=landscape.name,
                learning_rate=rate,
                steps_to_target=int(hit[0]) if len(hit) else None,
                final_loss=float(losses[-1]) if np.isfinite(losses[-1]) else math.nan,
                path=path[: max(n_ok, 1)],
                has_target=floor is not None,
            )
        )
    return results


def race(steps: dict[str, int] | None = None) -> list[RaceResult]:
    """Runs every entry on the lecture quadratic and on Rosenbrock (``steps`` per landscape)."""
    steps = steps or DEFAULT_STEPS
    results = []
    for land_name, n in steps.items():
        results += race_one(landscapes.get(land_name), ENTRIES, n)
    return results


def table(results: list[RaceResult]) -> str:
    """A plain-text table: optimizer, landscape, rate, steps to 1e-6 or "did not", final loss."""
    head = f"{'optimizer':<22} {'landscape':<18} {'lr':>8} {'steps to 1e-6':>14} {'final loss':>11}"
    lines = [head, "-" * len(head)]
    for r in results:
        if not r.has_target:
            steps = "-"
        else:
            steps = "did not" if r.steps_to_target is None else str(r.steps_to_target)
        lines.append(
            f"{r.optimizer:<22} {r.landscape:<18} {r.learning_rate:>8.2g} {steps:>14} "
            f"{r.final_loss:>11.3g}"
        )
    return "\n".join(lines)


def figure(results: list[RaceResult], *, max_points: int = 400):
    """Trajectories of every optimizer on each landscape, side by side."""
    from jaxopt_lab import plot

    panels = []
    for land_name in dict.fromkeys(r.landscape for r in results):
        paths = {}
        for r in results:
            if r.landscape == land_name:
                stride = max(1, len(r.path) // max_points)
                paths[r.optimizer] = r.path[::stride]
        panels.append((landscapes.get(land_name), paths))
    return plot.trajectory_panels(panels)
