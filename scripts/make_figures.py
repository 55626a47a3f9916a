"""Writes one figure of each kind made by ``jaxopt_lab.plot`` into ``docs/``.

Usage::

    python scripts/make_figures.py [--out docs] [--dpi 150]

Runs on a CPU in about a minute. Figures:

- ``docs/trajectories.png``: SGD, momentum and Adam on lecture 002's ill-conditioned
  quadratic and on Rosenbrock's valley (``plot.trajectory_panels``).
- ``docs/training_curves.png``: minibatch SGD on the digits with an exponentially
  decayed learning rate, training and validation loss on a log scale
  (``plot.training_curves``), and what ``diagnostics.diagnose`` says about it.
- ``docs/sweep.png``: final validation loss against the learning rate, one line per
  momentum, diverged runs marked (``plot.sweep_results``).
- ``docs/spectral_density.png``: the Hessian eigenvalue density of the trained digits
  network by stochastic Lanczos quadrature, top eigenvalues marked
  (``plot.spectral_density``).
- ``docs/sharpness.png``: full-batch gradient descent on the squared error at two
  learning rates, sharpness against 2/learning rate (``plot.sharpness``): at 0.15 the
  sharpness rises to 2/lr and hovers there (the edge of stability).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_lab as jol
from jaxopt_lab import curvature, diagnostics, landscapes, plot


def _mlp_init(key: jax.Array, hidden: int = 32) -> dict[str, jax.Array]:
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (64, hidden)) / 8.0,
        "b1": jnp.zeros(hidden),
        "w2": jax.random.normal(k2, (hidden, 10)) / np.sqrt(hidden),
        "b2": jnp.zeros(10),
    }


def _mlp_loss(params, batch):
    h = jnp.tanh(batch.x @ params["w1"] + params["b1"][None, :])
    logits = h @ params["w2"] + params["b2"][None, :]
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch.y).mean()


def _path(landscape: landscapes.Landscape, optimizer, steps: int) -> np.ndarray:
    def step(carry, _):
        w, state = carry
        updates, state = optimizer.update(jax.grad(landscape)(w), state, w)
        w = optax.apply_updates(w, updates)
        return (w, state), w

    w0 = jnp.asarray(landscape.start, jnp.float32)
    _, ws = jax.lax.scan(step, (w0, optimizer.init(w0)), length=steps)
    return np.concatenate([np.asarray(w0)[None], np.asarray(ws)])


def trajectories_figure():
    quad, rosen = landscapes.lecture_quadratic(), landscapes.rosenbrock()
    settings = {  # name -> (optimizer on the quadratic, on Rosenbrock)
        "sgd": (jol.sgd(0.45), jol.sgd(1.5e-3)),
        "momentum 0.9": (jol.momentum(0.05, 0.9), jol.momentum(1e-3, 0.9)),
        "adam": (jol.adam(0.3), jol.adam(0.05)),
    }
    quad_paths = {name: _path(quad, q, 60) for name, (q, _) in settings.items()}
    rosen_paths = {name: _path(rosen, r, 400) for name, (_, r) in settings.items()}
    return plot.trajectory_panels([(quad, quad_paths), (rosen, rosen_paths)], resolution=150)


def training_figure():
    ds = jol.datasets.digits()
    schedule = jol.schedules.exponential_decay(0.5, 300.0)
    result = jol.train(
        _mlp_loss,
        _mlp_init(jax.random.key(0)),
        jol.sgd(schedule),
        ds.train,
        steps=600,
        batch_size=16,
        key=jax.random.key(1),
        eval_data=ds.validation,
        log_every=5,
        schedule=schedule,
        progress=False,
    )
    for finding in diagnostics.diagnose(result.history):
        print("  diagnose:", finding)
    fig = plot.training_curves(result.history, title="SGD on digits, exponential decay")
    return fig, result.params


def sweep_figure():
    ds = jol.datasets.digits()
    result = jol.sweep(
        _mlp_loss,
        lambda key: _mlp_init(key, hidden=16),
        lambda h: jol.momentum(h["learning_rate"], h["momentum"]),
        {"learning_rate": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0], "momentum": [0.0, 0.9]},
        ds.train,
        steps=200,
        batch_size=64,
        eval_data=ds.validation,
        log_every=20,
        progress=False,
    )
    return plot.sweep_results(result, metric="final_val_loss")


def density_figure(params):
    ds = jol.datasets.digits()
    subset = jax.tree.map(lambda a: a[:512], ds.train)
    density = curvature.density(_mlp_loss, params, subset, num_probes=4, num_nodes=40)
    top = curvature.eigenvalues(_mlp_loss, params, subset, k=3)
    return plot.spectral_density(density, eigenvalues=top, title="Hessian density, digits MLP")


def _mlp_squared_error(params, batch):
    h = jnp.tanh(batch.x @ params["w1"] + params["b1"][None, :])
    out = h @ params["w2"] + params["b2"][None, :]
    return 0.5 * jnp.mean(jnp.sum((out - jax.nn.one_hot(batch.y, 10)) ** 2, axis=1))


def sharpness_figure():
    ds = jol.datasets.digits()
    subset = jax.tree.map(lambda a: a[:256], ds.train)
    runs = {}
    for lr in (0.08, 0.15):
        callback = curvature.sharpness_callback(
            _mlp_squared_error, subset, every=10, learning_rate=lr
        )
        result = jol.train(
            _mlp_squared_error,
            _mlp_init(jax.random.key(2)),
            jol.sgd(lr),
            subset,
            steps=400,
            key=None,
            log_every=10,
            callbacks=[callback],
            progress=False,
        )
        print(
            f"  lr {lr}: sharpness {np.nanmax(result.history['sharpness'][5:]):.3g} at most "
            f"after step 50, 2/lr = {2 / lr:.3g}"
        )
        for finding in diagnostics.diagnose(result.history, gradient_descent=True):
            print("  diagnose:", finding)
        runs[f"lr {lr}"] = result.history
    return plot.sharpness(runs, title="full-batch GD, squared error, 256 digits")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs", help="output folder (default: docs)")
    parser.add_argument(
        "--dpi", type=int, default=plot.DPI, help=f"resolution (default: {plot.DPI})"
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def save(fig, name):
        path = out / name
        plot.save(fig, path, dpi=args.dpi)  # a Figure or the (fig, axes) of jol.plot
        print(f"wrote {path}")

    save(trajectories_figure(), "trajectories.png")
    fig, params = training_figure()
    save(fig, "training_curves.png")
    save(sweep_figure(), "sweep.png")
    save(density_figure(params), "spectral_density.png")
    save(sharpness_figure(), "sharpness.png")


if __name__ == "__main__":
    main()
