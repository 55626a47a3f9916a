"""Where the lecture's rule and optax's coincide, the numbers must too."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_lab as jol

# optax itself relies on implicit promotion (e.g. `decay**count`, a float32 to an int32
# power), which the tests' strict mode refuses: optax's side runs under JAX's default.
_OPTAX_PROMOTION = "standard"
# pairs where our side runs an optax schedule too (ours are strict-safe, optax's are not)
_OPTAX_INSIDE = {"adam-scheduled"}


def _problem(seed: int):
    """A random least-squares problem (NumPy's generator: no JAX program to compile)."""
    rng = np.random.default_rng(seed)
    a, y, w = (rng.standard_normal(shape, np.float32) for shape in ((20, 7), (20,), (5,)))
    return jnp.asarray(a), jnp.asarray(y), {"w": jnp.asarray(w), "b": jnp.zeros((2,))}


@jax.jit  # compiled once per promotion mode, for all pairs; the updates run eagerly
def _grad(params, a, y):
    def loss(p):
        x = jnp.concatenate([p["w"], p["b"]])
        return jnp.mean((a @ x - y) ** 2)

    return jax.grad(loss)(params)


def _trajectory(tx, steps=25, seed=0):
    """Runs tx on a random least-squares problem over a dict of two leaves."""
    a, y, params = _problem(seed)
    state = tx.init(params)
    out = []
    for _ in range(steps):
        g = _grad(params, a, y)
        u, state = tx.update(g, state, params)
        params = optax.apply_updates(params, u)
        out.append(params)
    return jax.tree.map(lambda *xs: jnp.stack(xs), *out)


PAIRS = {
    "sgd": (jol.sgd(0.05), optax.sgd(0.05)),
    "momentum-accumulate": (
        jol.momentum(0.02, 0.9, form="accumulate"),
        optax.sgd(0.02, momentum=0.9),
    ),
    "momentum-velocity-constant-lr": (
        jol.momentum(0.02, 0.9, form="velocity"),
        optax.sgd(0.02, momentum=0.9),
    ),
    "momentum-ema": (
        jol.momentum(0.02, 0.8, form="ema"),
        optax.chain(optax.ema(0.8, debias=False), optax.scale(-0.02)),
    ),
    "nesterov": (jol.nesterov(0.02, 0.9), optax.sgd(0.02, momentum=0.9, nesterov=True)),
    "adam": (jol.adam(0.05), optax.adam(0.05)),
    "adam-scheduled": (
        jol.adam(optax.cosine_decay_schedule(0.05, 25)),
        optax.adam(optax.cosine_decay_schedule(0.05, 25)),
    ),
    "rmsprop-eps-in-sqrt": (jol.rmsprop(0.01, 0.9, 1e-6), optax.rmsprop(0.01, 0.9, 1e-6)),
    "rmsprop-eps-outside": (
        jol.rmsprop(0.01, 0.9, 1e-6, eps_in_sqrt=False),
        optax.rmsprop(0.01, 0.9, 1e-6, eps_in_sqrt=False),
    ),
    "rmsprop-momentum": (
        jol.rmsprop(0.01, 0.9, 1e-6, momentum=0.5),
        optax.rmsprop(0.01, 0.9, 1e-6, momentum=0.5),
    ),
    # optax's AdaGrad puts eps inside the root and starts r at 0.1: equal for eps=0, r0=0
    "adagrad-eps0": (
        jol.adagrad(0.1, eps=0.0),
        optax.adagrad(0.1, initial_accumulator_value=0.0, eps=0.0),
    ),
    "adadelta": (jol.adadelta(1.0, 0.95, 1e-6), optax.adadelta(1.0, 0.95, 1e-6)),
    "sign": (jol.sign_sgd(0.01), optax.sign_sgd(0.01)),
    "linear-decay": (
        jol.sgd(jol.schedules.linear_decay(0.05, 0.005, 10)),
        optax.sgd(optax.linear_schedule(0.05, 0.005, 10)),
    ),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_matches_optax(name):
    ours, theirs = PAIRS[name]
    with jax.numpy_dtype_promotion(_OPTAX_PROMOTION if name in _OPTAX_INSIDE else "strict"):
        a = _trajectory(ours)
    with jax.numpy_dtype_promotion(_OPTAX_PROMOTION):
        b = _trajectory(theirs)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)


def test_exponential_decay_matches_optax():
    ours = jol.schedules.exponential_decay(0.3, 7.0)
    theirs = optax.exponential_decay(0.3, transition_steps=7, decay_rate=float(np.exp(-1.0)))
    steps = jnp.arange(30)
    with jax.numpy_dtype_promotion(_OPTAX_PROMOTION):
        want = jax.vmap(theirs)(steps)
    np.testing.assert_allclose(jax.vmap(ours)(steps), want, rtol=1e-6)


def test_velocity_form_is_scaled_accumulate_state():
    """p_velocity = -a * p_accumulate for a constant learning rate."""
    g = jnp.array([0.3, -1.2])
    vel, acc = jol.momentum(0.1, 0.9, form="velocity"), jol.momentum(0.1, 0.9, form="accumulate")
    sv, sa = vel.init(g), acc.init(g)
    for _ in range(3):
        _, sv = vel.update(g, sv)
        _, sa = acc.update(g, sa)
    np.testing.assert_allclose(sv[1].trace, -0.1 * sa[0].trace, rtol=1e-6)


def _compiled_step(tx: optax.GradientTransformation, n: int = 1000) -> list[str]:
    """The instructions of the optimized XLA program of one donated update step: source
    locations, names and the order of commutative operands and of lines left out."""
    import re

    params, grads = jnp.ones((n,), jnp.float32), jnp.full((n,), 1e-3, jnp.float32)

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    text = jax.jit(step, donate_argnums=(0, 1)).lower(params, tx.init(params), grads)
    text = re.sub(r", metadata=\{[^}]*\}", "", text.compile().as_text())
    body = text[text.index("\n%") :]  # drop the module header (file and frame tables)
    body = re.sub(r"param_(\d+)\.\d+", r"param_\1", body)  # parameters by position
    body = re.sub(r"%(?!param_)[\w.]+", "%_", body)  # other names: square vs integer_pow

    def commute(m: re.Match) -> str:  # a + b and b + a are one instruction
        return f"{m[1]}({', '.join(sorted(m[2].split(', ')))})"

    return sorted(re.sub(r"\b(add|multiply)\(([^()]*)\)", commute, body).splitlines())


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda: jol.adam(1e-3), lambda: optax.adam(1e-3)),
        (
            lambda: jol.momentum(1e-3, 0.9, form="accumulate"),
            lambda: optax.sgd(1e-3, momentum=0.9),
        ),
    ],
    ids=["adam", "momentum"],
)
def test_update_step_compiles_to_optax_program(ours, theirs):
    """What bench_update.py times: the same XLA program as optax, so the same speed."""
    with jax.numpy_dtype_promotion(_OPTAX_PROMOTION):
        want = _compiled_step(theirs())
    assert _compiled_step(ours()) == want
