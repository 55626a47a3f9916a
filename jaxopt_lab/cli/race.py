"""The race: the update rules of :mod:`jaxopt_lab.cli.registry` on the lectures' landscapes
(``jaxopt-lab landscape``, and the first stage of ``jaxopt-lab demo``).

Every optimizer has a learning rate tuned by hand on the lecture quadratic and on
Rosenbrock. On the other landscapes the rate follows from the landscape itself (see
:func:`learning_rate`): a rate scaled by the curvature for the rules whose step is
proportional to the gradient, and by the size of the plotting box for the rules whose
step is not (adaptive, sign and normalized rules); the full-batch methods (Newton,
L-BFGS, nonlinear CG) take a step of 1 or their line search's. Each run is
``jol.landscapes.minimize``, with the landscape's loss passed to every update
(``value``, ``grad``, ``value_fn``, as ``jol.train`` passes them), which Newton's method
and the line searches need and the first-order rules ignore.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab import landscapes, plot
from jaxopt_lab.cli import registry
from jaxopt_lab.cli.registry import Entry

TARGET_LOSS = 1e-6  # "reached": within this of the landscape's lowest minimum
ENTRIES: tuple[Entry, ...] = tuple(registry.get(n) for n in registry.RACERS)
DEFAULT_STEPS = {"lecture_quadratic": 2000, "rosenbrock": 10000}  # others: 2000


def display(e: Entry) -> str:
    """The name in the race's table and panels: ``"sign SGD (1/t)"`` for a decaying rate."""
    return e.display + (" (1/t)" if e.race is not None and e.race.decay else "")


def _curvature_scale(landscape: landscapes.Landscape) -> float:
    """The largest |eigenvalue| of the Hessian at the start and at the first minimum."""
    points = [landscape.start] + [c.location for c in landscape.minima[:1]]
    scale = 0.0
    for p in points:
        h = jax.hessian(landscape.fn)(jnp.asarray(p, jnp.float32))
        scale = max(scale, float(np.max(np.abs(np.linalg.eigvalsh(np.asarray(h))))))
    return scale


def learning_rate(
    e: Entry, landscape: landscapes.Landscape, curvature_scale: float | None = None
) -> float:
    """The tuned rate on the lecture quadratic and Rosenbrock; elsewhere ``e.rule``.

    ``("curvature", c)`` gives :math:`c / L` (``c = 1``: lecture 001's "optimal" step
    :math:`1/\\lambda_{\\max}` for gradient descent; ``c = 0.1`` with momentum 0.9, whose
    steady step is :math:`\\alpha / (1 - \\beta)`); ``("distance", c)`` gives ``c`` times the
    longest side of the plotting box, for rules whose step does not scale with the gradient.
    ``curvature_scale`` is :math:`L` when already known.
    """
    race = e.race or registry.Race({})
    if landscape.name in race.learning_rates:
        return race.learning_rates[landscape.name]
    kind, c = race.rule
    if kind == "fixed":
        return float(c)
    if kind == "distance":
        return float(c * max(high - low for low, high in landscape.bounds))
    scale = _curvature_scale(landscape) if curvature_scale is None else curvature_scale
    return float(c / scale) if scale > 0 else 0.01


def with_loss(optimizer: optax.GradientTransformation, fn) -> optax.GradientTransformationExtraArgs:
    """``optimizer`` whose every update gets ``value``, ``grad`` and ``value_fn`` of ``fn``.

    ``jol.landscapes.minimize`` calls ``update(grads, state, params)``; this supplies the
    loss as ``jol.train`` does (the extra arguments of optax's ``with_extra_args_support``).
    """
    optimizer = optax.with_extra_args_support(optimizer)

    def update(updates, state, params=None, **extra_args):
        del extra_args
        return optimizer.update(updates, state, params, value=fn(params), grad=updates, value_fn=fn)

    return optax.GradientTransformationExtraArgs(optimizer.init, update)


def learning_rates(entries: Sequence[Entry], landscape: landscapes.Landscape) -> list[float]:
    """:func:`learning_rate` of each entry, with the curvature computed at most once."""
    scale = None
    if any(
        landscape.name not in e.race.learning_rates and e.race.rule[0] == "curvature"
        for e in entries
        if e.race is not None
    ):
        scale = _curvature_scale(landscape)
    return [learning_rate(e, landscape, scale) for e in entries]


@dataclasses.dataclass(frozen=True)
class RaceResult:
    """The outcome of one optimizer on one landscape."""

    optimizer: str  # the registry's name
    display: str  # the name in tables and panels
    landscape: str
    learning_rate: float
    steps_to_target: int | None  # first step within TARGET_LOSS of the minimum; None if never
    final_loss: float
    path: np.ndarray  # (steps + 1, 2) iterates, starting point first
    has_target: bool = True  # False when the landscape has no minimum (saddles, maxima)


def race_one(
    landscape: landscapes.Landscape,
    entries: Sequence[Entry] = ENTRIES,
    steps: int | None = None,
    lr: float | None = None,
) -> list[RaceResult]:
    """Runs ``entries`` on one landscape, at ``lr`` or each entry's :func:`learning_rate`."""
    steps = steps or DEFAULT_STEPS.get(landscape.name, 2000)
    floor = min((c.value for c in landscape.minima), default=None)
    rates = learning_rates(entries, landscape) if lr is None else [float(lr)] * len(entries)
    results = []
    for e, rate in zip(entries, rates, strict=True):
        tx = with_loss(e.race_optimizer(rate), landscape.fn)
        path, losses = landscapes.minimize(tx, landscape, steps)
        hit = np.flatnonzero(losses <= floor + TARGET_LOSS) if floor is not None else []
        finite = np.flatnonzero(~np.isfinite(losses))
        n_ok = int(finite[0]) if finite.size else losses.size
        results.append(
            RaceResult(
                optimizer=e.name,
                display=display(e),
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
    head = f"{'optimizer':<26} {'landscape':<18} {'lr':>8} {'steps to 1e-6':>14} {'final loss':>11}"
    lines = [head, "-" * len(head)]
    for r in results:
        if not r.has_target:
            steps = "-"
        else:
            steps = "did not" if r.steps_to_target is None else str(r.steps_to_target)
        lines.append(
            f"{r.display:<26} {r.landscape:<18} {r.learning_rate:>8.2g} {steps:>14} "
            f"{r.final_loss:>11.3g}"
        )
    return "\n".join(lines)


def figure(results: list[RaceResult], *, max_points: int = 400):
    """The race as small multiples: for each landscape a row of panels, one per optimizer
    family, the same contours in each, every path coloured by step. Returns ``(fig, axes)``
    of the first landscape's figure when there is one landscape; a list of them otherwise."""
    figures = []
    for land_name in dict.fromkeys(r.landscape for r in results):
        runs = [r for r in results if r.landscape == land_name]
        paths = {r.display: r.path for r in runs}
        groups: dict[str, list[str]] = {}
        for r in runs:
            groups.setdefault(registry.REGISTRY[r.optimizer].panel, []).append(r.display)
        figures.append(
            plot.race_panels(landscapes.get(land_name), paths, groups=groups, max_points=max_points)
        )
    return figures[0] if len(figures) == 1 else figures
