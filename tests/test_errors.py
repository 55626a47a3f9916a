"""Bad configuration fails at construction with a message naming the argument; bad
parameters at ``init`` and bad gradients at ``update``, naming the leaf."""

import jax
import jax.numpy as jnp
import numpy as np
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
    (lambda: jol.rmsprop(0.1, momentum=1.0), "momentum"),
    (lambda: jol.adam(0.1, eps=float("inf")), "eps"),
    (lambda: jol.rmsprop(0.1, eps=float("inf")), "eps"),
    (lambda: jol.adagrad(0.1, eps=float("inf")), "eps"),
    (lambda: jol.normalized_sgd(0.1, eps=float("inf")), "eps"),
    (lambda: jol.adadelta(eps=float("inf")), "eps"),
    (lambda: jol.adam(0.1, eps=float("nan")), "eps"),
    (lambda: jol.newton(damping=float("inf")), "damping"),
    (lambda: jol.schedules.exponential_decay(0.1, float("inf")), "tau"),
    (lambda: jol.adam(0.1, b1=1.0), "b1"),
    (lambda: jol.adam(0.1, b2=1.2), "b2"),
    (lambda: jol.adam(0.1, eps=-1e-8), "eps"),
    (lambda: jol.adam(-1e-3), "learning_rate"),
    (lambda: jol.adadelta(rho=1.0), "rho"),
    (lambda: jol.adadelta(eps=-1.0), "eps"),
    (lambda: jol.delta_bar_delta(0.1, kappa=-0.1, phi=0.1, gamma=0.5), "kappa"),
    (lambda: jol.delta_bar_delta(0.1, kappa=float("inf"), phi=0.1, gamma=0.5), "kappa"),
    (lambda: jol.delta_bar_delta(0.1, kappa=0.1, phi=1.0, gamma=0.5), "phi"),
    (lambda: jol.delta_bar_delta(0.1, kappa=0.1, phi=0.1, gamma=1.0), "gamma"),
    (lambda: jol.polyak_averaging(kind="median"), "kind"),
    (lambda: jol.polyak_averaging(kind="ema"), "decay"),
    (lambda: jol.polyak_averaging(kind="ema", decay=1.0), "decay"),
    (lambda: jol.polyak_averaging(kind="uniform", decay=0.9), "decay"),
    (lambda: jol.schedules.linear_decay(0.1, 0.01, 0), "transition_steps"),
    (lambda: jol.schedules.exponential_decay(-0.1, 10.0), "init_value"),
    (lambda: jol.schedules.inverse_time(0.1, -1.0), "tau"),
    # a concrete array hyperparameter must be a scalar, whatever its values
    (lambda: jol.adam(jnp.array([0.1, -0.1])), "learning_rate"),
    (lambda: jol.adam(jnp.array([0.1, 0.2])), "learning_rate"),
    (lambda: jol.momentum(0.1, np.array([0.9])), "beta"),
]


