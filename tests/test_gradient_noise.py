"""gradient_noise: the minibatch gradient's variance against the 1/S law (lectures 000, 003)."""

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jol
from jaxopt_lab.diagnostics import gradient_noise


class Batch(NamedTuple):
    x: jax.Array
    y: jax.Array


def least_squares(params, batch):
    return 0.5 * jnp.mean((batch.x @ params["w"] + params["b"] - batch.y) ** 2)


def least_squares_data(n=2048, d=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x @ np.arange(1.0, d + 1.0) + 0.5 * rng.normal(size=n)).astype(np.float32)
    return Batch(x, y)


LS_PARAMS = {"w": jnp.zeros(4), "b": jnp.zeros(())}


def mean_distance(params, batch):
    """0.5 mean |w - x_i|^2: per-example gradient w - x_i, all by hand."""
    return 0.5 * jnp.mean(jnp.sum((params[None, :] - batch.x) ** 2, axis=-1))


# four points of a square: mean (1, 1), each at squared distance 2 from it
SQUARE = Batch(jnp.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]]), jnp.zeros(4))


def test_least_squares_variance_follows_the_one_over_s_law():
    data = least_squares_data()
    n = 2048
    sizes = (4, 32, 256, n)
    out = gradient_noise(least_squares, LS_PARAMS, data, sizes, num_batches=256)
    np.testing.assert_array_equal(out.batch_sizes, sizes)
    assert out.num_examples == n and out.num_batches == 256
    # the exact per-example quantities, from the gradients written out by hand
    r = np.asarray(data.x, np.float64) @ np.zeros(4) - np.asarray(data.y, np.float64)
    g = np.concatenate([np.asarray(data.x, np.float64) * r[:, None], r[:, None]], axis=1)
    big_g = g.mean(0)
    assert out.grad_norm_sq == pytest.approx(np.sum(big_g**2), rel=1e-4)
    assert out.trace_sigma == pytest.approx(np.mean(np.sum((g - big_g) ** 2, 1)), rel=1e-4)
    want = out.trace_sigma / np.array(sizes) * (n - np.array(sizes)) / (n - 1)
    np.testing.assert_allclose(out.predicted_variance, want, rtol=1e-12)
    # measured within sampling error of the prediction (S < N)
    for var, pred, err in zip(
        out.variance[:-1], out.predicted_variance[:-1], out.variance_stderr[:-1], strict=True
    ):
        assert abs(var - pred) <= 0.25 * pred
        assert abs(var - pred) <= 4 * err
    # ~1/S: S * variance / (finite-population factor) stays at tr(Sigma)
    s = np.array(sizes[:-1], np.float64)
    scaled = out.variance[:-1] * s * (n - 1) / (n - s)
    np.testing.assert_allclose(scaled, out.trace_sigma, rtol=0.25)
    assert np.all(np.diff(out.variance) < 0)
    # S = N: the minibatch is the whole data set
    assert out.predicted_variance[-1] == 0.0
    assert out.variance[-1] <= 1e-10 * out.trace_sigma


def test_sigma_normalisation_makes_the_formula_exact_without_replacement():
    # every subset of size S of six examples, enumerated: the exact E|g_B - G|^2
    data = Batch(jnp.array([[0.0], [1.0], [3.0], [4.0], [7.0], [9.0]]), jnp.zeros(6))
    w = jnp.array([2.0])
    g = np.asarray(w, np.float64)[None, :] - np.asarray(data.x, np.float64)
    big_g = g.mean(0)
    out = gradient_noise(mean_distance, w, data, (1, 2, 3, 6), num_batches=8)
    for s, pred in zip(out.batch_sizes, out.predicted_variance, strict=True):
        exact = np.mean(
            [np.sum((g[list(b)].mean(0) - big_g) ** 2) for b in itertools.combinations(range(6), s)]
        )
        assert pred == pytest.approx(exact, rel=1e-6, abs=1e-12)


def test_noise_scale_closed_form():
    # g_i = w - x_i, G = w - (1, 1) = (2, 0): |G|^2 = 4, tr(Sigma) = mean |x_i - xbar|^2 = 2
    out = gradient_noise(mean_distance, jnp.array([3.0, 1.0]), SQUARE, (1, 2, 4), num_batches=256)
    assert out.grad_norm_sq == pytest.approx(4.0)
    assert out.trace_sigma == pytest.approx(2.0)
    assert out.noise_scale == pytest.approx(0.5)
    np.testing.assert_allclose(out.predicted_variance, [2.0, 2.0 / 3.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(out.variance, out.predicted_variance, rtol=0.25, atol=1e-10)
    # at the minimum G = 0: the noise scale is infinite
    at_min = gradient_noise(mean_distance, jnp.array([1.0, 1.0]), SQUARE, (2,), num_batches=4)
    assert at_min.grad_norm_sq == 0.0 and at_min.noise_scale == np.inf


def test_digits_logistic_regression():
    problem = jol.problems.logistic()
    params = problem.init_fn(jax.random.key(0))
    out = gradient_noise(
        problem.loss_fn, params, problem.data, (8, 128), num_batches=256, key=jax.random.key(1)
    )
    np.testing.assert_allclose(out.variance, out.predicted_variance, rtol=0.25)
    assert np.all(np.diff(out.variance) < 0)
    assert out.num_examples == problem.data.x.shape[0]
    assert out.noise_scale == pytest.approx(out.trace_sigma / out.grad_norm_sq)
    assert 1.0 < out.noise_scale < problem.data.x.shape[0]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_sizes": (2, 5)}, ValueError, r"`batch_sizes` holds \[5\], more than the N = 4"),
        ({"batch_sizes": ()}, ValueError, "`batch_sizes` is empty"),
        ({"batch_sizes": (0,)}, ValueError, "`batch_sizes`"),
        ({"batch_sizes": (2.5,)}, TypeError, "`batch_sizes`"),
        ({"batch_sizes": "8"}, TypeError, "`batch_sizes`"),
        ({"batch_sizes": (2,), "num_batches": 0}, ValueError, "`num_batches`"),
        ({"batch_sizes": (2,), "key": 3}, TypeError, "`key`"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        gradient_noise(mean_distance, jnp.array([3.0, 1.0]), SQUARE, **kwargs)


def test_bad_problem_is_named():
    with pytest.raises(TypeError, match="`loss_fn` must return a real scalar"):
        gradient_noise(lambda p, b: b.x @ p, jnp.ones(2), SQUARE, (2,))
    with pytest.raises(TypeError, match="`params`"):
        gradient_noise(mean_distance, jnp.ones(2, jnp.int32), SQUARE, (2,))
    with pytest.raises(ValueError, match="`data`"):
        gradient_noise(mean_distance, jnp.ones(2), Batch(SQUARE.x, jnp.zeros(3)), (2,))
    # a single batch size may be given as an int
    assert gradient_noise(mean_distance, jnp.ones(2), SQUARE, 2, num_batches=2).batch_sizes == [2]
