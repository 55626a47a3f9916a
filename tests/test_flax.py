"""Every named optimizer drops into flax.nnx.Optimizer and trains a small MLP."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxopt_lab as jol

NAMED = {
    "sgd": lambda: jol.sgd(0.1),
    "momentum-velocity": lambda: jol.momentum(0.05, 0.9),
    "momentum-ema": lambda: jol.momentum(0.5, 0.9, form="ema"),
    "momentum-accumulate": lambda: jol.momentum(0.05, 0.9, form="accumulate"),
    "nesterov": lambda: jol.nesterov(0.05, 0.9),
    "adagrad": lambda: jol.adagrad(0.05),
    "rmsprop": lambda: jol.rmsprop(0.003),
    "rmsprop-momentum": lambda: jol.rmsprop(0.001, momentum=0.9),
    "adam": lambda: jol.adam(0.01),
    "adam-steady-state": lambda: jol.adam(0.01, bias_correction=False),
    "adadelta": lambda: jol.adadelta(1.0),
    "delta-bar-delta": lambda: jol.delta_bar_delta(0.05, kappa=0.001, phi=0.2, gamma=0.7),
    "sign-sgd": lambda: jol.sign_sgd(jol.schedules.inverse_time(0.01, 20.0)),
    "normalized-sgd": lambda: jol.normalized_sgd(0.1),
    "sgd-scheduled": lambda: jol.sgd(jol.schedules.linear_decay(0.1, 0.01, 40)),
    "adam-polyak": lambda: optax.chain(jol.adam(0.01), jol.polyak_averaging(kind="ema", decay=0.9)),
}


class MLP(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(4, 16, rngs=rngs)
        self.l2 = nnx.Linear(16, 1, rngs=rngs)

    def __call__(self, x):
        return self.l2(jnp.tanh(self.l1(x)))


def _data():
    x = jax.random.normal(jax.random.key(1), (64, 4))
    y = jnp.sin(x @ jnp.array([1.0, -0.5, 0.25, 2.0]))[:, None]
    return x, y


def _loss(model, x, y):
    return jnp.mean((model(x) - y) ** 2)


@nnx.jit
def _step(model, optimizer, x, y):
    loss, grads = nnx.value_and_grad(_loss)(model, x, y)
    optimizer.update(model, grads)
    return loss


@pytest.mark.parametrize("name", sorted(NAMED))
def test_nnx_optimizer_trains_mlp(name):
    model = MLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, NAMED[name](), wrt=nnx.Param)
    x, y = _data()
    first = float(_loss(model, x, y))
    for _ in range(60):
        _step(model, optimizer, x, y)
    last = float(_loss(model, x, y))
    assert np.isfinite(last)
    assert last < 0.7 * first, (name, first, last)


def test_polyak_average_from_nnx_optimizer():
    model = MLP(nnx.Rngs(0))
    tx = optax.chain(jol.sgd(0.05), jol.polyak_averaging(kind="uniform"))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    x, y = _data()
    snapshots = []
    for _ in range(3):
        _step(model, optimizer, x, y)
        snapshots.append(jax.tree.map(jnp.copy, nnx.to_pure_dict(nnx.state(model, nnx.Param))))
    averaged = jol.averaged_params(optimizer)
    mean = jax.tree.map(lambda *xs: sum(xs) / 3, *snapshots)
    averaged_dict = nnx.to_pure_dict(averaged)
    for got, want in zip(jax.tree.leaves(averaged_dict), jax.tree.leaves(mean), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the average can be loaded into a model and evaluated
    nnx.update(model, averaged)
    assert np.isfinite(float(_loss(model, x, y)))
