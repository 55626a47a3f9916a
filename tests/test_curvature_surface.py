"""Loss surfaces: interpolation (Goodfellow et al.) and 2-D slices (Li et al.), and their plots."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

import jaxopt_lab as jol
from jaxopt_lab.curvature import Interpolation, LossSurface, interpolate, loss_surface

# A quadratic L(w) = L0 + 0.5 (w - w*)^T A (w - w*) on a pytree of 6 parameters, with
# A = Q diag(LAM) Q^T: its eigenvectors and eigenvalues are known.
LAM = np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
Q = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))[0]
A = (Q * LAM) @ Q.T
L0 = 1.5
CENTER = {"m": jnp.asarray(Q[:4, 0].reshape(2, 2) * 0.5, jnp.float32), "v": jnp.full(2, 0.3)}
_, UNRAVEL = ravel_pytree(CENTER)
W_STAR = ravel_pytree(CENTER)[0]
A32 = jnp.asarray(A, jnp.float32)


def quadratic(p):
    d = ravel_pytree(p)[0] - W_STAR
    return L0 + 0.5 * d @ (A32 @ d)


def eigvec(i):
    return UNRAVEL(jnp.asarray(Q[:, i], jnp.float32))


def closed_form(surface, l1, l2):
    bb, aa = np.meshgrid(surface.y, surface.x, indexing="ij")  # (gy, gx): row i is y[i]
    return L0 + 0.5 * (l1 * aa**2 + l2 * bb**2)


def quadratic_like(center):
    target = jax.tree.map(lambda x: 0.5 * x + 0.1, center)
    return lambda p: sum(
        jnp.sum((x - t) ** 2) for x, t in zip(*map(jax.tree.leaves, (p, target)), strict=True)
    )


def test_interpolate_between_a_point_and_itself_is_constant():
    p = {"w": jnp.arange(6.0).reshape(3, 2) / 6.0, "b": jnp.ones(2)}
    res = interpolate(quadratic_like(p), p, p, num=7)
    assert isinstance(res, Interpolation)
    np.testing.assert_allclose(res.alphas, np.linspace(0.0, 1.0, 7))
    np.testing.assert_allclose(res.losses, float(quadratic_like(p)(p)), rtol=1e-6)
    assert res.losses.shape == (7,) and np.ptp(res.losses) == 0.0


def test_interpolate_matches_the_closed_form_of_a_quadratic_also_outside_0_1():
    a, b = eigvec(0), jax.tree.map(lambda x: -2.0 * x, eigvec(1))
    alphas = np.linspace(-0.5, 1.5, 9)
    res = interpolate(
        lambda p: 0.5 * ravel_pytree(p)[0] @ (A32 @ ravel_pytree(p)[0]), a, b, alphas=alphas
    )
    wa, wb = Q[:, 0], -2.0 * Q[:, 1]
    expected = [0.5 * w @ A @ w for w in ((1 - t) * wa + t * wb for t in alphas)]
    np.testing.assert_allclose(res.alphas, alphas)
    np.testing.assert_allclose(res.losses, expected, rtol=1e-5)


def test_surface_along_given_eigenvectors_is_the_closed_form():
    s = loss_surface(quadratic, CENTER, directions=(eigvec(0), eigvec(2)), grid=(5, 4), span=0.8)
    assert isinstance(s, LossSurface)
    assert s.x.shape == (5,) and s.y.shape == (4,) and s.losses.shape == (4, 5)
    np.testing.assert_allclose([s.x[0], s.x[-1], s.y[0], s.y[-1]], [-0.8, 0.8, -0.8, 0.8])
    np.testing.assert_allclose(s.losses, closed_form(s, LAM[0], LAM[2]), rtol=1e-5)
    assert s.center_loss == pytest.approx(L0, rel=1e-6)
    assert jax.tree.structure(s.directions[0]) == jax.tree.structure(CENTER)


def test_surface_along_the_top_two_hessian_eigenvectors():
    s = loss_surface(quadratic, CENTER, directions="hessian", grid=(4, 5), span=0.5)
    # The signs of the eigenvectors are arbitrary: the closed form depends on a^2 and b^2.
    np.testing.assert_allclose(s.losses, closed_form(s, LAM[0], LAM[1]), rtol=1e-4)
    norms = [float(jnp.linalg.norm(ravel_pytree(d)[0])) for d in s.directions]
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)


def _net():
    k = jax.random.split(jax.random.key(3), 4)
    return {
        "dense": {"kernel": jax.random.normal(k[0], (3, 4)) * jnp.arange(1.0, 5.0)[None, :]},
        "conv": {"kernel": 0.1 * jax.random.normal(k[1], (2, 2, 3, 5)), "bias": jnp.ones(5)},
        "norm": {"scale": jax.random.normal(k[2], (4,))},
    }


def _net_loss(p, batch=None):
    del batch
    return sum(jnp.sum(jnp.tanh(x) ** 2) for x in jax.tree.leaves(p))


def test_filter_normalised_directions():
    p = _net()
    s = loss_surface(_net_loss, p, grid=3, key=jax.random.key(7))
    d1, d2 = s.directions
    for d in (d1, d2):
        for name in ("dense", "conv"):
            w, dw = np.asarray(p[name]["kernel"]), np.asarray(d[name]["kernel"])
            # each filter is a slice along the last (output) axis
            norms = [np.linalg.norm(t.reshape(-1, t.shape[-1]), axis=0) for t in (dw, w)]
            np.testing.assert_allclose(*norms, rtol=1e-5)
        assert not np.any(d["conv"]["bias"]) and not np.any(d["norm"]["scale"])
    assert not np.allclose(d1["dense"]["kernel"], d2["dense"]["kernel"])
    again = loss_surface(_net_loss, p, grid=3, key=jax.random.key(7))
    np.testing.assert_array_equal(again.directions[0]["conv"]["kernel"], d1["conv"]["kernel"])
    np.testing.assert_allclose(s.losses[1, 1], float(_net_loss(p)), rtol=1e-6)  # the centre


def test_chunks_give_the_losses_of_one_chunk():
    p = _net()
    one = loss_surface(_net_loss, p, grid=(6, 5))
    chunked = loss_surface(_net_loss, p, grid=(6, 5), chunk_size=7, progress=True)
    np.testing.assert_allclose(chunked.losses, one.losses, rtol=1e-6)
    assert chunked.center_loss == pytest.approx(one.center_loss, rel=1e-6)


def _regression_data():
    x = jax.random.normal(jax.random.key(0), (50, 3))
    y = x @ jnp.array([[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]]) + 0.1
    return x, y


def _regression_loss(p, batch):
    x, y = batch
    return jnp.mean((x @ p["w"] + p["b"][None, :] - y) ** 2)


def _direct(p, data):
    x, y = (np.asarray(t, np.float64) for t in data)
    w, b = (np.asarray(p[k], np.float64) for k in ("w", "b"))
    return np.mean((x @ w + b[None, :] - y) ** 2)


def test_data_in_batches_matches_the_mean_loss_over_all_examples():
    data = _regression_data()
    p = {"w": jnp.full((3, 2), 0.2), "b": jnp.zeros(2)}
    s = loss_surface(_regression_loss, p, data, grid=(3, 4), span=2.0, batch_size=16)
    d1, d2 = s.directions
    for i, j in [(0, 0), (1, 2), (3, 1)]:
        a, b = float(s.x[j]), float(s.y[i])
        at = jax.tree.map(lambda c, u, v, a=a, b=b: c + a * u + b * v, p, d1, d2)
        np.testing.assert_allclose(s.losses[i, j], _direct(at, data), rtol=1e-5)
    assert s.center_loss == pytest.approx(_direct(p, data), rel=1e-5)
    q = {"w": jnp.ones((3, 2)), "b": jnp.full(2, 0.5)}
    res = interpolate(_regression_loss, p, q, data, num=3, batch_size=16)
    mid = jax.tree.map(lambda u, v: 0.5 * (u + v), p, q)
    np.testing.assert_allclose(res.losses, [_direct(t, data) for t in (p, mid, q)], rtol=1e-5)


def _cross_entropy(model, batch):
    x, labels = batch
    logits = model(x)
    picked = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - picked)


def test_flax_nnx_module():
    x = jax.random.normal(jax.random.key(1), (20, 4))
    data = (x, jnp.arange(20) % 3)
    m_a, m_b = nnx.Linear(4, 3, rngs=nnx.Rngs(0)), nnx.Linear(4, 3, rngs=nnx.Rngs(1))
    graphdef, state_a = nnx.split(m_a)
    state_b = nnx.state(m_b)
    kernel_before = np.asarray(m_a.kernel[...])

    res = interpolate(_cross_entropy, m_a, m_b, data, num=3)
    mid = nnx.merge(graphdef, jax.tree.map(lambda u, v: 0.5 * (u + v), state_a, state_b))
    expected = [float(_cross_entropy(m, data)) for m in (m_a, mid, m_b)]
    np.testing.assert_allclose(res.losses, expected, rtol=1e-5)

    s = loss_surface(_cross_entropy, m_a, data, grid=3, span=0.5)
    d1, d2 = s.directions
    assert isinstance(d1, nnx.State)
    assert not np.any(d1["bias"][...]) and np.any(d1["kernel"][...])  # bias: ndim 1
    corner = jax.tree.map(lambda c, u, v: c - 0.5 * u + 0.5 * v, state_a, d1, d2)
    np.testing.assert_allclose(
        s.losses[2, 0], float(_cross_entropy(nnx.merge(graphdef, corner), data)), rtol=1e-5
    )
    assert s.center_loss == pytest.approx(expected[0], rel=1e-5)
    np.testing.assert_array_equal(m_a.kernel[...], kernel_before)  # the model is untouched


def test_plot_loss_surface_with_a_trajectory():
    s = loss_surface(quadratic, CENTER, directions=(eigvec(0), eigvec(1)), grid=(7, 6))
    ts = np.linspace(1.0, 0.0, 5)  # along 0.6 d1 - 0.3 d2 towards the centre
    snaps = [
        jax.tree.map(lambda c, u, v, t=t: c + t * (0.6 * u - 0.3 * v), CENTER, *s.directions)
        for t in ts
    ]
    fig, ax = jol.plot.loss_surface(s, trajectory=snaps, title="quadratic")
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"trajectory", "start", "end"} | {
        lab for lab in lines if lab.startswith("centre")
    }
    assert len(ax.get_lines()) == 4
    np.testing.assert_allclose(lines["trajectory"].get_xdata(), 0.6 * ts, atol=1e-5)
    np.testing.assert_allclose(lines["trajectory"].get_ydata(), -0.3 * ts, atol=1e-5)
    np.testing.assert_allclose(lines["start"].get_xydata()[0], [0.6, -0.3], atol=1e-5)
    assert len(fig.axes) == 2  # the panel and its colorbar
    assert ax.collections and ax.get_title() == "quadratic"

    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *snaps)  # a leading time axis
    _, ax2 = jol.plot.loss_surface(s, trajectory=stacked, log=False, levels=10)
    path = next(line for line in ax2.get_lines() if line.get_label() == "trajectory")
    np.testing.assert_allclose(path.get_xydata(), lines["trajectory"].get_xydata(), atol=1e-6)


def test_plot_interpolation_marks_the_end_points():
    res = Interpolation(np.linspace(-0.5, 1.5, 21), np.linspace(-0.5, 1.5, 21) ** 2 + 0.1)
    _, ax = jol.plot.interpolation(res)
    labels = [line.get_label() for line in ax.get_lines()]
    assert len(labels) == 3 and labels[0] == "loss"
    assert "theta_a" in labels[1] and "theta_b" in labels[2]
    np.testing.assert_allclose(ax.get_lines()[2].get_xydata()[0], [1.0, 1.1])
    assert ax.get_yscale() == "log" and len(ax.texts) == 2
    _, ax = jol.plot.interpolation(res._replace(losses=res.alphas**2), title="t")
    assert ax.get_yscale() == "linear" and ax.get_title() == "t"  # a zero loss: linear axis


P = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)}


def _sq(p):
    return sum(jnp.sum(x**2) for x in jax.tree.leaves(p))


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: interpolate(_sq, P, P, num=1), ValueError, "`num`"),
        (lambda: interpolate(_sq, P, P, num=2.5), TypeError, "`num`"),
        (lambda: interpolate(_sq, P, P, alphas=np.ones((2, 2))), ValueError, "`alphas`"),
        (
            lambda: interpolate(_sq, P, {"w": jnp.ones((2, 3)), "b": P["b"]}),
            ValueError,
            r"`params_b` has a leaf \['w'\]",
        ),
        (lambda: interpolate(_sq, P, {"w": P["w"]}), ValueError, "`params_b`"),
        (lambda: interpolate(_sq, nnx.Linear(2, 2, rngs=nnx.Rngs(0)), P), TypeError, "params_a"),
        (lambda: loss_surface(_sq, P, grid=(1, 5)), ValueError, "`grid"),
        (lambda: loss_surface(_sq, P, grid=(3, 3, 3)), ValueError, "`grid`"),
        (lambda: loss_surface(_sq, P, grid="big"), TypeError, "`grid`"),
        (lambda: loss_surface(_sq, P, span=0.0), ValueError, "`span`"),
        (lambda: loss_surface(_sq, P, span=float("inf")), ValueError, "`span`"),
        (lambda: loss_surface(_sq, P, directions="random"), ValueError, "`directions`"),
        (lambda: loss_surface(_sq, P, directions=(P,)), TypeError, "`directions`"),
        (
            lambda: loss_surface(_sq, P, directions=(P, {"w": P["w"], "b": jnp.ones(3)})),
            ValueError,
            r"`directions\[1\]` has a leaf \['b'\]",
        ),
        (lambda: loss_surface(_sq, jnp.ones(3)), ValueError, "`directions='filter'`"),
        (lambda: loss_surface(_sq, P, chunk_size=0), ValueError, "`chunk_size`"),
        (lambda: loss_surface(_sq, P, batch_size=0), ValueError, "`batch_size`"),
        (lambda: loss_surface(_sq, P, key=3), TypeError, "`key`"),
        (lambda: loss_surface(_sq, P, progress="yes"), TypeError, "`progress`"),
        (lambda: loss_surface(_sq, {"w": jnp.ones((2, 2), jnp.int32)}), TypeError, "`params`"),
        (lambda: loss_surface("loss", P), TypeError, "`loss_fn`"),
    ],
)
def test_bad_arguments_are_refused_by_name(call, error, name):
    with pytest.raises(error, match=name):
        call()


def test_bad_plot_arguments_are_refused_by_name():
    s = LossSurface(np.zeros(3), np.zeros(3), np.ones((3, 3)), (P, P), 1.0, P)
    with pytest.raises(ValueError, match="`levels`"):
        jol.plot.loss_surface(s, levels=1)
    with pytest.raises(ValueError, match="`trajectory`"):
        jol.plot.loss_surface(s, trajectory=[{"w": jnp.ones(3)}])
    with pytest.raises(ValueError, match="`surface`"):
        jol.plot.loss_surface(s._replace(losses=np.ones((2, 3))))
    with pytest.raises(TypeError, match="`result`"):
        jol.plot.interpolation(np.ones(3))
