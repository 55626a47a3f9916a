"""Per-block spectra: the diagonal blocks of the Hessian, GGN and Fisher, and their plot."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _curvature_problems import digits_like, mlp_loss, mlp_params
from jax.flatten_util import ravel_pytree

import jaxopt_lab as jol
from jaxopt_lab import curvature

DATA = digits_like(32)
PARAMS = mlp_params(hidden=3)  # w1 192, b1 3, w2 30, b2 10: 235 parameters


def _dense_blocks(matrix, params):
    """name -> the diagonal block of ``matrix`` (ravel order: sorted keys)."""
    out, offset = {}, 0
    for name in sorted(params):
        n = params[name].size
        out[name] = np.asarray(matrix[offset : offset + n, offset : offset + n], np.float64)
        offset += n
    return out


def _hessian(params):
    flat, unravel = ravel_pytree(params)
    return jax.hessian(lambda f: mlp_loss(unravel(f), DATA))(flat)


def test_blocks_are_the_eigenvalues_of_the_dense_hessians_diagonal_blocks():
    result = curvature.block_spectra(mlp_loss, PARAMS, DATA, k=3, num_probes=40, tol=1e-6)
    assert result.names == ["b1", "b2", "w1", "w2"]  # a top-level leaf is its own block
    blocks = _dense_blocks(_hessian(PARAMS), PARAMS)
    for i, name in enumerate(result.names):
        want = np.linalg.eigvalsh(blocks[name])[::-1]
        kb = min(3, want.size)
        np.testing.assert_allclose(result.eigenvalues[i, :kb], want[:kb], rtol=1e-4, atol=1e-7)
        assert result.sizes[i] == blocks[name].shape[0]
        if result.sizes[i] <= 40:  # exact
            assert result.trace[i] == pytest.approx(np.trace(blocks[name]), rel=1e-5)
            assert result.trace_se[i] == 0.0
        else:  # Hutchinson: within 4 standard errors
            assert abs(result.trace[i] - np.trace(blocks[name])) < 4 * result.trace_se[i]
    assert bool(result.converged.all())
    table = result.table()
    assert list(table["block"]) == result.names and "lambda_3" in table
    assert "w1" in result.format() and "trace" in result.format()
    # the eigenvalues alone: no Hutchinson probes for the blocks above num_probes
    alone = curvature.block_spectra(
        mlp_loss, PARAMS, DATA, k=3, num_probes=40, tol=1e-6, with_trace=False
    )
    np.testing.assert_allclose(alone.eigenvalues, result.eigenvalues, rtol=1e-5)
    assert np.isnan(alone.trace[result.sizes > 40]).all()
    np.testing.assert_allclose(alone.trace[result.sizes <= 40], result.trace[result.sizes <= 40])


def test_a_partition_of_the_users_own():
    # one block per layer, from a function of the leaf path: w1 with b1, w2 with b2
    layer = lambda path: "layer" + path[-1]
    result = curvature.block_spectra(mlp_loss, PARAMS, DATA, blocks=layer, tol=1e-6)
    assert result.names == ["layer1", "layer2"] and list(result.sizes) == [195, 40]
    h = np.asarray(_hessian(PARAMS), np.float64)
    order = {n: i for i, n in enumerate(sorted(PARAMS))}
    starts = np.cumsum([0] + [PARAMS[n].size for n in sorted(PARAMS)])
    idx = np.concatenate([np.arange(starts[order[n]], starts[order[n] + 1]) for n in ("b1", "w1")])
    top = np.linalg.eigvalsh(h[np.ix_(idx, idx)])[-1]
    assert result.eigenvalues[0, 0] == pytest.approx(top, rel=1e-4)
    # a dict of blocks (a prefix, a predicate); leaves in no block are left out
    picked = curvature.block_spectra(
        mlp_loss, PARAMS, DATA, blocks={"first": "w1", "biases": lambda p: p.startswith("b")}
    )
    assert picked.names == ["biases", "first"] and picked.leaves[0] == ["b1", "b2"]


def test_blocks_of_the_ggn_and_the_fisher():
    def apply(p, x):
        return jnp.tanh(x @ p["w1"] + p["b1"][None, :]) @ p["w2"] + p["b2"][None, :]

    ggn = curvature.ggn_operator(apply, "cross_entropy", PARAMS, DATA)
    blocks = _dense_blocks(ggn.dense(), PARAMS)
    for curv in ("ggn", "fisher"):
        result = curvature.block_spectra((apply, "cross_entropy"), PARAMS, DATA, curvature=curv)
        assert result.curvature == curv and bool((result.eigenvalues >= -1e-6).all())
    result = curvature.block_spectra((apply, "cross_entropy"), PARAMS, DATA, curvature="ggn")
    for i, name in enumerate(result.names):
        want = np.linalg.eigvalsh(blocks[name])[-1]
        assert result.eigenvalues[i, 0] == pytest.approx(want, rel=1e-4)
    # an operator works as well
    same = curvature.block_spectra(ggn)
    np.testing.assert_allclose(same.eigenvalues, result.eigenvalues, rtol=1e-5)


def test_block_spectra_plot():
    result = curvature.block_spectra(mlp_loss, PARAMS, DATA, k=2)
    _, (ax_eig, ax_tr) = jol.plot.block_spectra(result)
    ticks = {t.get_text(): t.get_position()[1] for t in ax_eig.get_yticklabels()}
    assert sorted(ticks, key=lambda n: -ticks[n]) == result.names  # the first block on top
    assert len(ax_tr.patches) == len(result.names)  # one bar per block
    assert ax_eig.get_xscale() == "log"
    with pytest.raises(TypeError, match="`result` must be"):
        jol.plot.block_spectra({"names": []})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"blocks": 3}, TypeError, "`blocks` must be None"),
        ({"blocks": lambda p: None}, ValueError, "selects no parameter"),
        ({"blocks": lambda p: 1}, TypeError, "block name"),
        ({"blocks": {"a": "w1", "b": lambda p: p.startswith("w")}}, ValueError, "several"),
        ({"curvature": "kfac"}, ValueError, "`curvature`"),
        ({"curvature": "ggn"}, TypeError, "(apply_fn, output_loss)"),
        ({"k": 0}, ValueError, "`k`"),
    ],
)
def test_block_spectra_refuses_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        curvature.block_spectra(mlp_loss, PARAMS, DATA, **kwargs)
