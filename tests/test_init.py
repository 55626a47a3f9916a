"""jol.init: the lectures' initialization heuristics against their closed forms, and
their effect on the units of a deep network (jol.diagnostics.unit_health)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import stats

import jaxopt_lab as jol
from jaxopt_lab import init

KEY = jax.random.key(0)


# --- closed forms ------------------------------------------------------------------------


def test_lecture_uniform_is_u_of_one_over_sqrt_fan_in():
    m, n = 200, 300
    w = np.asarray(init.lecture_uniform()(KEY, (m, n)), np.float64)
    assert w.dtype == np.float64 and np.abs(w).max() <= 1 / np.sqrt(m)
    assert np.abs(w).max() > 0.99 / np.sqrt(m)  # the whole interval is used
    # U(-a, a) has variance a^2 / 3: here 1 / (3 m)
    assert w.var() == pytest.approx(1 / (3 * m), rel=0.03)
    assert abs(w.mean()) < 1e-3
    # a convolution kernel (3, 3, 16, 32): the fan-in is 3 * 3 * 16
    conv = np.asarray(init.lecture_uniform()(KEY, (3, 3, 16, 32)))
    assert np.abs(conv).max() <= 1 / np.sqrt(144) and conv.var() == pytest.approx(1 / 432, rel=0.05)


def test_normalized_is_glorot_uniform():
    m, n = 200, 100
    w = np.asarray(init.normalized()(KEY, (m, n)))
    a = np.sqrt(6 / (m + n))
    assert np.abs(w).max() <= a and np.abs(w).max() > 0.99 * a
    assert w.var() == pytest.approx(2 / (m + n), rel=0.03)  # a^2 / 3
    np.testing.assert_array_equal(w, jax.nn.initializers.glorot_uniform()(KEY, (m, n)))


def test_orthogonal_gives_orthonormal_columns_or_rows():
    tall = init.orthogonal()(KEY, (64, 32))
    np.testing.assert_allclose(tall.T @ tall, np.eye(32), atol=1e-5)
    wide = init.orthogonal(scale=2.0)(KEY, (16, 48))
    np.testing.assert_allclose(wide @ wide.T, 4 * np.eye(16), atol=1e-4)


def test_sparse_has_k_normal_nonzeros_per_unit():
    k, s = 15, 2.0
    w = np.asarray(init.sparse(k, s)(KEY, (100, 80)))
    assert w.shape == (100, 80)
    np.testing.assert_array_equal((w != 0).sum(axis=0), np.full(80, k))
    # the positions differ from unit to unit
    assert len({tuple(np.flatnonzero(col)) for col in w.T}) == 80
    values = w[w != 0]  # 1200 draws of N(0, s^2)
    assert values.std() == pytest.approx(s, rel=0.06)
    assert abs(values.mean()) < 4 * s / np.sqrt(values.size)
    assert stats.kstest(values / s, "norm").pvalue > 0.01
    # fan-in is every axis but the last
    conv = np.asarray(init.sparse(k=5)(KEY, (3, 3, 4, 8)))
    np.testing.assert_array_equal((conv.reshape(36, 8) != 0).sum(axis=0), np.full(8, 5))
    assert init.sparse(k=3)(KEY, (10, 4), jnp.bfloat16).dtype == jnp.bfloat16


def test_sparse_refuses_bad_arguments():
    with pytest.raises(ValueError, match=r"`k` = 15 exceeds the fan-in 10"):
        init.sparse()(KEY, (10, 4))
    with pytest.raises(ValueError, match="`k`"):
        init.sparse(k=0)
    with pytest.raises(TypeError, match="`k`"):
        init.sparse(k=2.5)
    with pytest.raises(ValueError, match="`scale`"):
        init.sparse(scale=-1.0)
    with pytest.raises(ValueError, match="`shape`"):
        init.sparse(k=1)(KEY, (10,))
    with pytest.raises(TypeError, match="`dtype`"):
        init.sparse(k=1)(KEY, (10, 2), jnp.int32)
    with pytest.raises(ValueError, match="`scale`"):
        init.orthogonal(scale=0.0)


@pytest.mark.parametrize(
    "make", [init.lecture_uniform, init.normalized, init.orthogonal, lambda: init.sparse(k=4)]
)
def test_initializers_plug_into_nnx_linear(make):
    layer = nnx.Linear(20, 6, kernel_init=make(), param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    kernel = layer.kernel.get_value()
    assert kernel.shape == (20, 6) and kernel.dtype == jnp.bfloat16
    assert bool(jnp.any(kernel != 0))


# --- LSUV ------------------------------------------------------------------------------------


def _mlp(sizes, key, bias_std=0.0):
    keys = jax.random.split(key, 2 * len(sizes))
    return [
        {
            "w": jax.random.normal(keys[2 * i], (m, n)),
            "b": bias_std * jax.random.normal(keys[2 * i + 1], (n,)),
        }
        for i, (m, n) in enumerate(itertools.pairwise(sizes))
    ]


def _preactivations(activation):
    def apply_fn(params, x):
        layers = params.values() if isinstance(params, dict) else params
        outs = []
        for layer in layers:
            z = x @ layer["w"] + layer["b"][None, :]
            outs.append(z)
            x = activation(z)
        return dict(zip(params, outs, strict=True)) if isinstance(params, dict) else outs

    return jax.jit(apply_fn)


@pytest.mark.parametrize("activation", [jnp.tanh, jax.nn.relu], ids=["tanh", "relu"])
def test_lsuv_gives_unit_output_variance_in_every_layer(activation):
    sizes = [16] + [32] * 8
    params = _mlp(sizes, KEY, bias_std=0.3)  # biases: LSUV needs more than one rescaling
    before = [np.asarray(layer["w"]) for layer in params]
    x = jax.random.normal(jax.random.key(1), (256, 16))
    apply_fn = _preactivations(activation)
    result = init.lsuv(apply_fn, params, x, key=jax.random.key(2), tol=0.05)
    assert result.converged == (True,) * 8
    assert all(1 <= n <= 10 for n in result.iterations)
    # measured afresh, not taken from the result
    variances = [float(jnp.var(z)) for z in apply_fn(result.params, x)]
    np.testing.assert_allclose(variances, 1.0, atol=0.05)
    np.testing.assert_allclose(variances, result.variances, rtol=1e-5)
    # the kernels are rescaled orthogonal matrices: WW' = c^2 I (16 x 32), W'W = c^2 I after
    first = result.params[0]["w"]
    for gram in [first @ first.T] + [layer["w"].T @ layer["w"] for layer in result.params[1:]]:
        gram = np.asarray(gram)
        np.testing.assert_allclose(gram, gram[0, 0] * np.eye(len(gram)), atol=1e-4 * gram[0, 0])
    for w, layer in zip(before, params, strict=True):  # the input is left alone
        np.testing.assert_array_equal(w, layer["w"])


def test_lsuv_without_bias_needs_one_rescaling_and_takes_dicts():
    params = dict(zip(["a", "b", "c"], _mlp([8, 24, 24, 4], KEY), strict=True))
    for layer in params.values():
        layer["b"] = jnp.zeros_like(layer["b"])
    x = jax.random.normal(jax.random.key(1), (128, 8))
    result = init.lsuv(_preactivations(jnp.tanh), params, x)  # no key: start from params
    assert result.iterations == (1, 1, 1)  # the output is linear in the layer's own W
    np.testing.assert_allclose(result.variances, 1.0, atol=1e-4)
    assert sorted(result.params) == ["a", "b", "c"]


def test_lsuv_refuses_what_it_cannot_rescale():
    params = _mlp([4, 8, 2], KEY)
    with pytest.raises(ValueError, match=r"variance 0\.0 on `batch`"):
        init.lsuv(_preactivations(jnp.tanh), params, jnp.zeros((16, 4)))
    x = jnp.ones((16, 4))
    with pytest.raises(ValueError, match=r"must return a list of 2 arrays"):
        init.lsuv(lambda p, x: x, params, x)
    with pytest.raises(ValueError, match="'w'"):
        init.lsuv(_preactivations(jnp.tanh), [{"kernel_matrix": jnp.ones((4, 8))}], x)
    with pytest.raises(ValueError, match="`tol`"):
        init.lsuv(_preactivations(jnp.tanh), params, x, tol=0.0)
    with pytest.raises(TypeError, match="`key`"):
        init.lsuv(_preactivations(jnp.tanh), params, x, key=3)


# --- effect on the units of a deep tanh network (lecture 000's recap: initial scale of W) ---


class _DeepTanh(nnx.Module):
    def __init__(self, kernel_init, depth=10, width=64, rngs=None):
        self.layers = nnx.List(
            [
                nnx.Linear(16 if i == 0 else width, width, kernel_init=kernel_init, rngs=rngs)
                for i in range(depth)
            ]
        )

    def __call__(self, x):
        for layer in self.layers:
            x = jnp.tanh(layer(x))
        return x


X = jax.random.normal(jax.random.key(1), (32, 16))


def _health(kernel_init):
    acts = jol.diagnostics.record_activations(_DeepTanh(kernel_init, rngs=nnx.Rngs(0)), X)
    whole = jol.diagnostics.unit_health(acts, "tanh", preactivation=True)
    # unit_health counts a unit saturated when it is flat on every example of the batch;
    # per example: the fraction of units flat on that example, averaged over examples
    per_example = np.mean(
        [
            list(
                jol.diagnostics.unit_health(
                    {n: a[i : i + 1] for n, a in acts.items()}, "tanh", preactivation=True
                ).saturated_fraction.values()
            )
            for i in range(X.shape[0])
        ],
        axis=0,
    )
    return acts, whole, per_example


def test_unit_weights_saturate_a_deep_tanh_net_and_normalized_init_does_not():
    _, big, big_per_example = _health(jax.nn.initializers.normal(1.0))
    _, good, good_per_example = _health(init.normalized())
    assert len(big.layers) == len(good.layers) == 10
    # N(0, 1) weights with fan-in 64: pre-activations of std ~ 8, most units flat
    assert np.all(big_per_example[1:] > 0.5)
    assert all(layer.mean_slope < 0.2 for layer in big.layers[1:])
    # the normalized initialization keeps every unit in its slope on every example
    assert np.all(good_per_example == 0.0) and good.healthy
    assert all(layer.mean_slope > 0.7 for layer in good.layers)


def test_a_too_small_scale_makes_activations_vanish():
    acts, small, _ = _health(jax.nn.initializers.normal(0.01))
    stds = [float(jnp.std(a)) for a in acts.values()]
    # each layer multiplies the scale by about 0.01 * sqrt(64 * Var(h)/Var(z)) = 0.08
    assert stds[-1] < 1e-9 * stds[0]
    # no unit is dead or saturated, every slope is ~1: the counts miss it, the
    # activation histogram (lecture 000's diagnostic) shows it
    assert small.healthy and all(layer.mean_slope > 0.99 for layer in small.layers)


def test_lsuv_rescues_the_saturated_net():
    sizes = [16] + [64] * 10
    params = _mlp(sizes, KEY)  # N(0, 1) weights: saturated, as above
    apply_fn = _preactivations(jnp.tanh)
    before = jol.diagnostics.unit_health(
        dict(enumerate(apply_fn(params, X))), "tanh", preactivation=True
    )
    after_params = init.lsuv(apply_fn, params, X, key=jax.random.key(3)).params
    after = jol.diagnostics.unit_health(
        dict(enumerate(apply_fn(after_params, X))), "tanh", preactivation=True
    )
    assert max(layer.mean_slope for layer in before.layers) < 0.3
    assert after.healthy and min(layer.mean_slope for layer in after.layers) > 0.4
