"""The update rules raced on the lectures' landscapes (the first part of the demo)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab import landscapes, optimizers, schedules

TARGET_LOSS = 1e-6


@dataclasses.dataclass(frozen=True)
class RaceEntry:
    """One optimizer with a setting that suits each landscape."""

    name: str
    make: Callable[[float], optax.GradientTransformation]
    learning_rates: dict[str, float]  # landscape name -> learning rate


ENTRIES = (
    RaceEntry("sgd", optimizers.sgd, {"lecture_quadratic": 0.45, "rosenbrock": 1.5e-3}),
    RaceEntry(
        "momentum (velocity)",
        lambda lr: optimizers.momentum(lr, 0.9),
        {"lecture_quadratic": 0.1, "rosenbrock": 1e-3},
    ),
    RaceEntry(
        "momentum (ema)",
        lambda lr: optimizers.momentum(lr, 0.9, form="ema"),
        {"lecture_quadratic": 1.0, "rosenbrock": 1e-2},
    ),
    RaceEntry(
        "nesterov",
        lambda lr: optimizers.nesterov(lr, 0.9),
        {"lecture_quadratic": 0.1, "rosenbrock": 1e-3},
    ),
    RaceEntry("adagrad", optimizers.adagrad, {"lecture_quadratic": 1.0, "rosenbrock": 1.5}),
    RaceEntry(
        "rmsprop",
        lambda lr: optimizers.rmsprop(lr),
        {"lecture_quadratic": 0.01, "rosenbrock": 1e-3},
    ),
    RaceEntry("adam", optimizers.adam, {"lecture_quadratic": 0.1, "rosenbrock": 0.02}),
    RaceEntry(
        "adam (no bias corr.)",
        lambda lr: optimizers.adam(lr, bias_correction=False),
        {"lecture_quadratic": 0.1, "rosenbrock": 0.02},
    ),
    RaceEntry("adadelta", optimizers.adadelta, {"lecture_quadratic": 1.0, "rosenbrock": 1.0}),
    RaceEntry(
        "delta-bar-delta",
        lambda lr: optimizers.delta_bar_delta(lr, kappa=0.05 * lr, phi=0.3, gamma=0.7),
        {"lecture_quadratic": 0.3, "rosenbrock": 1e-3},
    ),
    RaceEntry(
        "sign sgd (1/t decay)",
        lambda lr: optimizers.sign_sgd(schedules.inverse_time(lr, 100.0)),
        {"lecture_quadratic": 0.05, "rosenbrock": 0.01},
    ),
    RaceEntry(
        "normalized sgd (1/t)",
        lambda lr: optimizers.normalized_sgd(schedules.inverse_time(lr, 100.0)),
        {"lecture_quadratic": 0.1, "rosenbrock": 0.1},
    ),
)


@dataclasses.dataclass(frozen=True)
class RaceResult:
    """The outcome of one optimizer on one landscape."""

    optimizer: str
    landscape: str
    learning_rate: float
    steps_to_target: int | None  # first step with loss <= TARGET_LOSS; None if never
    final_loss: float
    path: np.ndarray  # (steps + 1, 2) iterates, starting point first


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


def race(steps: dict[str, int] | None = None) -> list[RaceResult]:
    """Runs every entry on the lecture quadratic and on Rosenbrock."""
    steps = steps or {"lecture_quadratic": 2000, "rosenbrock": 10000}
    results = []
    for land_name, n in steps.items():
        land = landscapes.get(land_name)
        for entry in ENTRIES:
            lr = entry.learning_rates[land_name]
            path, losses = run(entry.make(lr), land, n)
            hit = np.flatnonzero(losses <= TARGET_LOSS)
            finite = losses[np.isfinite(losses)]
            results.append(
                RaceResult(
                    optimizer=entry.name,
                    landscape=land_name,
                    learning_rate=lr,
                    steps_to_target=int(hit[0]) if hit.size else None,
                    final_loss=float(losses[-1]) if np.isfinite(losses[-1]) else float("nan"),
                    path=path if finite.size == losses.size else path[: finite.size],
                )
            )
    return results


def table(results: list[RaceResult]) -> str:
    """A plain-text table: optimizer, landscape, rate, steps to 1e-6 or "did not", final loss."""
    head = f"{'optimizer':<22} {'landscape':<18} {'lr':>8} {'steps to 1e-6':>14} {'final loss':>11}"
    lines = [head, "-" * len(head)]
    for r in results:
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


def main(out: Path, steps: dict[str, int] | None = None) -> list[RaceResult]:
    """Races, prints the table, and writes ``trajectories.png`` into ``out``."""
    results = race(steps)
    print(table(results))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "trajectories.png"
    figure(results).savefig(path, dpi=110)
    print(f"\nwrote {path}")
    return results
