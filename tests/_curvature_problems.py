"""Problems with known curvature, shared by the curvature tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxopt_lab import datasets, landscapes

# The 2-D problems are the library's landscapes (each a callable ``fn(w)``):
# (1 - x)^2 + 100 (y - x^2)^2: minimum at (1, 1), H = [[802, -400], [-400, 200]]
rosenbrock = landscapes.rosenbrock()
saddle = landscapes.saddle()  # x^2 - y^2
monkey_saddle = landscapes.monkey_saddle()  # x^3 - 3 x y^2
bowl_down = landscapes.negative_bowl()  # -(x^2 + y^2)


def digits_like(n: int = 256) -> tuple[jax.Array, jax.Array]:
    """The first ``n`` training digits (``jol.datasets.digits()``): 8x8 pixels in [0, 1].

    Some pixels are 0 in every image, so the design is rank-deficient and closed forms
    with zero eigenvalues are exercised.
    """
    train = datasets.digits().train
    return jnp.asarray(train.x[:n]), jnp.asarray(train.y[:n])


def mlp_params(hidden: int = 24, seed: int = 0) -> dict[str, jax.Array]:
    """64-hidden-10 tanh MLP: 64 * 24 + 24 + 24 * 10 + 10 = 1810 parameters by default."""
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    return {
        "w1": jax.random.normal(k1, (64, hidden)) / 8.0,
        "b1": 0.1 * jax.random.normal(k3, (hidden,)),
        "w2": jax.random.normal(k2, (hidden, 10)) / jnp.sqrt(hidden),
        "b2": jnp.zeros(10),
    }


def mlp_loss(p, batch):
    """Mean cross-entropy of the tanh MLP on ``batch = (x, y)``."""
    x, y = batch
    logits = jnp.tanh(x @ p["w1"] + p["b1"][None, :]) @ p["w2"] + p["b2"][None, :]
    picked = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - picked)
