"""standardize: centered, scaled inputs and the conditioning they buy (lectures 000, 001, 004)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_lab as jol
from jaxopt_lab.datasets import Standardized, standardize

DIGITS = jol.datasets.digits()


def condition_number(x):
    """lambda_max / lambda_min of the least-squares Hessian X'X/N of a linear unit."""
    x = np.asarray(x, np.float64)
    eigs = np.linalg.eigvalsh(x.T @ x / len(x))
    return eigs[-1] / eigs[0], eigs


def gd_steps(x, t, tol=1e-6, max_steps=100_000):
    """Gradient-descent steps on 0.5 mean((x w - t)^2) from w = 0 at the best fixed rate
    2/(lambda_max + lambda_min) until the loss gap falls below ``tol`` of the start's.

    The gap is 0.5 e'He for the error e = w - w* (exact for a quadratic)."""
    x, t = np.asarray(x, np.float64), np.asarray(t, np.float64)
    h = x.T @ x / len(x)
    _, eigs = condition_number(x)
    rate = 2.0 / (eigs[-1] + eigs[0])
    e = -np.linalg.lstsq(x, t, rcond=None)[0]
    gap = lambda e: 0.5 * e @ h @ e
    start = gap(e)
    for step in range(max_steps):
        if gap(e) <= tol * start:
            return step
        e = e - rate * (h @ e)
    return max_steps


def test_digits_train_means_zero_stds_one_constant_pixels_zero():
    st = standardize(DIGITS.train)
    assert isinstance(st, Standardized) and st.fields == ("x",)
    x, constant = st.data.x, st.constant["x"]
    assert x.dtype == np.float32 and x.shape == DIGITS.train.x.shape
    np.testing.assert_array_equal(st.data.y, DIGITS.train.y)  # labels untouched
    assert not np.isnan(x).any()
    np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x[:, ~constant].std(0), 1.0, rtol=1e-4)
    # the always-blank pixels: centered and left at exactly 0, no NaN from 0/0
    assert constant.sum() == 3 and np.all(DIGITS.train.x[:, constant] == 0.0)
    assert np.all(x[:, constant] == 0.0)
    np.testing.assert_allclose(st.mean["x"], DIGITS.train.x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(st.std["x"], DIGITS.train.x.astype(np.float64).std(0), rtol=1e-12)


def test_apply_uses_the_training_statistics():
    st = standardize(DIGITS.train)
    val = st.apply(DIGITS.validation)
    keep = ~st.constant["x"]
    want = (DIGITS.validation.x[:, keep] - st.mean["x"][keep]) / st.std["x"][keep]
    np.testing.assert_allclose(val.x[:, keep], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(val.y, DIGITS.validation.y)
    assert np.all(val.x[:, ~keep] == 0.0) and not np.isnan(val.x).any()
    # not the validation set's own statistics: its means are near 0, not exactly 0
    own = standardize(DIGITS.validation).data.x
    assert np.abs(val.x - own).max() > 1e-2
    assert np.abs(val.x.mean(0)).max() > 1e-2


def test_arrays_dicts_and_constant_columns():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(50, 3)).astype(np.float32)
    x[:, 1] = 1000.0  # constant: large, so rounding could fake a tiny spread
    st = standardize(x)
    assert st.fields == () and isinstance(st.mean, np.ndarray)
    assert st.constant.tolist() == [False, True, False]
    assert np.all(st.data[:, 1] == 0.0) and not np.isnan(st.data).any()
    np.testing.assert_allclose(st.data[:, [0, 2]].std(0), 1.0, rtol=1e-5)
    # validation data where the training-constant column varies: still 0 there
    other = rng.normal(size=(7, 3)).astype(np.float32)
    out = st.apply(other)
    assert np.all(out[:, 1] == 0.0)
    np.testing.assert_allclose(out[:, 0], (other[:, 0] - st.mean[0]) / st.std[0], rtol=1e-5)
    # a jax.Array stays one; integers become float32
    assert isinstance(standardize(jnp.asarray(x)).data, jax.Array)
    assert standardize(np.arange(12).reshape(6, 2)).data.dtype == np.float32
    # a dict: the named keys only
    d = standardize({"x": x, "z": x, "label": np.zeros(50)}, fields=("x", "z"))
    np.testing.assert_array_equal(d.data["x"], st.data)
    np.testing.assert_array_equal(d.data["z"], st.data)
    assert set(d.mean) == {"x", "z"} and d.apply({"x": other, "z": other})["z"].shape == (7, 3)


def test_offset_inputs_condition_number_and_gradient_descent_steps():
    # lecture 000's ravine: a common offset (x ~ N(5, 1)) and one feature in 10x the units
    rng = np.random.default_rng(1)
    x = rng.normal(5.0, 1.0, size=(1000, 2)) * np.array([1.0, 10.0])[None, :]
    t = x @ np.array([0.5, -0.2]) + 0.1 * rng.normal(size=1000)
    z = standardize(x).data
    # a linear unit: H = X'X/N, the inputs' second moments (lecture 001)
    raw, after = condition_number(x)[0], condition_number(z)[0]
    assert raw > 1e3 and after < 1.2
    steps_raw, steps_after = gd_steps(x, t), gd_steps(z, t - t.mean())
    assert steps_raw > 2_000 and steps_after <= 5
    # with a bias the offset direction is worse still; centering decouples it entirely
    with_bias = lambda a: np.concatenate([a, np.ones((len(a), 1))], axis=1)
    assert condition_number(with_bias(x))[0] > 1e5
    assert condition_number(with_bias(z))[0] < 1.2


def test_digits_condition_number_drops():
    st = standardize(DIGITS.train)
    keep = ~st.constant["x"]  # the blank pixels make X'X singular either way
    raw, _ = condition_number(DIGITS.train.x[:, keep])
    after, _ = condition_number(st.data.x[:, keep])
    assert raw > 1e6 and after < 1e3 and after < raw / 1e3


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: standardize(DIGITS.train, fields=("z",)), ValueError, "no field 'z'"),
        (lambda: standardize({"x": np.ones((3, 2))}, fields=("y",)), ValueError, "no key 'y'"),
        (lambda: standardize(DIGITS.train, fields=()), ValueError, "`fields`"),
        (lambda: standardize(DIGITS.train, eps=-1.0), ValueError, "`eps`"),
        (lambda: standardize((DIGITS.train.x, DIGITS.train.y)), TypeError, "`data`"),
        (lambda: standardize(np.array(["a", "b"])), TypeError, "`data`"),
        (lambda: standardize(np.float32(3.0)), ValueError, "`data`"),
        (lambda: standardize(DIGITS.train).apply(np.ones((2, 64))), TypeError, "`other`"),
        (
            lambda: standardize(DIGITS.train).apply(DIGITS.train._replace(x=np.ones((2, 5)))),
            ValueError,
            "`other.x` has features of shape",
        ),
        (lambda: standardize(np.ones((4, 3))).apply({"x": 1}), TypeError, "`other`"),
    ],
)
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
