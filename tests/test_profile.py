"""Performance profiles (AlgoPerf; Dolan & Moré 2002): the step functions, the exact
score, ties, unsolved problems, the argument checks, and the two plots."""

import io
import math
import warnings

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from jaxopt_lab import plot
from jaxopt_lab.tuning._profile import Profile, performance_profile

INF = math.inf
RENDER_DPI = 50  # small renders keep the tests fast


def _render(make, panels=1):
    """Builds and renders a figure with every warning an error; checks ``(fig, axes)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig, axes = make()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=RENDER_DPI)
    assert isinstance(fig, Figure)
    if panels == 1:
        assert isinstance(axes, Axes)
    else:
        assert isinstance(axes, np.ndarray) and axes.shape == (panels,)
    buf.seek(0)
    w, h = fig.get_size_inches()
    shape = matplotlib.image.imread(buf, format="png").shape
    assert shape == (round(h * RENDER_DPI), round(w * RENDER_DPI), 4)
    return fig, axes


@pytest.fixture(autouse=True)
def _no_pyplot_figures():
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


def _times():
    rng = np.random.default_rng(0)
    t = rng.uniform(10, 100, size=(4, 12))
    t[1, ::3] = INF  # never reached
    t[2, 5] = np.nan  # never reached
    t[:, 7] = INF  # no method solved problem 7
    t[[0, 3], 4] = 1.0  # a tie for the best time
    names = ["adam", "sgd", "nadam", "shampoo"]
    return {name: list(row) for name, row in zip(names, t, strict=True)}


# ---------------------------------------------------------------------------- properties


def test_hand_computed_score_is_exact():
    p = performance_profile({"adam": [10.0, 20.0, 35.0], "sgd": [10.0, 10.0, 10.0]})
    np.testing.assert_array_equal(p.ratios["adam"], [1.0, 2.0, 3.5])
    assert p.scores["adam"] == pytest.approx(((4 - 1) + (4 - 2) + (4 - 3.5)) / 3 / 3, abs=1e-15)
    assert p.scores["sgd"] == 1.0
    assert p.problems == ["p0", "p1", "p2"] and p.r_max == 4.0
    # every breakpoint is on the grid, so rho is exact there (right-continuous)
    assert {1.0, 2.0, 3.5, 4.0} <= set(p.taus.tolist())
    rho = dict(zip(p.taus.tolist(), p.fractions["adam"].tolist(), strict=True))
    assert rho[1.0] == pytest.approx(1 / 3) and rho[2.0] == pytest.approx(2 / 3)
    assert rho[3.5] == 1.0
    # a ratio beyond r_max adds nothing
    p = performance_profile({"a": [50.0, 1.0], "b": [1.0, 1.0]}, r_max=4.0)
    assert p.scores["a"] == pytest.approx(0.5) and p.fractions["a"][-1] == 0.5


def test_score_matches_a_fine_riemann_sum():
    p = performance_profile(_times(), r_max=3.0, num=7)
    fine = np.linspace(1.0, 3.0, 200_001)
    for m, r in p.ratios.items():
        rho = np.mean(r[:, None] <= fine[None, :], axis=0)
        assert p.scores[m] == pytest.approx(np.trapezoid(rho, fine) / 2.0, abs=1e-4)


def test_curves_are_monotone_steps_and_scores_in_unit_interval():
    p = performance_profile(_times(), num=50)
    assert isinstance(p, Profile)
    assert p.taus[0] == 1.0 and p.taus[-1] == 4.0 and np.all(np.diff(p.taus) > 0)
    assert len(p.problems) == 12
    for m, rho in p.fractions.items():
        assert rho.shape == p.taus.shape
        assert np.all(np.diff(rho) >= 0), m
        assert 0.0 <= rho[0] <= rho[-1] <= 1.0
        assert 0.0 <= p.scores[m] <= 1.0
        assert p.ratios[m].shape == (12,) and np.all(p.ratios[m] >= 1.0)
        assert np.isinf(p.ratios[m][7])  # nobody solved it: it counts, as a loss for all
        assert rho[-1] <= 11 / 12
    assert np.isinf(p.ratios["sgd"][0]) and np.isinf(p.ratios["nadam"][5])
    # every finite ratio up to r_max is a breakpoint on the grid
    for r in p.ratios.values():
        inside = r[r <= p.r_max]
        assert np.all(np.isin(inside, p.taus))
    # on every problem someone wins: the wins (rho at 1) cover all solved problems
    wins = sum(np.sum(r == 1.0) for r in p.ratios.values())
    assert wins == 11 + 1  # one tie


def test_best_everywhere_scores_one_and_ties_win_for_both():
    p = performance_profile({"fast": [1, 2, 3], "slow": [2, 4, 9], "twin": [1, 2, 3]})
    for m in ("fast", "twin"):
        assert p.fractions[m][0] == 1.0 and p.scores[m] == 1.0
        np.testing.assert_array_equal(p.ratios[m], 1.0)
    assert p.fractions["slow"][0] == 0.0
    assert p.scores["slow"] == pytest.approx(((4 - 2) + (4 - 2) + (4 - 3)) / 3 / 3)
    lines = p.format().splitlines()
    assert lines[1].split()[:2] == ["method", "score"]
    assert lines[2].split() == ["fast", "1.000", "1.00", "1.00"]
    assert lines[-1].split() == ["slow", "0.556", "0.00", "1.00"]


def test_mappings_all_inf_and_problem_order():
    p = performance_profile(
        {"a": {"mnist": 10, "cifar": INF}, "b": {"cifar": 30.0, "mnist": np.float32(20)}}
    )
    assert p.problems == ["mnist", "cifar"]
    np.testing.assert_array_equal(p.ratios["a"], [1.0, INF])
    np.testing.assert_array_equal(p.ratios["b"], [2.0, 1.0])
    p = performance_profile({"a": [3, 1], "b": [1, 2]}, problems=["x", "y"])
    assert p.problems == ["x", "y"] and p.ratios["a"].tolist() == [3.0, 1.0]
    p = performance_profile(
        {"a": np.array([1.0, 2.0]), "b": {"q": 2.0, "r": 1.0}}, problems=("q", "r")
    )
    assert p.ratios["b"].tolist() == [2.0, 1.0]
    nothing = performance_profile({"a": [INF, np.nan], "b": [np.nan, np.nan]})
    assert nothing.scores == {"a": 0.0, "b": 0.0}
    assert all(np.all(f == 0) for f in nothing.fractions.values())
    assert "0.000" in nothing.format()


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"times": {}}, ValueError, r"`times` is empty"),
        ({"times": [1, 2]}, TypeError, r"`times` must be a mapping"),
        ({"times": {"a": [1, 2], "b": [1]}}, ValueError, r"`times\['b'\]` has 1 times"),
        ({"times": {"a": 3.0}}, TypeError, r"`times\['a'\]` must be a sequence"),
        ({"times": {"a": [[1, 2], [3, 4]]}}, ValueError, r"`times\['a'\]` must be one-dim"),
        (
            {"times": {"a": {"x": 1}, "b": {"y": 1}}},
            ValueError,
            r"`times\['b'\]` must have the same problems.*missing \['x'\], extra \['y'\]",
        ),
        ({"times": {"a": [1, 0]}}, ValueError, r"`times\['a'\]\['p1'\]` must be > 0, got 0.0"),
        ({"times": {"a": [1, -INF]}}, ValueError, r"`times\['a'\]\['p1'\]` must be > 0"),
        ({"times": {"a": [1, "7"]}}, TypeError, r"`times\['a'\]\['p1'\]` must be a number"),
        ({"times": {"a": [1, None]}}, TypeError, r"`times\['a'\]\['p1'\]`.*float\('inf'\)"),
        ({"times": {"a": [True]}}, TypeError, r"`times\['a'\]\['p0'\]` must be a number"),
        ({"times": {"a": []}}, ValueError, r"`times` holds no problems"),
        ({"times": {"a": [1]}, "r_max": 1.0}, ValueError, r"`r_max` must be .* > 1.*got 1.0"),
        ({"times": {"a": [1]}, "r_max": INF}, ValueError, r"`r_max`"),
        ({"times": {"a": [1]}, "r_max": "4"}, TypeError, r"`r_max` must be a number"),
        ({"times": {"a": [1]}, "num": 1}, ValueError, r"`num` must be an int >= 2"),
        ({"times": {"a": [1, 2]}, "problems": ["x"]}, ValueError, r"`problems` has 1 names"),
        ({"times": {"a": [1, 2]}, "problems": ["x", "x"]}, ValueError, r"`problems`.*'x'"),
        ({"times": {"a": [1, 2]}, "problems": "ab"}, TypeError, r"`problems` must be a seq"),
        ({"times": {"a": {"x": 1}}, "problems": ["y"]}, ValueError, r"same problems as `prob"),
        ({"times": {"a": {"x": 1}, "b": [1]}}, ValueError, r"`times` mixes.*`problems=`"),
    ],
)
def test_errors_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        performance_profile(**kwargs)


# ---------------------------------------------------------------------------- plots


class _Study:
    """Stands for a tuning result with ``.profile()`` and ``.tuning_curves()``."""

    def __init__(self, curves):
        self.curves = curves

    def profile(self):
        return performance_profile(_times())

    def tuning_curves(self):
        return self.curves


def test_performance_profile_plot_steps_per_method():
    p = performance_profile(_times())
    _fig, ax = _render(lambda: plot.performance_profile(p))
    assert len(ax.lines) == len(p.fractions)
    for line, (m, rho) in zip(ax.lines, p.fractions.items(), strict=True):
        assert line.get_drawstyle() == "steps-post"
        y = np.asarray(line.get_ydata())
        assert np.all(np.diff(y) >= 0)
        np.testing.assert_array_equal(y, rho)
        np.testing.assert_array_equal(line.get_xdata(), p.taus)
        assert line.get_label() == f"{m} ({p.scores[m]:.2f})"
    assert ax.get_xlim() == (1.0, 4.0) and ax.get_ylim() == (0.0, 1.02)
    assert ax.get_xlabel() == "ratio to the best time (τ)"
    assert ax.get_ylabel() == "fraction of problems"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [f"{m} ({p.scores[m]:.2f})" for m in p.scores]
    # an object with .profile(), drawn on a given axes, with a title
    fig, (a, b) = plot.subplots(1, 2)
    got = plot.performance_profile(_Study({}), ax=b, title="six workloads")
    assert got.fig is fig and got.axes is b and b.get_title() == "six workloads"
    assert not a.lines
    with pytest.raises(TypeError, match="`profile` must be a Profile"):
        plot.performance_profile({"adam": [1.0]})


def test_tuning_curves_draw_the_running_minimum():
    curves = {
        "adam": np.array([0.9, 0.5, np.nan, 0.7, 0.2, np.inf]),
        "sgd": [np.nan, np.inf, 0.8, 0.3, 0.6],
        "lion": [np.nan, np.nan],
    }
    _fig, ax = _render(lambda: plot.tuning_curves(curves))
    assert len(ax.lines) == len(curves)
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "trials" and ax.get_ylabel() == "best validation loss so far"
    adam, sgd, lion = ax.lines
    np.testing.assert_array_equal(adam.get_xdata(), np.arange(1, 7))
    np.testing.assert_array_equal(adam.get_ydata(), [0.9, 0.5, 0.5, 0.5, 0.2, 0.2])
    np.testing.assert_array_equal(sgd.get_ydata(), [np.nan, np.nan, 0.8, 0.3, 0.3])
    assert np.all(np.isnan(lion.get_ydata()))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["adam (2/6 diverged)", "sgd (2/5 diverged)", "lion (2/2 diverged)"]

    # a loss <= 0 keeps the axis linear; so does log=False
    _, ax = _render(lambda: plot.tuning_curves({"a": [0.0, -1.0, 2.0]}))
    assert ax.get_yscale() == "linear"
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [0.0, -1.0, -1.0])
    _, ax = _render(lambda: plot.tuning_curves({"a": [1.0, 2.0]}, log=False))
    assert ax.get_yscale() == "linear"


def test_tuning_curves_one_panel_per_problem():
    per_problem = {
        "mnist": {"adam": [0.5, 0.3], "sgd": [0.6, 0.1]},
        "cifar": {"adam": [1.5, 1.3, 1.1]},
        "wmt": {"adam": [2.0], "sgd": [np.nan]},
        "lm": {"sgd": [3.0, 2.0]},
    }
    fig, axes = _render(lambda: plot.tuning_curves(_Study(per_problem)), panels=4)
    assert [a.get_title() for a in axes] == list(per_problem)
    assert [len(a.lines) for a in axes] == [2, 1, 2, 1]
    assert len(fig.axes) == 4  # the unused fifth and sixth panels are removed
    np.testing.assert_array_equal(axes[0].lines[1].get_ydata(), [0.6, 0.1])
    _fig, ax = _render(lambda: plot.tuning_curves({"mnist": per_problem["mnist"]}))
    assert ax.get_title() == "mnist"
    with pytest.raises(ValueError, match="`ax` takes one panel"):
        plot.tuning_curves(per_problem, ax=ax)
    with pytest.raises(ValueError, match="`curves` mixes"):
        plot.tuning_curves({"mnist": {"adam": [1.0]}, "adam": [1.0]})
    with pytest.raises(ValueError, match=r"`curves\['a'\]` must be a 1-D"):
        plot.tuning_curves({"a": np.ones((2, 2))})
    with pytest.raises(TypeError, match="`curves` must be a non-empty mapping"):
        plot.tuning_curves({})
