"""The sharpness callback: exact on a quadratic, warm-started, and inside jol.train."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _curvature_problems import digits_like

import jaxopt_lab as jol
from jaxopt_lab import curvature

LAM = jnp.array([0.5, 1.0, 2.0, 3.0, 5.0, 8.0])


def quadratic(w, batch=None):
    del batch
    return 0.5 * jnp.sum(LAM * w**2)


def test_reports_the_exact_lambda_max_of_a_quadratic():
    cb = curvature.sharpness_callback(quadratic, every=5, learning_rate=0.1)
    w = jnp.ones(6)
    state, metrics = jax.jit(cb)(jnp.int32(0), w, cb.init(w))
    assert set(metrics) == {
        "sharpness",
        "2/learning_rate",
        "sharpness_converged",
        "sharpness_matvecs",
        "stability_threshold",  # without an optimizer: gradient descent's, = 2 / lr
    }
    np.testing.assert_allclose(metrics["sharpness"], 8.0, rtol=1e-6)
    np.testing.assert_allclose(metrics["stability_threshold"], 20.0, rtol=1e-6)
    np.testing.assert_allclose(metrics["2/learning_rate"], 20.0)
    assert float(metrics["sharpness_converged"]) == 1.0
    np.testing.assert_allclose(jnp.abs(state.vector), jnp.eye(6)[5], atol=1e-4)  # e_6
    assert cb.every == 5


def test_schedule_is_evaluated_at_the_step_and_no_rate_means_no_bound():
    schedule = optax.linear_schedule(0.2, 0.1, transition_steps=10)
    cb = curvature.sharpness_callback(quadratic, every=1, learning_rate=schedule)
    _, metrics = cb(jnp.int32(10), jnp.ones(6), cb.init(jnp.ones(6)))
    np.testing.assert_allclose(metrics["2/learning_rate"], 20.0, rtol=1e-6)
    plain = curvature.sharpness_callback(quadratic, every=1)
    _, metrics = plain(jnp.int32(0), jnp.ones(6), plain.init(jnp.ones(6)))
    assert "2/learning_rate" not in metrics


def _linear_loss(w, batch):
    x, y = batch
    return 0.5 * jnp.mean((x @ w - y) ** 2)


def test_warm_start_from_the_previous_eigenvector_on_a_data_subset():
    x, labels = digits_like(200)
    data = (x, labels.astype(jnp.float32))
    exact = np.linalg.eigvalsh(np.asarray(x.T @ x, np.float64) / 200)[-1]  # H = X^T X / N
    cb = curvature.sharpness_callback(_linear_loss, data, every=1, tol=1e-4, batch_size=64)
    call = jax.jit(cb)
    w = jnp.zeros(64)
    state, first = call(jnp.int32(0), w, cb.init(w))
    _, second = call(jnp.int32(1), w, state)  # same point, warm-started
    np.testing.assert_allclose([first["sharpness"], second["sharpness"]], exact, rtol=1e-4)
    assert float(second["sharpness_matvecs"]) <= 4 < float(first["sharpness_matvecs"])


def test_inside_jol_train_records_sharpness_next_to_the_bound():
    steps, every = 20, 5
    cb = curvature.sharpness_callback(quadratic, every=every, learning_rate=0.1)
    result = jol.train(
        quadratic,
        jnp.ones(6),
        optax.sgd(0.1),
        jnp.zeros((8, 1)),
        steps=steps,
        key=None,
        callbacks=(cb,),
        progress=False,
    )
    history = result.history
    sharp = np.asarray(history["sharpness"])
    evaluated = np.asarray(history["step"]) % every == 0
    np.testing.assert_allclose(sharp[evaluated], 8.0, rtol=1e-4)
    assert np.all(np.isnan(sharp[~evaluated]))
    np.testing.assert_allclose(np.asarray(history["2/learning_rate"])[evaluated], 20.0)