@pytest.mark.parametrize(("make", "name"), BAD)
def test_bad_configuration_names_the_argument(make, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        make()


def test_non_scalar_array_message_names_the_shape():
    with pytest.raises(ValueError, match=r"`learning_rate` must be a scalar.*shape \(2,\)"):
        jol.adam(jnp.array([0.1, 0.2]))


WRONG_TYPES = [
    (lambda: jol.sgd(None), "learning_rate", "None"),
    (lambda: jol.momentum(0.1, None), "beta", "None"),
    (lambda: jol.adam([0.1]), "learning_rate", r"\[0.1\]"),
    (lambda: jol.adam(0.1, b1=(0.9,)), "b1", "tuple"),
    (lambda: jol.rmsprop(0.1, decay=True), "decay", "bool"),
    (lambda: jol.adagrad("0.1"), "learning_rate", "str"),
    (lambda: jol.adadelta(rho=None), "rho", "None"),
    (lambda: jol.delta_bar_delta(0.1, None, 0.1, 0.5), "kappa", "None"),
    (lambda: jol.normalized_sgd(0.1, eps="1e-12"), "eps", "str"),
    (lambda: jol.polyak_averaging(kind="ema", decay=[0.9]), "decay", "list"),
    (lambda: jol.schedules.inverse_time(None, 10.0), "init_value", "None"),
    (lambda: jol.adam(0.1, b2=lambda k: 0.999), "b2", "schedule"),
    (lambda: jol.adam(0.1, bias_correction="no"), "bias_correction", "True or False"),
]


@pytest.mark.parametrize(("make", "name", "shown"), WRONG_TYPES)
def test_wrong_type_is_a_type_error_at_construction(make, name, shown):
    with pytest.raises(TypeError, match=f"`{name}`.*{shown}"):
        make()


def test_sgd_none_message_has_the_fix():
    with pytest.raises(TypeError) as info:
        jol.sgd(None)
    message = str(info.value)
    assert "`learning_rate` must be a real number or a schedule" in message
    assert "Pass e.g. 0.01" in message


def test_concrete_scalars_and_schedules_are_accepted():
    params = jnp.ones(3)
    for tx in (
        jol.adam(jnp.array(0.1), np.float32(0.9), jnp.float32(0.999), np.float64(1e-8)),
        jol.momentum(np.array(0.1), jnp.array(0.5)),
        jol.sgd(1),  # an int learning rate is a real number
        jol.sgd(jol.schedules.linear_decay(0.1, 0.0, 10)),
        jol.rmsprop(0.1, momentum=jnp.array(0.9)),
    ):
        u, _ = tx.update(params, tx.init(params), params)
        assert np.isfinite(np.asarray(u)).all()
    # optax's schedules compare the int32 count with a float (implicit promotion, which the
    # tests' strict mode refuses): an optax schedule runs under JAX's default
    tx = jol.sgd(optax.cosine_decay_schedule(0.1, 100))
    with jax.numpy_dtype_promotion("standard"):
        u, _ = tx.update(params, tx.init(params), params)
    assert np.isfinite(np.asarray(u)).all()


def test_vmap_over_eps_and_kappa_is_not_checked_but_runs():
    params = {"w": jnp.array([1.0, -2.0])}

    def run(eps):
        tx = jol.adam(0.1, eps=eps)
        return tx.update(params, tx.init(params), params)[0]["w"]

    out = jax.vmap(run)(jnp.array([1e-8, 1e-3]))
    assert out.shape == (2, 2) and np.isfinite(np.asarray(out)).all()
    kappas = jnp.array([0.0, 0.1])
    out = jax.vmap(lambda k: jol.delta_bar_delta(0.1, k, 0.1, 0.5).init(params))(kappas)
    assert jax.tree.leaves(out)[0].shape == (2, 2)


@pytest.mark.parametrize(
    "make", [lambda: jol.adam(0.1), lambda: jol.sgd(0.1), lambda: jol.momentum(0.1, 0.9)]
)
def test_integer_parameters_are_refused_at_init(make):
    with pytest.raises(TypeError, match=r"`params`\['w'\] has dtype int32.*float32"):
        make().init({"b": jnp.zeros(2), "w": jnp.array([1, 2, 3])})


def test_mismatched_gradient_tree_names_the_leaf():
    params = {"b": jnp.zeros(()), "w": jnp.ones(3)}
    tx = jol.adam(0.1)
    state = tx.init(params)
    with pytest.raises(ValueError, match=r"`updates`.*no leaf at \['b'\]"):
        tx.update({"w": jnp.ones(3)}, state, params)
    # shapes are static: refused while tracing, before anything is broadcast
    short = {"b": jnp.zeros(()), "w": jnp.ones(1)}
    with pytest.raises(ValueError, match=r"`updates`\['w'\] has shape \(1,\).*\(3,\)"):
        jax.jit(tx.update)(short, state)
    with pytest.raises(ValueError, match=r"`updates`\['w'\] has shape \(1,\)"):
        jol.sgd(0.1).update(short, jol.sgd(0.1).init(params), params)


def _adam_run(tx, params, steps=20):
    loss = lambda p: 0.5 * jnp.sum(1000.0 * jnp.square(p - jnp.array([0.0, 0.0, 0.5], p.dtype)))
    state = tx.init(params)
    for _ in range(steps):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def test_float16_adam_stays_finite_where_optax_does_not():
    # gradients of 1e3 to 2e3: their squares overflow float16 (max 65504), and
    # eps = 1e-8 is 0 in float16, so a zero gradient gives 0 / 0
    w0 = jnp.array([1.0, 2.0, 0.5])
    ref, _ = _adam_run(jol.adam(1e-2), w0)
    ours, state = _adam_run(jol.adam(1e-2), w0.astype(jnp.float16))
    with jax.numpy_dtype_promotion("standard"):  # optax's `b1**count` promotes implicitly
        theirs, _ = _adam_run(optax.adam(1e-2), w0.astype(jnp.float16))
    assert not np.isfinite(np.asarray(theirs, np.float32)).all()  # optax: NaN
    assert ours.dtype == jnp.float16
    assert state[0].mu.dtype == state[0].nu.dtype == jnp.float32  # moments in float32
    np.testing.assert_allclose(np.asarray(ours, np.float32), ref, rtol=1e-2, atol=2e-3)
    assert not np.allclose(np.asarray(ours, np.float32), w0)  # and it moved


@pytest.mark.parametrize(
    "make",
    [
        lambda: jol.rmsprop(1e-2),
        lambda: jol.adagrad(1e-1),
        lambda: jol.adadelta(),
        lambda: jol.normalized_sgd(1e-2),
    ],
)
def test_float16_second_moments_stay_finite(make):
    w0 = jnp.array([1.0, 2.0, 0.5])
    ref, _ = _adam_run(make(), w0, steps=5)
    ours, _ = _adam_run(make(), w0.astype(jnp.float16), steps=5)
    assert ours.dtype == jnp.float16
    np.testing.assert_allclose(np.asarray(ours, np.float32), ref, rtol=1e-2, atol=2e-3)


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
