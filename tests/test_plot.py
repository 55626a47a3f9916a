"""Plots: each function renders to a PNG of the expected size, without warnings."""

import io
import warnings

import matplotlib.image
import numpy as np
import pytest

from jaxopt_lab import landscapes, plot
from jaxopt_lab.curvature import SpectralDensity
from jaxopt_lab.sweep import SweepResult

DPI = 50


def _png_shape(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    buf.seek(0)
    return matplotlib.image.imread(buf, format="png").shape


def _render(make):
    """Builds and renders a figure with every warning turned into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = make()
        shape = _png_shape(fig)
    w, h = fig.get_size_inches()
    assert shape == (round(h * DPI), round(w * DPI), 4)
    return fig


def _history(steps=60, diverge_at=None):
    t = np.arange(steps + 1, dtype=float)
    rng = np.random.default_rng(0)
    train = 2.0 * np.exp(-t / 15) + 0.05
    history = {
        "step": (t * 5).astype(np.int32),
        "train_loss": train,
        "batch_loss": train * np.exp(0.2 * rng.normal(size=t.size)),
        "val_loss": train + 0.02 + 0.001 * t,
        "learning_rate": 0.1 * np.exp(-t / 40),
        "diverged": np.zeros(t.size, bool),
    }
    if diverge_at is not None:
        history["train_loss"] = np.where(t >= diverge_at, np.inf, train)
        history["diverged"] = t >= diverge_at
    return history


def test_trajectories_and_panels():
    f = landscapes.lecture_quadratic()
    path = np.array([f.start, [-2.0, -0.5], [-1.0, 0.2], [0.0, 0.0]])
    paths = {"sgd": path, "momentum": path * 0.9}
    fig = _render(lambda: plot.trajectories(f, paths, resolution=40))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["sgd", "momentum"]
    fig = _render(
        lambda: plot.trajectory_panels(
            [(f, paths), (landscapes.rosenbrock(), paths)], resolution=40
        )
    )
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="`landscape` must be 2-D"):
        plot.trajectories(landscapes.quadratic([1.0, 2.0, 3.0]), paths)


def test_training_curves_log_scale_validation_and_learning_rate():
    fig = _render(lambda: plot.training_curves(_history()))
    loss_ax, lr_ax = fig.axes
    assert loss_ax.get_yscale() == "log"
    labels = [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert labels == ["minibatch loss", "training loss", "validation loss"]
    assert lr_ax.get_ylabel() == "learning rate"
    np.testing.assert_allclose(lr_ax.lines[0].get_ydata(), _history()["learning_rate"])

    runs = {"lr 0.1": _history(), "lr 1.0": _history(diverge_at=30)}
    fig = _render(lambda: plot.training_curves(runs, show_learning_rate=False, log_scale=False))
    assert len(fig.axes) == 1
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "lr 1.0: diverged (step 150)" in labels
    with pytest.raises(ValueError, match="`train_loss`"):
        plot.training_curves({"val_loss": np.ones(3)})


def _sweep():
    lrs = np.array([0.01, 0.1, 1.0, 10.0])
    moms = np.array([0.0, 0.9])
    grid_lr, grid_m = np.meshgrid(lrs, moms, indexing="ij")
    grid_lr, grid_m = np.repeat(grid_lr.ravel(), 2), np.repeat(grid_m.ravel(), 2)  # 2 seeds
    runs = grid_lr.size
    seeds = np.tile([0, 1], runs // 2)
    final = 1.0 / (1 + grid_lr * (1 + 10 * grid_m)) + 0.01 * seeds
    diverged = grid_lr * (1 + grid_m) > 5  # lr 10 always, nothing else
    rows = 5
    curve = np.linspace(1.0, 0.0, rows)[None, :] * (1 - final[:, None]) + final[:, None]
    curves = {
        "train_loss": curve,
        "val_loss": curve + 0.05,
        "diverged": np.repeat(diverged[:, None], rows, axis=1),
    }
    return SweepResult(
        hparams={"learning_rate": grid_lr, "momentum": grid_m},
        seeds=seeds,
        steps=np.arange(rows) * 10,
        curves=curves,
        params=None,
        num_devices=1,
    )


def test_sweep_results_one_line_per_momentum_and_diverged_marks():
    result = _sweep()
    fig = _render(lambda: plot.sweep_results(result))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "best_val_loss"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["momentum=0", "momentum=0.9", "diverged (4 runs)"]
    red_x = [ln for ln in ax.lines if ln.get_marker() == "x" and len(ln.get_xdata())]
    assert sorted(float(x) for ln in red_x for x in ln.get_xdata()) == [10.0, 10.0]
    fig = _render(lambda: plot.sweep_results(result.table(), metric="final_train_loss"))
    assert fig.axes[0].get_ylabel() == "final_train_loss"
    with pytest.raises(ValueError, match="`x`"):
        plot.sweep_results(result, x="beta")


def test_spectral_density_marks_the_top_eigenvalues():
    rng = np.random.default_rng(0)
    nodes = np.concatenate([rng.normal(0.0, 0.1, (4, 20)), np.full((4, 1), 50.0)], axis=1)
    weights = np.full(nodes.shape, 1.0 / nodes.size)
    density = SpectralDensity(nodes=nodes, weights=weights)
    fig = _render(lambda: plot.spectral_density(density, eigenvalues=np.array([50.0, 10.0])))
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    vlines = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert sorted(ln.get_xdata()[0] for ln in vlines) == [10.0, 50.0]
    fig = _render(lambda: plot.spectral_density(density, log_density=False, num_top=1))
    (vline,) = [ln for ln in fig.axes[0].lines if ln.get_linestyle() == "--"]
    assert vline.get_xdata()[0] == pytest.approx(50.0)


def test_sharpness_against_two_over_learning_rate():
    t = np.arange(0, 101)
    lam = np.where(t % 10 == 0, 10 + 0.15 * t, np.nan)  # crosses 2 / 0.1 = 20 at t ~ 67
    history = {
        "step": t,
        "sharpness": lam,
        "2/learning_rate": np.where(np.isnan(lam), np.nan, 20.0),
    }
    fig = _render(lambda: plot.sharpness(history))
    ax = fig.axes[0]
    sharp_line, bound_line = ax.lines[:2]
    np.testing.assert_allclose(sharp_line.get_xdata(), np.arange(0, 101, 10))
    np.testing.assert_allclose(bound_line.get_ydata(), 20.0)
    assert len(ax.collections) == 1  # the shaded unstable region
    fig = _render(lambda: plot.sharpness({"step": t, "sharpness": lam}, learning_rate=0.1))
    np.testing.assert_allclose(fig.axes[0].lines[1].get_ydata(), 20.0)
    with pytest.raises(ValueError, match="`learning_rate`"):
        plot.sharpness({"step": t, "sharpness": lam})
