"""Plots: the (fig, axes) contract, each renders to a PNG of the expected size without
warnings, race_panels' small multiples, save(), and display in a notebook."""

import io
import os
import warnings

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure

from jaxopt_lab import landscapes, plot
from jaxopt_lab.curvature import SpectralDensity
from jaxopt_lab.sweep import SweepResult

RENDER_DPI = 50  # small renders keep the tests fast


def _png_shape(fig, dpi=RENDER_DPI):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    buf.seek(0)
    return matplotlib.image.imread(buf, format="png").shape


def _check_contract(result, panels):
    """``(fig, axes)``: one Axes for one panel, else a 1-D array of ``panels`` Axes."""
    assert isinstance(result, tuple) and len(result) == 2
    fig, axes = result
    assert isinstance(fig, Figure) and result.fig is fig and result.axes is axes
    if panels == 1:
        assert isinstance(axes, Axes)
        got = [axes]
    else:
        assert isinstance(axes, np.ndarray) and axes.shape == (panels,)
        assert all(isinstance(a, Axes) for a in axes)
        got = list(axes)
    assert all(a.figure is fig for a in got)
    return fig, axes


def _render(make, panels=1):
    """Builds and renders a figure with every warning turned into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig, axes = _check_contract(make(), panels)
        shape = _png_shape(fig)
    w, h = fig.get_size_inches()
    assert shape == (round(h * RENDER_DPI), round(w * RENDER_DPI), 4)
    return fig, axes


@pytest.fixture(autouse=True)
def _no_pyplot_figures():
    """Outside IPython nothing here may open a pyplot figure (scripts would leak them)."""
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


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


def _paths():
    f = landscapes.lecture_quadratic()
    path = np.array([f.start, [-2.0, -0.5], [-1.0, 0.2], [0.0, 0.0]])
    return f, {"sgd": path, "momentum": path * 0.9}


def test_trajectories_and_panels():
    f, paths = _paths()
    fig, ax = _render(lambda: plot.trajectories(f, paths, resolution=40))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["sgd", "momentum"]
    fig, axes = _render(
        lambda: plot.trajectory_panels(
            [(f, paths), (landscapes.rosenbrock(), paths)], resolution=40
        ),
        panels=2,
    )
    assert list(axes) == fig.axes
    assert [a.get_title() for a in axes] == ["lecture_quadratic", "rosenbrock"]
    _render(lambda: plot.trajectory_panels([(f, paths)], resolution=20), panels=1)
    with pytest.raises(ValueError, match="`landscape` must be 2-D"):
        plot.trajectories(landscapes.quadratic([1.0, 2.0, 3.0]), paths)
    with pytest.raises(ValueError, match="`panels`"):
        plot.trajectory_panels([])


def test_training_curves_log_scale_validation_and_learning_rate():
    fig, (loss_ax, lr_ax) = _render(lambda: plot.training_curves(_history()), panels=2)
    assert [loss_ax, lr_ax] == fig.axes
    assert loss_ax.get_yscale() == "log"
    labels = [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert labels == ["minibatch loss", "training loss", "validation loss"]
    assert lr_ax.get_ylabel() == "learning rate"
    np.testing.assert_allclose(lr_ax.lines[0].get_ydata(), _history()["learning_rate"])

    runs = {"lr 0.1": _history(), "lr 1.0": _history(diverge_at=30)}
    fig, ax = _render(lambda: plot.training_curves(runs, show_learning_rate=False, log_scale=False))
    assert fig.axes == [ax]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "lr 1.0: diverged (step 150)" in labels
    no_lr = {k: v for k, v in _history().items() if k != "learning_rate"}
    _render(lambda: plot.training_curves(no_lr), panels=1)
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
    _fig, ax = _render(lambda: plot.sweep_results(result))
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "best_val_loss"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["momentum=0", "momentum=0.9", "diverged (4 runs)"]
    red_x = [ln for ln in ax.lines if ln.get_marker() == "x" and len(ln.get_xdata())]
    assert sorted(float(x) for ln in red_x for x in ln.get_xdata()) == [10.0, 10.0]
    _, ax = _render(lambda: plot.sweep_results(result.table(), metric="final_train_loss"))
    assert ax.get_ylabel() == "final_train_loss"
    with pytest.raises(ValueError, match="`x`"):
        plot.sweep_results(result, x="beta")


def test_spectral_density_marks_the_top_eigenvalues():
    rng = np.random.default_rng(0)
    nodes = np.concatenate([rng.normal(0.0, 0.1, (4, 20)), np.full((4, 1), 50.0)], axis=1)
    weights = np.full(nodes.shape, 1.0 / nodes.size)
    density = SpectralDensity(nodes=nodes, weights=weights)
    _fig, ax = _render(lambda: plot.spectral_density(density, eigenvalues=np.array([50.0, 10.0])))
    assert ax.get_yscale() == "log"
    vlines = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert sorted(ln.get_xdata()[0] for ln in vlines) == [10.0, 50.0]
    _, ax = _render(lambda: plot.spectral_density(density, log_density=False, num_top=1))
    (vline,) = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert vline.get_xdata()[0] == pytest.approx(50.0)


def _sharpness_history():
    t = np.arange(0, 101)
    lam = np.where(t % 10 == 0, 10 + 0.15 * t, np.nan)  # crosses 2 / 0.1 = 20 at t ~ 67
    return t, lam


def test_sharpness_against_two_over_learning_rate():
    t, lam = _sharpness_history()
    history = {
        "step": t,
        "sharpness": lam,
        "2/learning_rate": np.where(np.isnan(lam), np.nan, 20.0),
    }
    _fig, ax = _render(lambda: plot.sharpness(history))
    sharp_line, bound_line = ax.lines[:2]
    np.testing.assert_allclose(sharp_line.get_xdata(), np.arange(0, 101, 10))
    np.testing.assert_allclose(bound_line.get_ydata(), 20.0)
    assert len(ax.collections) == 1  # the shaded unstable region
    _, ax = _render(lambda: plot.sharpness({"step": t, "sharpness": lam}, learning_rate=0.1))
    np.testing.assert_allclose(ax.lines[1].get_ydata(), 20.0)
    with pytest.raises(ValueError, match="`learning_rate`"):
        plot.sharpness({"step": t, "sharpness": lam})


def test_functions_given_an_axes_draw_there_and_return_it():
    fig, (a, b, c, d) = _check_contract(plot.subplots(2, 2, figsize=(8, 6)), 4)
    f, paths = _paths()
    t, lam = _sharpness_history()
    density = SpectralDensity(nodes=np.array([0.0, 1.0, 5.0]), weights=np.full(3, 1 / 3))
    for ax, make in (
        (a, lambda ax: plot.trajectories(f, paths, ax=ax, resolution=20)),
        (b, lambda ax: plot.sweep_results(_sweep(), ax=ax)),
        (c, lambda ax: plot.spectral_density(density, ax=ax)),
        (d, lambda ax: plot.sharpness({"step": t, "sharpness": lam}, learning_rate=0.1, ax=ax)),
    ):
        got_fig, got_ax = make(ax)
        assert got_fig is fig and got_ax is ax
    assert len(fig.axes) == 4 and _png_shape(fig)[:2] == (300, 400)
    _check_contract(plot.subplots(), 1)
    with pytest.raises(ValueError, match="`ncols`"):
        plot.subplots(1, 0)


def _race():
    land = landscapes.rosenbrock()
    rng = np.random.default_rng(0)
    start = np.asarray(land.start)
    t = np.linspace(0.0, 1.0, 61)[:, None]
    smooth = start + t * (np.array([1.0, 1.0]) - start)
    paths = {
        "gd 1e-3": smooth,
        "gd 3e-3": smooth + 0.05 * rng.normal(size=smooth.shape),
        "momentum": smooth[::-1].copy(),
        "adam": np.concatenate([smooth, smooth[-1] + np.cumsum(np.full((40, 2), 0.5), 0)]),
        "rmsprop": np.where(np.arange(61)[:, None] >= 20, np.nan, smooth),
    }
    groups = {
        "gradient descent": ["gd 1e-3", "gd 3e-3"],
        "momentum": ["momentum"],
        "adam": ["adam"],
        "rmsprop": ["rmsprop"],
        "again": ["gd 1e-3"],
    }
    return land, paths, groups


def test_race_panels_small_multiples_on_shared_contours():
    land, paths, groups = _race()
    fig, axes = _render(
        lambda: plot.race_panels(land, paths, groups=groups, resolution=30, ncols=3), panels=5
    )
    assert [a.get_title() for a in axes] == list(groups)
    colorbars = [a for a in fig.axes if a not in list(axes)]
    assert len(colorbars) == 1 and colorbars[0].get_ylabel() == "step"
    levels = None
    for ax in axes:
        (contour,) = [c for c in ax.collections if isinstance(c, ContourSet)]
        if levels is None:
            levels = contour.levels
            ratios = levels[1:] / levels[:-1]
            np.testing.assert_allclose(ratios, ratios[0])  # log contours for Rosenbrock
        np.testing.assert_array_equal(contour.levels, levels)  # the same in every panel
        assert ax.get_xlim() == land.bounds[0] and ax.get_ylim() == land.bounds[1]
        lines = [c for c in ax.collections if isinstance(c, LineCollection)]
        lines = [c for c in lines if not isinstance(c, ContourSet)]
        assert lines, ax.get_title()
        for lc in lines:
            steps = lc.get_array()
            assert steps.size == len(lc.get_segments()) and np.ptp(steps) > 0
            colors = lc.get_colors()  # computed from the steps at the draw above
            assert len(np.unique(np.round(colors, 3), axis=0)) > 1
    # every panel shares one step colour scale
    norms = {id(c.norm) for a in axes for c in a.collections if not isinstance(c, ContourSet)}
    assert len(norms) == 1
    # the variants of a panel are named in its legend, told apart by marker
    two = axes[0].get_legend()
    assert [t.get_text() for t in two.get_texts()] == ["gd 1e-3", "gd 3e-3"]
    markers = [h.get_marker() for h in two.legend_handles]
    assert len(set(markers)) == 2
    # cut paths: one leaves the box, one turns NaN; both marked with a red x
    assert axes[2].get_legend().get_texts()[0].get_text().startswith("adam (left the plot at")
    rms = axes[3].get_legend().get_texts()[0].get_text()
    assert rms == "rmsprop (non-finite at step 20)"
    (cut,) = [ln for ln in axes[3].lines if ln.get_marker() == "x"]
    np.testing.assert_allclose(np.ravel(cut.get_xydata()), paths["rmsprop"][19])
    # start and minimum marked in every panel
    for ax in axes:
        xy = [tuple(np.ravel(ln.get_xydata())) for ln in ax.lines]
        assert tuple(land.start) in xy and (1.0, 1.0) in xy


def test_race_panels_defaults_and_errors():
    land = landscapes.lecture_quadratic()
    long = np.linspace(np.asarray(land.start), np.zeros(2), 1001)
    _fig, axes = _render(lambda: plot.race_panels(land, {"a": long, "b": long}, resolution=20), 2)
    assert [a.get_title() for a in axes] == ["a", "b"]
    assert axes[0].get_legend() is None  # one path named like its panel: nothing to tell apart
    (lc,) = [c for c in axes[0].collections if type(c) is LineCollection]
    assert len(lc.get_segments()) < 400 and lc.get_array().max() > 900  # max_points
    _, ax = _render(
        lambda: plot.race_panels(land, {"a": long}, groups={"all": ["a"]}, resolution=20)
    )
    assert ax.get_title() == "all" and ax.get_legend() is not None
    _render(lambda: plot.race_panels(land, {"a": long[:1]}, resolution=20))  # no step yet
    with pytest.raises(ValueError, match=r"`groups\['x'\]` names \['c'\]"):
        plot.race_panels(land, {"a": long}, groups={"x": ["a", "c"]})
    with pytest.raises(ValueError, match="non-empty list"):
        plot.race_panels(land, {"a": long}, groups={"x": []})
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        plot.race_panels(land, {"a": long[:, :1]})
    with pytest.raises(ValueError, match="`max_points`"):
        plot.race_panels(land, {"a": long}, max_points=1)
    with pytest.raises(ValueError, match="2-D"):
        plot.race_panels(landscapes.quadratic([1.0, 2.0, 3.0]), {"a": long})


def test_save_writes_a_sharp_png_and_leaks_no_figure(tmp_path):
    assert plot.DPI == 150
    t, lam = _sharpness_history()
    result = plot.sharpness({"step": t, "sharpness": lam}, learning_rate=0.1)
    w, h = result.fig.get_size_inches()
    path = plot.save(result, tmp_path / "sharpness.png")  # a (fig, axes) is accepted
    assert path == tmp_path / "sharpness.png"
    shape = matplotlib.image.imread(path).shape
    # bbox_inches="tight": the size of the figure at DPI, give or take the margins
    assert abs(shape[0] - h * plot.DPI) < 0.05 * h * plot.DPI
    assert abs(shape[1] - w * plot.DPI) < 0.05 * w * plot.DPI
    small = matplotlib.image.imread(plot.save(result.fig, tmp_path / "small.png", dpi=50)).shape
    assert abs(shape[1] / small[1] - 3.0) < 0.05
    # a figure pyplot holds (made under IPython) is closed once saved
    held = plt.figure()
    plot.save(held, tmp_path / "held.png")
    assert held.number not in plt.get_fignums()
    with pytest.raises(TypeError, match="`fig`"):
        plot.save("figure.png", tmp_path / "x.png")


def test_no_pyplot_outside_ipython():
    """Scripts get plain figures: every function run, pyplot's list stays as it was."""
    f, paths = _paths()
    land, race, groups = _race()
    t, lam = _sharpness_history()
    for result in (
        plot.trajectories(f, paths, resolution=20),
        plot.trajectory_panels([(f, paths)], resolution=20),
        plot.race_panels(land, race, groups=groups, resolution=20),
        plot.training_curves(_history()),
        plot.sweep_results(_sweep()),
        plot.sharpness({"step": t, "sharpness": lam}, learning_rate=0.1),
        plot.subplots(),
    ):
        assert result.fig.canvas.manager is None
    # (the autouse fixture checks plt.get_fignums() did not grow)


