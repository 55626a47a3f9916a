"""Batch normalization (lectures 001 and 003): the formulas against nnx.BatchNorm, the
reparametrization argument, and the effect on the Hessian's condition number."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxopt_lab as jol
from jaxopt_lab.normalization import batch_norm


@pytest.mark.parametrize(("shape", "axis"), [((32, 5), 0), ((8, 4, 4, 3), (0, 1, 2))])
def test_formulas_match_nnx_batchnorm_in_training_mode(shape, axis):
    x = 3.0 + 2.0 * jax.random.normal(jax.random.key(0), shape)
    features = shape[-1]
    layer = nnx.BatchNorm(features, rngs=nnx.Rngs(0))
    layer.scale[...] = jnp.linspace(0.5, 2.0, features)
    layer.bias[...] = jnp.linspace(-1.0, 1.0, features)
    want = layer(x)  # training mode: batch statistics
    got = batch_norm(x, layer.scale[...], layer.bias[...], eps=layer.epsilon, axis=axis)
    np.testing.assert_allclose(got.out, want, rtol=1e-5, atol=1e-5)
    # the biased (1/m) variance, eps inside the square root
    flat = np.asarray(x).reshape(-1, features)
    np.testing.assert_allclose(got.var, flat.var(axis=0, ddof=0), rtol=1e-5)
    normalized = (flat - flat.mean(0)) / np.sqrt(flat.var(0) + 1e-5)
    np.testing.assert_allclose(
        np.asarray(got.normalized).reshape(-1, features), normalized, rtol=1e-4, atol=1e-5
    )
    # nnx's running averages move towards these batch statistics (momentum 0.99)
    np.testing.assert_allclose(layer.mean[...], 0.01 * got.mean, rtol=1e-5)


def _three_networks(x):
    """Lecture 003's three equivalent parametrizations of y = x z, followed by BN."""
    return {
        "1-layer": (lambda p: x * p["z"], {"z": jnp.asarray(4.0)}),
        "2-layer (shared)": (lambda p: x * p["w"] ** 2, {"w": jnp.asarray(2.0)}),
        "2-layer": (
            lambda p: x * p["w1"] * p["w2"],
            {"w1": jnp.asarray(2.0), "w2": jnp.asarray(2.0)},
        ),
    }


def test_weights_before_batchnorm_get_no_gradient_only_gamma_and_beta_move():
    x = jax.random.normal(jax.random.key(1), (16,))
    y = jnp.sin(x)
    updates = {}
    for name, (net, weights) in _three_networks(x).items():

        def loss(params, net=net):
            h = net(params["weights"])
            out = batch_norm(h[:, None], params["gamma"], params["beta"], eps=0.0).out[:, 0]
            return jnp.mean((out - y) ** 2)

        params = {"weights": weights, "gamma": jnp.asarray(1.5), "beta": jnp.asarray(0.2)}
        grads = jax.grad(loss)(params)
        for g in jax.tree.leaves(grads["weights"]):
            assert abs(float(g)) < 1e-6  # invariant to the weights: no update
        assert abs(float(grads["gamma"])) > 1e-2 and abs(float(grads["beta"])) > 1e-2
        updates[name] = (float(grads["gamma"]), float(grads["beta"]))
    # the same mapping gamma H' + beta in all three: the same update
    first = next(iter(updates.values()))
    for g in updates.values():
        np.testing.assert_allclose(g, first, rtol=1e-5)
    # without BN, the three updates of the same function differ (the lecture's point)
    steps = []
    for net, weights in _three_networks(x).values():
        grads = jax.grad(lambda w, net=net: jnp.mean((net(w) - y) ** 2))(weights)
        new = jax.tree.map(lambda w, g: w - 0.01 * g, weights, grads)
        steps.append(float(net(new)[0]))
    assert len({round(s, 6) for s in steps}) == 3


def test_batchnorm_on_the_inputs_conditions_the_hessian():
    # least squares on inputs with a large offset and unequal scales: the Hessian is the
    # input covariance (plus the mean's outer product), badly conditioned; batch-normalized
    # inputs make it the inputs' correlation matrix.
    key1, key2 = jax.random.split(jax.random.key(2))
    x = (
        jnp.asarray([5.0, -3.0])[None, :]
        + jax.random.normal(key1, (256, 2)) * jnp.asarray([1.0, 10.0])[None, :]
    )
    y = x @ jnp.asarray([0.5, -0.2]) + 0.1 * jax.random.normal(key2, (256,))

    def loss(params, inputs):
        return 0.5 * jnp.mean((inputs @ params["w"] + params["b"] - y) ** 2)

    params = {"w": jnp.zeros(2), "b": jnp.asarray(0.0)}
    raw = jol.curvature.analyze(loss, params, x)
    normed = jol.curvature.analyze(loss, params, batch_norm(x, eps=0.0).out)
    assert raw.condition_number > 100
    # normalized: the correlation matrix (eigenvalues 1 +- rho) and 1 for the bias
    rho = abs(float(np.corrcoef(np.asarray(x).T)[0, 1]))
    assert normed.condition_number == pytest.approx((1 + rho) / (1 - rho), rel=1e-3)
    assert normed.condition_number < raw.condition_number / 100


def test_bad_arguments_are_named():
    x = jnp.ones((4, 3))
    with pytest.raises(ValueError, match="`axis`"):
        batch_norm(x, axis=2)
    with pytest.raises(ValueError, match="`gamma`"):
        batch_norm(x, jnp.ones(2))
    with pytest.raises(ValueError, match="`eps`"):
        batch_norm(x, eps=-1.0)
    with pytest.raises(TypeError, match="`h`"):
        batch_norm(jnp.ones((4, 3), jnp.int32))
