"""Bad configuration fails at construction with a message naming the argument."""

import jax
import jax.numpy as jnp
import optax
import pytest

import jaxopt_lab as jol

BAD = [
    (lambda: jol.sgd(-0.1), "learning_rate"),
    (lambda: jol.sgd(float("nan")), "learning_rate"),
    (lambda: jol.sgd(lambda k: -0.1), "learning_rate"),
    (lambda: jol.momentum(0.1, beta=1.0), "beta"),
    (lambda: jol.momentum(0.1, beta=-0.1), "beta"),
    (lambda: jol.momentum(0.1, form="heavy"), "form"),
    (lambda: jol.nesterov(0.1, beta=1.5), "beta"),
    (lambda: jol.adagrad(0.1, eps=-1e-7), "eps"),
    (lambda: jol.rmsprop(0.1, decay=1.0), "decay"),
    (lambda: jol.rmsprop(0.1, eps=-1.0), "eps"),
    (lambda: jol.rmsprop(0.1, momentum=1.0), "beta"),
    (lambda: jol.adam(0.1, b1=1.0), "b1"),
    (lambda: jol.adam(0.1, b2=1.2), "b2"),
    (lambda: jol.adam(0.1, eps=-1e-8), "eps"),
    (lambda: jol.adam(-1e-3), "learning_rate"),
    (lambda: jol.adadelta(rho=1.0), "rho"),
    (lambda: jol.adadelta(eps=-1.0), "eps"),
    (lambda: jol.delta_bar_delta(0.1, kappa=-0.1, phi=0.1, gamma=0.5), "kappa"),
    (lambda: jol.delta_bar_delta(0.1, kappa=0.1, phi=1.0, gamma=0.5), "phi"),
    (lambda: jol.delta_bar_delta(0.1, kappa=0.1, phi=0.1, gamma=1.0), "gamma"),
    (lambda: jol.polyak_averaging("median"), "kind"),
    (lambda: jol.polyak_averaging("ema"), "decay"),
    (lambda: jol.polyak_averaging("ema", decay=1.0), "decay"),
    (lambda: jol.polyak_averaging("uniform", decay=0.9), "decay"),
    (lambda: jol.schedules.linear_decay(0.1, 0.01, 0), "transition_steps"),
    (lambda: jol.schedules.exponential_decay(-0.1, 10.0), "init_value"),
    (lambda: jol.schedules.inverse_time(0.1, -1.0), "tau"),
    (lambda: jol.adam(jnp.array([0.1, -0.1])), "learning_rate"),
]


@pytest.mark.parametrize(("make", "name"), BAD)
def test_bad_configuration_names_the_argument(make, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        make()


def test_schedule_for_delta_bar_delta_is_a_type_error():
    with pytest.raises(TypeError, match="`learning_rate`"):
        jol.delta_bar_delta(jol.schedules.inverse_time(0.1, 10.0), 0.1, 0.1, 0.5)


def test_traced_values_are_not_checked_but_still_run():
    # a traced beta cannot be checked at construction: it runs, as documented
    out = jax.jit(lambda b: jol.momentum(0.1, b).init(jnp.ones(2)))(jnp.float32(1.5))
    assert jax.tree.leaves(out)[0].shape == (2,)


def test_polyak_averaging_needs_params():
    tx = optax.chain(jol.sgd(0.1), jol.polyak_averaging())
    with pytest.raises(ValueError, match="`params`"):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)))


def test_averaged_params_without_averaging():
    tx = jol.adam(0.1)
    with pytest.raises(ValueError, match="`opt_state`"):
        jol.averaged_params(tx.init(jnp.ones(2)))


def test_landscape_shape_error():
    with pytest.raises(ValueError, match="`w`"):
        jol.landscapes.rosenbrock()(jnp.ones(3))