def test_plot_displays_itself_as_a_png_when_pyplot_does_not_hold_it(monkeypatch):
    display = pytest.importorskip("IPython.display")
    shown = []
    monkeypatch.setattr(display, "display", lambda *a, **k: shown.append((a, k)))
    result = plot.training_curves(_history())
    result._ipython_display_()
    ((bundle,), kwargs) = shown[0]
    assert bundle["image/png"].startswith(b"\x89PNG") and kwargs["raw"]
    width = kwargs["metadata"]["image/png"]["width"]
    assert abs(width - 100 * result.fig.get_size_inches()[0]) < 40  # shown as at 100 dpi
    assert bundle["text/plain"].startswith("Plot(fig=")


_CELLS = [
    "import numpy as np\nfrom jaxopt_lab import plot\n"
    "h = {'train_loss': np.exp(-np.arange(20.0) / 5)}",
    "plot.training_curves(h)",  # 0: the last line shows a Plot
    "fig, ax = plot.training_curves(h)",  # 1: assigned
    "fig, ax = plot.training_curves(h)\nplot.save(fig, 'out.png')",  # 2: saved
    "import matplotlib.pyplot as plt\nprint(plt.get_fignums())",
]


@pytest.mark.parametrize("backend", ["inline", "Agg"])
def test_notebook_display(backend, tmp_path, monkeypatch):
    """In a kernel, without %matplotlib inline: each figure shown exactly once (inline);
    under Agg the Plot on the last line shows itself. Nothing is left open."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    if backend == "inline":
        monkeypatch.delenv("MPLBACKEND", raising=False)  # ipykernel's default: inline
    else:
        monkeypatch.setenv("MPLBACKEND", "Agg")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in _CELLS])
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    pngs = [sum("image/png" in o.get("data", {}) for o in c.outputs) for c in nb.cells[1:4]]
    texts = [o.get("data", {}).get("text/plain", "") for o in nb.cells[1].outputs]
    assert not any(t.startswith("(") for t in texts)  # never a tuple's text
    if backend == "inline":
        assert pngs == [1, 1, 0]
    else:
        assert pngs == [1, 0, 0]
    assert nb.cells[4].outputs[0]["text"].strip() == "[]"
    assert (tmp_path / "out.png").exists()
