"""Every named optimizer x landscapes with known minima, and the transformation contract.

The contract: same result under ``jit``, under ``vmap`` over hyperparameters and in a
Python loop; parameter dtype preserved; no recompilation on the second update.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jol
from jaxopt_lab import landscapes
from jaxopt_lab.cli import registry

# The optimizers of the command line's registry (one spelling: ``sign_sgd``), built the
# way the race builds them (``Entry.race_optimizer``: sign and normalized SGD with the
# decaying rate that fixed-length steps need to settle, Robbins-Monro, lecture 004), plus
# the accumulate form of momentum, which the registry does not list.
# name -> (factory taking the learning rate, settings per landscape: (learning rate, steps))


def _entry(name, coefficient=None):
    entry = registry.get(name)
    if coefficient is None:
        return entry.race_optimizer
    return lambda lr: entry.make(lr, coefficient)


OPTIMIZERS = {
    "sgd": (
        _entry("sgd"),
        {"quadratic": (0.4, 300), "rosenbrock": (1.5e-3, 6000), "spd": (0.3, 400)},
    ),
    "momentum": (
        _entry("momentum"),  # heavy ball, beta 0.9: p <- beta p - lr g
        {"quadratic": (0.1, 300), "rosenbrock": (1e-3, 4000), "spd": (0.1, 400)},
    ),
    "momentum_ema": (
        _entry("momentum_ema"),
        {"quadratic": (1.0, 300), "rosenbrock": (1e-2, 4000), "spd": (1.0, 400)},
    ),
    "momentum_accumulate": (
        lambda lr: jol.momentum(lr, 0.9, form="accumulate"),
        {"quadratic": (0.1, 300), "rosenbrock": (1e-3, 4000), "spd": (0.1, 400)},
    ),
    "nesterov": (
        _entry("nesterov"),
        {"quadratic": (0.1, 300), "rosenbrock": (1e-3, 4000), "spd": (0.1, 400)},
    ),
    "adagrad": (
        _entry("adagrad"),
        {"quadratic": (1.0, 500), "rosenbrock": (1.5, 6000), "spd": (1.0, 500)},
    ),
    "rmsprop": (
        _entry("rmsprop", 0.9),  # decay 0.9, eps 1e-6, velocity 0.9
        {"quadratic": (3e-3, 2000), "rosenbrock": (3e-4, 6000), "spd": (3e-3, 2000)},
    ),
    "adam": (
        _entry("adam"),
        {"quadratic": (0.05, 1500), "rosenbrock": (0.02, 6000), "spd": (0.05, 1500)},
    ),
    "adam_nobc": (
        _entry("adam_nobc"),
        {"quadratic": (0.05, 1500), "rosenbrock": (0.02, 6000), "spd": (0.05, 1500)},
    ),
    "adadelta": (
        _entry("adadelta"),  # rho 0.95, eps 1e-6
        # AdaDelta stalls in Rosenbrock's curved valley: 0.3 or more from (1, 1) after
        # 10k steps at every setting tried (eps 1e-6..1e-2, rho 0.9..0.99, lr 0.03..3),
        # as its optax twin does; it is held to the quadratics only.
        {"quadratic": (1.0, 3000), "spd": (0.3, 3000)},
    ),
    "delta_bar_delta": (
        _entry("delta_bar_delta"),  # kappa = 0.05 lr, phi 0.3, gamma 0.7
        {"quadratic": (0.3, 500), "rosenbrock": (1e-3, 6000), "spd": (0.3, 500)},
    ),
    "sign_sgd": (
        _entry("sign_sgd"),  # lr / (1 + t / 100)
        {"quadratic": (0.05, 3000), "rosenbrock": (0.01, 50000), "spd": (0.05, 3000)},
    ),
    "normalized_sgd": (
        _entry("normalized_sgd"),  # lr / (1 + t / 100)
        {"quadratic": (0.1, 3000), "rosenbrock": (0.1, 6000), "spd": (0.1, 3000)},
    ),
}


def test_every_optimizer_of_the_registry_is_in_the_table():
    assert set(registry.NAMES) <= set(OPTIMIZERS)


def _spd_quadratic():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    h = q @ np.diag([0.3, 0.5, 1.0, 1.5, 2.0, 3.0]) @ q.T
    return landscapes.quadratic(matrix=(h + h.T) / 2, center=rng.normal(size=6))


LANDSCAPES = {
    "quadratic": landscapes.lecture_quadratic(),
    "rosenbrock": landscapes.rosenbrock(),
    "spd": _spd_quadratic(),
}
# distance to the minimum that counts as "converged"
TOL = {"quadratic": 1e-2, "rosenbrock": 5e-2, "spd": 1e-2}


CASES = [(o, land) for o in sorted(OPTIMIZERS) for land in sorted(OPTIMIZERS[o][1])]


@pytest.mark.parametrize(("opt_name", "land_name"), CASES)
def test_converges_to_known_minimum(opt_name, land_name):
    factory, settings = OPTIMIZERS[opt_name]
    lr, steps = settings[land_name]
    land = LANDSCAPES[land_name]
    p = landscapes.minimize(factory(lr), land, steps).path[-1]
    target = np.asarray(land.minima[0].location)
    assert np.all(np.isfinite(p))
    assert np.linalg.norm(np.asarray(p) - target) < TOL[land_name], (opt_name, land_name, p)


def _quad_loss(p):
    return 0.1 * p["a"][0] ** 2 + 2.0 * p["a"][1] ** 2 + jnp.sum(p["b"] ** 2)


def _loop(tx, steps=5):
    params = {"a": jnp.array([1.0, -1.0]), "b": jnp.array([[0.5, 0.25]])}
    state = tx.init(params)
    for _ in range(steps):
        u, state = tx.update(jax.grad(_quad_loss)(params), state, params)
        params = optax.apply_updates(params, u)
    return params


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_jit_equals_python_loop(opt_name):
    factory, _ = OPTIMIZERS[opt_name]
    tx = factory(0.05)
    eager = _loop(tx)
    jitted = jax.jit(lambda: _loop(tx))()
    # XLA fuses (and may contract to FMA) under jit: equal up to float32 rounding
    for x, y in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_vmap_over_learning_rates_equals_separate_runs(opt_name):
    factory, _ = OPTIMIZERS[opt_name]
    lrs = jnp.array([0.01, 0.05, 0.2])
    batched = jax.jit(jax.vmap(lambda lr: _loop(factory(lr))))(lrs)
    for i, lr in enumerate([0.01, 0.05, 0.2]):
        single = _loop(factory(lr))
        for x, y in zip(jax.tree.leaves(batched), jax.tree.leaves(single), strict=True):
            np.testing.assert_allclose(x[i], y, rtol=1e-4, atol=1e-6)


def test_vmap_over_momentum_and_decay():
    betas = jnp.array([0.0, 0.5, 0.9])
    got = jax.vmap(lambda b: _loop(jol.momentum(0.05, b))["a"])(betas)
    for i, b in enumerate([0.0, 0.5, 0.9]):
        np.testing.assert_allclose(got[i], _loop(jol.momentum(0.05, b))["a"], rtol=1e-5)
    decays = jnp.array([0.5, 0.99])
    got = jax.vmap(lambda d: _loop(jol.rmsprop(0.01, d))["a"])(decays)
    for i, d in enumerate([0.5, 0.99]):
        np.testing.assert_allclose(got[i], _loop(jol.rmsprop(0.01, d))["a"], rtol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_dtype_preserved_with_traced_hyperparameters(opt_name, dtype):
    factory, _ = OPTIMIZERS[opt_name]
    params = {"w": jnp.ones((3,), dtype), "v": jnp.full((2, 2), 0.5, dtype)}
    grads = jax.tree.map(lambda p: p * 0.1, params)

    @jax.jit
    def step(lr, params):  # lr is a traced float32: no weak typing to hide promotion
        tx = factory(lr)
        state = tx.init(params)
        for _ in range(2):
            u, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, u)
        return params, state

    with jax.numpy_dtype_promotion("strict"):
        new_params, state = step(jnp.float32(0.01), params)
    for p in jax.tree.leaves(new_params):
        assert p.dtype == dtype
    # the adaptive rules keep their moments in float32 for half-precision parameters
    adaptive = opt_name.startswith(("adam", "adagrad", "rmsprop", "adadelta"))
    moments = ("mu", "nu", "sum_of_squares", "e_g", "e_x")
    for path, s in jax.tree_util.tree_leaves_with_path(state):
        if jnp.issubdtype(s.dtype, jnp.floating):
            keys = jax.tree_util.keystr(path)
            want = jnp.float32 if adaptive and any(k in keys for k in moments) else dtype
            assert s.dtype == want, (opt_name, keys, s.dtype)


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_no_recompilation_on_second_update(opt_name):
    factory, _ = OPTIMIZERS[opt_name]
    tx = factory(0.01)
    params = {"w": jnp.ones((4,))}
    traces = []

    @jax.jit
    def step(params, state):
        traces.append(1)
        u, state = tx.update(params, state, params)
        return optax.apply_updates(params, u), state

    state = tx.init(params)
    params, state = step(params, state)
    params, state = step(params, state)
    params, state = step(params, state)
    assert len(traces) == 1


INJECTED = {
    "sgd": (lambda: optax.inject_hyperparams(jol.sgd)(learning_rate=0.1), "learning_rate"),
    "momentum": (
        lambda: optax.inject_hyperparams(jol.momentum, static_args="form")(
            learning_rate=0.1, beta=0.9, form="ema"
        ),
        "learning_rate",
    ),
    "nesterov": (
        lambda: optax.inject_hyperparams(jol.nesterov)(learning_rate=0.1, beta=0.9),
        "learning_rate",
    ),
    "adagrad": (lambda: optax.inject_hyperparams(jol.adagrad)(learning_rate=0.1), "learning_rate"),
    "rmsprop": (
        lambda: optax.inject_hyperparams(jol.rmsprop)(learning_rate=0.1, decay=0.9),
        "learning_rate",
    ),
    "adam": (
        lambda: optax.inject_hyperparams(jol.adam)(learning_rate=0.1, b1=0.8),
        "learning_rate",
    ),
    "adadelta": (
        lambda: optax.inject_hyperparams(jol.adadelta)(learning_rate=1.0),
        "learning_rate",
    ),
    # its learning rate only seeds the per-parameter rates at init; kappa acts on updates
    "delta_bar_delta": (
        lambda: optax.inject_hyperparams(jol.delta_bar_delta)(
            learning_rate=0.1, kappa=0.05, phi=0.1, gamma=0.5
        ),
        "kappa",
    ),
    "sign_sgd": (
        lambda: optax.inject_hyperparams(jol.sign_sgd)(learning_rate=0.1),
        "learning_rate",
    ),
    "normalized_sgd": (
        lambda: optax.inject_hyperparams(jol.normalized_sgd)(learning_rate=0.1),
        "learning_rate",
    ),
}


@pytest.mark.parametrize("name", sorted(INJECTED))
def test_inject_hyperparams(name):
    factory, hparam = INJECTED[name]
    tx = factory()
    params = {"w": jnp.array([1.0, -2.0])}
    moved = _loop_with_state(tx, params, tx.init(params), 3)
    assert not np.allclose(moved["w"], params["w"])
    # changing an injected hyperparameter in the state changes the run, no rebuild
    state = tx.init(params)
    state.hyperparams[hparam] = jnp.asarray(0.0)
    changed = _loop_with_state(tx, params, state, 3)
    assert not np.allclose(changed["w"], moved["w"])
    if hparam == "learning_rate":  # a zero rate freezes the parameters
        np.testing.assert_allclose(changed["w"], params["w"])


def _loop_with_state(tx, params, state, steps):
    step = jax.jit(tx.update)
    for _ in range(steps):
        u, state = step(params, state, params)
        params = optax.apply_updates(params, u)
    return params


def test_transformations_are_extra_args_and_chain_forwards_them():
    for name, (factory, _) in OPTIMIZERS.items():
        assert isinstance(factory(0.1), optax.GradientTransformationExtraArgs), name
    tx = optax.chain(jol.adam(0.1), jol.polyak_averaging(kind="uniform"))
    params = jnp.ones(2)
    # an extra keyword (as a line search's value_fn) is accepted and ignored
    tx.update(params, tx.init(params), params, value_fn=lambda p: jnp.sum(p))
