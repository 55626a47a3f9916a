r"""Figures a person reads at a glance.

- :func:`trajectories`, :func:`trajectory_panels`: optimizers on the contours of a 2-D
  landscape (the lectures' SGD vs momentum vs Adam pictures).
- :func:`race_panels`: the optimizer race as small multiples, one panel per optimizer
  family on the same contours, each path coloured by step.
- :func:`training_curves`: loss on a log scale, validation loss, learning rate
  (Congeduti's lecture on optimization: reading training curves).
- :func:`sweep_results`: final or best loss against the learning rate, one line per
  setting of the other hyperparameters, diverged runs marked.
- :func:`spectral_density`: the smoothed Hessian eigenvalue density with the top
  eigenvalues marked.
- :func:`block_spectra`: per-layer curvature: each diagonal block's top eigenvalues and
  its mean curvature (trace / size).
- :func:`sharpness`: :math:`\lambda_{\max}` against :math:`2/\alpha` during training
  (Grosse & Ba's lectures on optimization: gradient descent is stable for
  :math:`\alpha < 2/\lambda_{\max}`).
- :func:`interpolation`: the loss along the line between two parameter vectors
  (``jol.curvature.interpolate``; Goodfellow et al. 2015), the end points marked.
- :func:`loss_surface`: contours of the loss on a 2-D slice through the parameters
  (``jol.curvature.loss_surface``; Li et al. 2018), optionally with a training
  trajectory projected onto the slice.
- :func:`performance_profile`: the fraction of problems each method solves within
  :math:`\tau` times the best time, and its score (AlgoPerf, Dahl et al. 2023; after
  Dolan & Moré 2002).
- :func:`tuning_curves`: the best loss so far against the number of tuning trials, per
  method (the budget view of Schmidt et al. 2021, "Descending through a Crowded Valley").
- :func:`subplots`: an empty figure made the same way, to compose panels of your own.
- :func:`save`: a sharp PNG (:data:`DPI`), the figure closed if pyplot holds it.

**Return convention.** Every plot function returns a :class:`Plot`, a named tuple
``(fig, axes)``: ``fig`` is the ``matplotlib.figure.Figure``; ``axes`` is a single
``Axes`` when the figure has one panel, otherwise a one-dimensional NumPy array of its
panels in reading order (row by row; colorbars are not panels). A function given
``ax=`` draws there and returns ``(ax.figure, ax)``. Nothing calls ``show``::

    fig, ax = jol.plot.sharpness(history)
    fig, (loss_ax, lr_ax) = jol.plot.training_curves(history)
    fig, axes = jol.plot.race_panels(landscape, paths, groups=groups)  # axes.shape (n,)

**Notebooks and scripts.** Under IPython (Jupyter) with a displaying backend (the
default inline one, or a GUI one), figures are made through ``matplotlib.pyplot``, so
the backend shows every figure made in a cell at its end (with any changes the cell made
to it) and closes it; no ``%matplotlib inline`` is needed. A :class:`Plot` on a cell's
last line then shows nothing more (a bare ``fig`` there would be shown twice, as with any
pyplot figure); a :class:`Plot` whose figure pyplot does not hold (a non-interactive
backend such as ``Agg``, or a figure already shown or saved) displays itself as a PNG.
Everywhere else (scripts, the ``jaxopt-lab`` command, tests) figures are plain
``Figure`` objects that pyplot never sees, so nothing accumulates: drop them, or
:func:`save` them.
"""

from __future__ import annotations

import functools
import io
import math
import os
import struct
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from jaxopt_lab.landscapes import Landscape

DPI = 150
"""Dots per inch of :func:`save` and of a :class:`Plot`'s PNG display: sharp on screens
and in documents (a 6 x 5 inch figure is about 900 x 750 pixels)."""

# Backends that only write files: under IPython, figures are kept away from pyplot there.
_FILE_BACKENDS = frozenset({"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"})


def _in_ipython() -> bool:
    ipython = sys.modules.get("IPython")  # never imported here: only if already running
    return ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None


def _pyplot_displays() -> bool:
    """True under IPython with a backend that shows pyplot figures (inline or a GUI)."""
    if not _in_ipython():
        return False
    import matplotlib.pyplot as plt

    return plt.get_backend().lower() not in _FILE_BACKENDS


def _held_by_pyplot(fig: Figure) -> bool:
    """True when ``fig`` is one of pyplot's open figures."""
    if "matplotlib.pyplot" not in sys.modules:
        return False
    from matplotlib._pylab_helpers import Gcf

    return any(m.canvas.figure is fig for m in Gcf.get_all_fig_managers())


def _figure(figsize: tuple[float, float]) -> Figure:
    """A new constrained-layout figure: pyplot's under a displaying IPython, else plain."""
    if _pyplot_displays():
        import matplotlib.pyplot as plt

        return plt.figure(figsize=figsize, layout="constrained")
    return Figure(figsize=figsize, layout="constrained")


def _png(fig: Figure, dpi: float) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


class Plot(NamedTuple):
    """What every plot function returns: ``(fig, axes)``, unpacked like a tuple.

    ``axes`` is one ``Axes`` for a one-panel figure, else a 1-D NumPy array of them.
    On a notebook cell's last line it displays the figure once (see the module notes).
    """

    fig: Figure
    axes: Any

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if _held_by_pyplot(self.fig) and _pyplot_displays():
            return  # the backend shows it at the end of the cell
        png = _png(self.fig, DPI)
        width, height = struct.unpack(">II", png[16:24])  # the PNG header's IHDR chunk
        scale = 100.0 / DPI  # shown at the size of a 100-dpi image, sharp on HiDPI screens
        display(
            {"image/png": png, "text/plain": repr(self)},
            raw=True,
            metadata={
                "image/png": {"width": round(width * scale), "height": round(height * scale)}
            },
        )


def _axes_result(fig: Figure, axes: Sequence[Any]) -> Plot:
    """The convention: one panel as an ``Axes``, several as a 1-D object array."""
    axes = list(axes)
    if len(axes) == 1:
        return Plot(fig, axes[0])
    out = np.empty(len(axes), dtype=object)
    out[:] = axes
    return Plot(fig, out)


def subplots(
    nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None, **kwargs
) -> Plot:
    """An empty figure of ``nrows x ncols`` panels, made like this module's figures.

    For composing panels (pass them as ``ax=`` to the plot functions): it displays in a
    notebook and stays out of pyplot in scripts like the others. ``kwargs`` go to
    ``Figure.subplots`` (``sharex``, ``width_ratios``, ...).

    Returns:
      ``Plot(fig, axes)``: one ``Axes`` when ``nrows * ncols == 1``, else a 1-D array of
      the panels row by row.
    """
    for name, value in (("nrows", nrows), ("ncols", ncols)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be an int >= 1, got {value!r}.")
    if figsize is None:
        figsize = (min(4.0 * ncols, 16.0), min(3.5 * nrows, 14.0))
    fig = _figure(figsize)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return _axes_result(fig, axes.ravel())


def save(fig: Figure | Plot, path: str | os.PathLike, *, dpi: float = DPI) -> str | os.PathLike:
    """Saves a figure sharply (``dpi``, ``bbox_inches="tight"``) and lets it go.

    The format follows the file's suffix (PNG by default). A figure that pyplot holds
    (made under IPython) is closed afterwards, so a loop of ``save`` calls does not pile
    up figures; a plain ``Figure`` needs no closing.

    Args:
      fig: a ``Figure``, or the ``(fig, axes)`` a plot function returned.
      path: the file to write.
      dpi: dots per inch (default :data:`DPI`).

    Returns:
      ``path``.
    """
    figure = fig[0] if isinstance(fig, tuple) else fig
    if not isinstance(figure, Figure):
        raise TypeError(
            "`fig` must be a matplotlib Figure or the (fig, axes) a jol.plot function "
            f"returned, got {type(fig).__name__}."
        )
    figure.savefig(path, dpi=dpi, bbox_inches="tight")
    if _held_by_pyplot(figure):
        import matplotlib.pyplot as plt

        plt.close(figure)
    return path


@functools.partial(jax.jit, static_argnums=0)
def _values(fn, pts: jax.Array) -> jax.Array:
    """``fn`` at every row of ``pts``; compiled once per function and grid size."""
    return jax.vmap(fn)(pts)


def _landscape_grid(landscape: Landscape, resolution: int):
    (x0, x1), (y0, y1) = landscape.bounds
    xs = np.linspace(x0, x1, resolution)
    ys = np.linspace(y0, y1, resolution)
    xx, yy = np.meshgrid(xs, ys)
    pts = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], axis=1), jnp.float32)
    zz = np.asarray(_values(landscape.fn, pts)).reshape(xx.shape)
    return xx, yy, zz


def trajectories(
    landscape: Landscape,
    paths: Mapping[str, np.ndarray],
    *,
    ax=None,
    resolution: int = 200,
    levels: int = 30,
    title: str | None = None,
) -> Plot:
    """Optimizer trajectories on the contours of a 2-D landscape.

    Args:
      landscape: a two-dimensional :class:`~jaxopt_lab.landscapes.Landscape`.
      paths: optimizer name -> iterates, an array of shape (steps + 1, 2).
      ax: an axes to draw on; a new figure is made when None.
      resolution: grid points per axis for the contours.
      levels: number of contour levels.
      title: the axes title (default: the landscape's name).

    Returns:
      ``Plot(fig, ax)``: the figure and its single axes (``ax`` itself when given).
    """
    _check_2d(landscape)
    fig, ax = _new_axes(ax, (6.0, 5.0))
    xx, yy, zz = _landscape_grid(landscape, resolution)
    _contours(ax, xx, yy, zz, _levels(zz, levels, landscape.log_contours), landscape.log_contours)
    colors = matplotlib.colormaps["tab20" if len(paths) > 10 else "tab10"].colors
    for i, (name, path) in enumerate(paths.items()):
        path = np.asarray(path)
        ax.plot(
            path[:, 0],
            path[:, 1],
            ".-",
            lw=1.2,
            ms=2.5,
            label=name,
            alpha=0.85,
            color=colors[i % len(colors)],
        )
    for point in landscape.critical_points:
        marker = {"minimum": "*", "maximum": "^", "saddle": "x"}.get(point.kind, "o")
        ax.plot(*point.location, marker, color="k", ms=10)
    ax.plot(*landscape.start, "o", color="k", mfc="none", ms=8)
    (x0, x1), (y0, y1) = landscape.bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("$w_1$")
    ax.set_ylabel("$w_2$")
    ax.set_title(title or landscape.name)
    ax.legend(fontsize=7, loc="best")
    return Plot(fig, ax)


def trajectory_panels(
    panels: Sequence[tuple[Landscape, Mapping[str, np.ndarray]]], *, resolution: int = 200
) -> Plot:
    """Several :func:`trajectories` plots side by side, one per landscape.

    Returns:
      ``Plot(fig, axes)``: ``axes`` a 1-D array with one axes per landscape (a single
      ``Axes`` for one landscape).
    """
    if not panels:
        raise ValueError("`panels` must hold at least one (landscape, paths) pair.")
    fig = _figure((6.0 * len(panels), 5.0))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (landscape, paths) in zip(axes, panels, strict=True):
        trajectories(landscape, paths, ax=ax, resolution=resolution)
    return _axes_result(fig, axes)


def _new_axes(ax, figsize: tuple[float, float]):
    if ax is not None:
        return ax.figure, ax
    fig = _figure(figsize)
    return fig, fig.add_subplot()


def _check_2d(landscape: Landscape) -> None:
    if not isinstance(landscape, Landscape):
        raise TypeError(
            f"`landscape` must be a jol.landscapes.Landscape, got {type(landscape).__name__}."
        )
    if landscape.dim != 2:
        raise ValueError(f"`landscape` must be 2-D to plot contours, got dim={landscape.dim}.")


def _levels(zz: np.ndarray, levels: int, log: bool) -> np.ndarray:
    """Contour levels over the grid's values: geometric when ``log`` (floored at 1e-3)."""
    finite = zz[np.isfinite(zz)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if log:
        lo = max(lo, 1e-3)
        return np.geomspace(lo, max(hi, 10 * lo), levels)
    return np.linspace(lo, hi if hi > lo else lo + 1.0, levels)


def _contours(ax, xx, yy, zz, lv: np.ndarray, log: bool):
    z = np.maximum(zz, lv[0]) if log else zz
    greys = matplotlib.colormaps["Greys"](np.linspace(0.3, 0.8, len(lv)))  # none near white
    return ax.contour(xx, yy, z, levels=lv, colors=greys, linewidths=0.6, zorder=1)


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
_MARKS_PER_PATH = 8  # step-coloured markers along each path, besides the one at its end


def _exit(p0: np.ndarray, p1: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Where the segment from ``p0`` (inside ``box``) to ``p1`` first leaves the box."""
    d = p1 - p0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d != 0, (np.where(d > 0, box[:, 1], box[:, 0]) - p0) / d, np.inf)
    return p0 + min(1.0, max(0.0, float(np.min(t)))) * d


def _last_seen(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Where the polyline ``points`` is last inside ``box``: its end when that is inside,
    else the point where its last segment through the box leaves it (Liang-Barsky), else
    its end moved onto the box."""
    lo, hi = box[:, 0], box[:, 1]
    if np.all((points[-1] >= lo) & (points[-1] <= hi)) or len(points) < 2:
        return np.clip(points[-1], lo, hi)
    p0, d = points[:-1], np.diff(points, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ta, tb = (lo - p0) / d, (hi - p0) / d
    flat = d == 0
    t_in = np.where(flat, -np.inf, np.minimum(ta, tb)).max(axis=1).clip(0.0, None)
    t_out = np.where(flat, np.inf, np.maximum(ta, tb)).min(axis=1).clip(None, 1.0)
    ok = (t_in <= t_out) & np.all(~flat | ((p0 >= lo) & (p0 <= hi)), axis=1)
    if not ok.any():
        return np.clip(points[-1], lo, hi)
    i = int(np.flatnonzero(ok)[-1])
    return p0[i] + t_out[i] * d[i]


def _race_path(path: np.ndarray, box: np.ndarray, max_points: int):
    """The steps to draw of one path, where (and why) it was cut, and where to mark it.

    A path is cut at its first non-finite iterate, or at the first one more than a box
    width outside the plotting box (nothing past it would be in view, and huge
    coordinates only trouble the renderer; the segment towards it is drawn up to that
    distance); the rest is subsampled to ``max_points``.
    Returns ``(steps, points, cut_step, why, cut_xy)``.
    """
    n = path.shape[0]
    center, half = box.mean(axis=1), 0.5 * (box[:, 1] - box[:, 0])
    finite = np.all(np.isfinite(path), axis=1)
    near = np.all(np.abs(np.where(finite[:, None], path, 0.0) - center) <= 3.0 * half, axis=1)
    bad = np.flatnonzero(~(finite & near))
    cut = int(bad[0]) if bad.size else n
    why = None if cut == n else ("non-finite" if not finite[cut] else "left the plot")
    keep = max(cut, 1) if finite[0] else 0
    if keep > max_points:
        steps = np.unique(np.round(np.linspace(0, keep - 1, max_points)).astype(int))
    else:
        steps = np.arange(keep)
    points = path[steps]
    if why == "left the plot" and cut > 0:  # the last segment, up to where it leaves the ring
        ring = np.stack([center - 3.0 * half, center + 3.0 * half], axis=1)
        steps = np.append(steps, cut)
        points = np.vstack([points, _exit(path[cut - 1], path[cut], ring)])
    cut_xy = _last_seen(points, box) if why and points.size else None
    return steps, points, (cut if why else None), why, cut_xy


def race_panels(
    landscape: Landscape,
    paths: Mapping[str, Any],
    *,
    groups: Mapping[str, Sequence[str]] | None = None,
    max_points: int = 400,
    resolution: int = 150,
    ncols: int = 4,
    levels: int = 25,
    cmap: str = "viridis",
    title: str | None = None,
) -> Plot:
    """The optimizer race as small multiples: one panel per optimizer family.

    Every panel shows the same contours of ``landscape`` (same levels, on a log scale
    when ``landscape.log_contours``, same limits: the landscape's box, shared axes), its
    start (a hollow circle) and minima (stars). Each path is a line coloured by step
    (one sequential colormap and one shared "step" colorbar for all panels), with a few
    step-coloured markers along it and a larger one at its end; the variants sharing a
    panel are told apart by the markers' shape, named in a small legend. A path is cut
    at its first non-finite iterate, or once it is more than a box width outside the
    box; a red ``x`` marks where (on the box's edge when outside) and the legend gives
    the step.

    Args:
      landscape: a two-dimensional :class:`~jaxopt_lab.landscapes.Landscape`.
      paths: optimizer name -> iterates, an array of shape (n, 2), the start first
        (e.g. ``jol.landscapes.minimize(...).path``).
      groups: panel title -> the names in ``paths`` it shows, in order; default one
        panel per path. Paths named in no group are not drawn.
      max_points: at most this many iterates of a path are drawn (evenly spaced steps,
        the first and last kept), so long races stay light.
      resolution: grid points per axis for the contours (computed once).
      ncols: panels per row.
      levels: number of contour levels.
      cmap: the sequential colormap of the steps.
      title: the figure's title (default: the landscape's name).

    Returns:
      ``Plot(fig, axes)``: ``axes`` a 1-D array with one axes per group, in order (a
      single ``Axes`` for one group); the colorbar is not among them.

    Raises:
      ValueError: a path is not of shape (n, 2), a group is empty or names a path that
        ``paths`` lacks, or a size argument is out of range.
    """
    _check_2d(landscape)
    for name, value, low in (
        ("max_points", max_points, 2),
        ("resolution", resolution, 2),
        ("ncols", ncols, 1),
        ("levels", levels, 2),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"`{name}` must be an int >= {low}, got {value!r}.")
    if not isinstance(paths, Mapping) or not paths:
        raise ValueError("`paths` must be a non-empty mapping: optimizer name -> (n, 2) array.")
    arrays = {}
    for name, path in paths.items():
        arr = np.asarray(path, np.float64)
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 1:
            raise ValueError(
                f"`paths[{name!r}]` must be an array of shape (n, 2) with n >= 1, got shape "
                f"{arr.shape}."
            )
        arrays[name] = arr
    groups = {str(name): [name] for name in arrays} if groups is None else dict(groups)
    if not groups:
        raise ValueError("`groups` must hold at least one panel.")
    for panel, names in groups.items():
        if isinstance(names, str) or not len(names):
            raise ValueError(
                f"`groups[{panel!r}]` must be a non-empty list of names in `paths`, got {names!r}."
            )
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ValueError(
                f"`groups[{panel!r}]` names {missing}, not in `paths` {sorted(map(str, arrays))}."
            )

    box = np.asarray(landscape.bounds, np.float64)
    xx, yy, zz = _landscape_grid(landscape, resolution)
    lv = _levels(zz, levels, landscape.log_contours)
    drawn = {n: _race_path(arrays[n], box, max_points) for ns in groups.values() for n in ns}
    last = max((int(d[0][-1]) for d in drawn.values() if d[0].size), default=0)
    norm = Normalize(0, max(last, 1))
    colormap = matplotlib.colormaps[cmap]

    count = len(groups)
    cols = min(ncols, count)
    rows = math.ceil(count / cols)
    fig = _figure((2.9 * cols + 1.1, 3.1 * rows + 0.8))
    grid = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    panels = list(grid.ravel()[:count])
    for empty in grid.ravel()[count:]:
        fig.delaxes(empty)
    for i, ax in enumerate(panels):
        if i % cols == 0:
            ax.set_ylabel("$w_2$")
        if i + cols >= count:  # nothing below it: tick labels and axis label here
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("$w_1$")
    any_cut = False
    for ax, (panel, names) in zip(panels, groups.items(), strict=True):
        _contours(ax, xx, yy, zz, lv, landscape.log_contours)
        handles = []
        for j, name in enumerate(names):
            steps, points, cut, why, cut_xy = drawn[name]
            marker = _MARKERS[j % len(_MARKERS)]
            if len(points) > 1:
                segments = np.stack([points[:-1], points[1:]], axis=1)
                lines = LineCollection(
                    segments, cmap=colormap, norm=norm, linewidths=1.6, zorder=2, capstyle="round"
                )
                lines.set_array(steps[:-1].astype(np.float64))
                ax.add_collection(lines, autolim=False)
            if len(points):  # a few markers along the path, offset per variant, and its end
                phase = (j % len(_MARKERS)) / len(_MARKERS)
                at = np.unique(
                    np.round(
                        (np.arange(_MARKS_PER_PATH) + phase) / _MARKS_PER_PATH * (len(points) - 1)
                    )
                ).astype(int)
                ax.scatter(
                    *points[at].T,
                    c=steps[at],
                    cmap=colormap,
                    norm=norm,
                    marker=marker,
                    s=16,
                    edgecolors="k",
                    linewidths=0.4,
                    zorder=3,
                )
                ax.scatter(
                    *points[-1],
                    c=[steps[-1]],
                    cmap=colormap,
                    norm=norm,
                    marker=marker,
                    s=46,
                    edgecolors="k",
                    linewidths=0.8,
                    zorder=3,
                )
            label = str(name) if cut is None else f"{name} ({why} at step {cut})"
            if cut_xy is not None:
                any_cut = True
                ax.plot(*cut_xy, "x", color="tab:red", ms=8, mew=2, zorder=5, clip_on=False)
            handles.append(
                Line2D(
                    [],
                    [],
                    color="0.35",
                    lw=1.0,
                    marker=marker,
                    ms=5,
                    mec="k",
                    mew=0.5,
                    mfc="0.8",
                    label=label,
                )
            )
        for point in landscape.minima:
            ax.plot(*point.location, "*", color="k", ms=11, zorder=4)
        ax.plot(*landscape.start, "o", color="k", mfc="white", ms=7, mew=1.2, zorder=4)
        ax.set_xlim(*box[0])
        ax.set_ylim(*box[1])
        ax.set_aspect("equal", adjustable="box")
        ax.set_title(str(panel), fontsize=9)
        if len(handles) > 1 or handles[0].get_label() != str(panel):
            ax.legend(handles=handles, fontsize=6, loc="best", framealpha=0.85)
    fig.colorbar(
        ScalarMappable(norm=norm, cmap=colormap),
        ax=panels,
        label="step",
        shrink=0.8,
        aspect=30,
        pad=0.02,
    )
    keys = [
        Line2D([], [], ls="", marker="o", color="k", mfc="white", ms=7, label="start"),
        Line2D([], [], ls="", marker="*", color="k", ms=10, label="minimum"),
    ]
    if any_cut:
        keys.append(
            Line2D(
                [],
                [],
                ls="",
                marker="x",
                color="tab:red",
                ms=8,
                mew=2,
                label="path cut (non-finite or far outside)",
            )
        )
    fig.legend(handles=keys, loc="outside lower center", ncols=len(keys), fontsize=7, frameon=False)
    fig.suptitle(title or landscape.name, fontsize=11)
    return _axes_result(fig, panels)


def _runs(history: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A single history as ``{"": history}``; a mapping of named histories unchanged."""
    if not isinstance(history, Mapping) or not history:
        raise ValueError(
            "`history` must be a training history (a mapping with `train_loss`), or a "
            f"mapping from run names to histories; got {type(history).__name__}."
        )
    if any(isinstance(v, Mapping) for v in history.values()):
        return dict(history)
    return {"": history}


def _steps(history: Mapping[str, Any], n: int) -> np.ndarray:
    return np.asarray(history["step"]) if "step" in history else np.arange(n)


def _positive(x: np.ndarray) -> np.ndarray:
    """``x`` with non-positive or non-finite entries hidden (NaN) for a log axis."""
    x = np.asarray(x, np.float64)
    return np.where(np.isfinite(x) & (x > 0), x, np.nan)


def training_curves(
    history: Mapping[str, Any],
    *,
    log_scale: bool = True,
    show_learning_rate: bool = True,
    show_batch_loss: bool = True,
    title: str | None = None,
    figsize: tuple[float, float] = (6.5, 4.5),
) -> Plot:
    """Training curves: loss against step, validation loss, and the learning rate below.

    Congeduti's lecture on optimization reads these curves for slow progress,
    oscillations and instability; a log scale shows the late part of training. The
    training loss (on ``jol.train``'s fixed monitoring subset) is a solid line, the
    validation loss dashed, the noisy minibatch loss faint; a diverged run ends in an
    ``x``. The learning rate, when the history has one, is drawn in a panel below.

    Args:
      history: ``jol.train(...).history`` (needs ``train_loss`` or ``loss``; uses
        ``step``, ``val_loss``, ``batch_loss``, ``learning_rate``, ``diverged`` when
        present), or a mapping from run names to such histories (one color per run).
      log_scale: a logarithmic loss axis (non-positive values are not drawn).
      show_learning_rate: add the learning-rate panel when a history has
        ``learning_rate``.
      show_batch_loss: draw the minibatch loss faintly.
      title: the title of the loss panel.
      figsize: the figure size in inches.

    Returns:
      ``Plot(fig, axes)``: ``axes`` is the loss axes alone, or the array ``[loss_ax,
      lr_ax]`` when the learning-rate panel is drawn.

    Example:
      >>> import numpy as np
      >>> import jaxopt_lab as jol
      >>> steps = np.arange(50)
      >>> fig, ax = jol.plot.training_curves({"train_loss": np.exp(-steps / 10),
      ...                                     "val_loss": 0.1 + np.exp(-steps / 10)})
      >>> jol.plot.save(fig, "curves.png")  # doctest: +SKIP
    """
    runs = _runs(history)
    for name, run in runs.items():
        if "train_loss" not in run and "loss" not in run:
            raise ValueError(
                f"`history`{f'[{name!r}]' if name else ''} needs a `train_loss` (or `loss`) "
                f"entry; it has {sorted(run)}."
            )
    with_lr = show_learning_rate and any("learning_rate" in run for run in runs.values())
    fig = _figure(figsize)
    if with_lr:
        ax, ax_lr = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    else:
        ax, ax_lr = fig.add_subplot(), None
    colors = matplotlib.colormaps["tab10"].colors
    for i, (name, run) in enumerate(runs.items()):
        color = colors[i % len(colors)]
        train = np.asarray(run.get("train_loss", run.get("loss")), np.float64)
        steps = _steps(run, train.size)
        prefix = f"{name}: " if name else ""
        show = _positive(train) if log_scale else train
        if show_batch_loss and "batch_loss" in run:
            batch = np.asarray(run["batch_loss"], np.float64)
            ax.plot(
                steps,
                _positive(batch) if log_scale else batch,
                color=color,
                lw=0.6,
                alpha=0.3,
                label=f"{prefix}minibatch loss",
            )
        ax.plot(steps, show, color=color, lw=1.5, label=f"{prefix}training loss")
        if "val_loss" in run:
            val = np.asarray(run["val_loss"], np.float64)
            ax.plot(
                steps,
                _positive(val) if log_scale else val,
                "--",
                color=color,
                lw=1.5,
                label=f"{prefix}validation loss",
            )
        if "diverged" in run and np.any(np.asarray(run["diverged"])):
            k = int(np.argmax(np.asarray(run["diverged"])))
            finite = show[: k + 1][np.isfinite(show[: k + 1])]
            if finite.size:
                ax.plot(
                    steps[k],
                    finite[-1],
                    "x",
                    color=color,
                    ms=10,
                    mew=2,
                    label=f"{prefix}diverged (step {steps[k]})",
                )
        if ax_lr is not None and "learning_rate" in run:
            lr = np.asarray(run["learning_rate"], np.float64)
            ax_lr.plot(steps, lr, color=color, lw=1.2)
    if log_scale:
        ax.set_yscale("log")
    ax.set_ylabel("loss")
    ax.set_title(title or "training curves")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3, which="both" if log_scale else "major")
    if ax_lr is not None:
        ax_lr.set_ylabel("learning rate")
        ax_lr.set_xlabel("step")
        ax_lr.grid(alpha=0.3)
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    else:
        ax.set_xlabel("step")
    return _axes_result(fig, [ax] if ax_lr is None else [ax, ax_lr])


def sweep_results(
    result: Any,
    *,
    x: str = "learning_rate",
    metric: str | None = None,
    ax=None,
    log_x: bool = True,
    log_y: bool = True,
    title: str | None = None,
) -> Plot:
    """A sweep's final or best loss against one hyperparameter, one line per other setting.

    Each line joins the runs that share the values of every other hyperparameter
    (e.g. one line per momentum), with the mean over seeds and, with several seeds, their
    spread as a band. Diverged runs are drawn as ``x`` marks at the top of the axes
    (their loss is meaningless), in the color of their line, so the edge of stability
    shows on the learning-rate axis.

    Args:
      result: a :class:`jaxopt_lab.SweepResult` (anything with ``.table()``), or its
        table: a mapping of equal-length columns with ``x``, ``metric`` and optionally
        ``diverged``.
      x: the hyperparameter on the horizontal axis.
      metric: the column to plot; default ``best_val_loss`` when present, else
        ``final_train_loss``. A sharpness column (``max_sharpness``,
        ``final_preconditioned_sharpness``, ...: a sweep with ``sharpness_callback``) is
        drawn with each line's ``stability_threshold`` as a dashed line, so the edge of
        stability shows against the learning rate.
      ax: an axes to draw on; a new figure is made when None.
      log_x: a logarithmic ``x`` axis.
      log_y: a logarithmic metric axis.
      title: the axes title.

    Returns:
      ``Plot(fig, ax)``: the figure and its single axes (``ax`` itself when given).

    Raises:
      ValueError: ``x`` or ``metric`` is not a column.
    """
    table = result.table() if hasattr(result, "table") else result
    if not isinstance(table, Mapping):
        raise ValueError(
            f"`result` must be a SweepResult or its table (a mapping), got {type(result)}."
        )
    table = {k: np.asarray(v) for k, v in table.items()}
    metric = metric or ("best_val_loss" if "best_val_loss" in table else "final_train_loss")
    for arg, name in (("x", x), ("metric", metric)):
        if name not in table:
            raise ValueError(
                f"`{arg}` must be a column of the sweep table {sorted(table)}, got {name!r}."
            )
    n = table[x].size
    diverged = np.asarray(table.get("diverged", np.zeros(n, bool)), bool)
    values = np.asarray(table[metric], np.float64)
    bad = diverged | ~np.isfinite(values)
    if hasattr(result, "hparams"):  # a SweepResult knows its hyperparameters
        others = [k for k in result.hparams if k != x]
    else:
        others = [
            k for k in table if k not in (x, metric, "seed", "diverged") and k not in _COLUMNS
        ]
    threshold = table.get("stability_threshold") if "sharpness" in metric else None
    fig, ax = _new_axes(ax, (6.0, 4.5))
    colors = matplotlib.colormaps["tab10"].colors
    keys = sorted({tuple(table[k][i].item() for k in others) for i in range(n)})
    good = values[~bad]
    ceiling = (good.max() * (3.0 if log_y else 1.1)) if good.size else 1.0
    for c, key in enumerate(keys):
        color = colors[c % len(colors)]
        mine = np.ones(n, bool)
        for k, v in zip(others, key, strict=True):
            mine &= table[k] == v
        label = ", ".join(f"{k}={v:.3g}" for k, v in zip(others, key, strict=True)) or metric
        xs = np.unique(table[x][mine])
        mean, low, high = [], [], []
        for xv in xs:
            sel = mine & (table[x] == xv) & ~bad
            vals = values[sel]
            mean.append(vals.mean() if vals.size else np.nan)
            low.append(vals.min() if vals.size else np.nan)
            high.append(vals.max() if vals.size else np.nan)
        ax.plot(xs, mean, "o-", color=color, ms=4, lw=1.5, label=label)
        if threshold is not None:
            bound = [np.nanmean(threshold[mine & (table[x] == xv)]) for xv in xs]
            ax.plot(xs, bound, "--", color=color, lw=1.0, label=f"{label}: stability threshold")
        if np.any(np.asarray(high) > np.asarray(low)):
            ax.fill_between(xs, low, high, color=color, alpha=0.2, lw=0)
        failed = np.unique(table[x][mine & bad])
        if failed.size:  # at the top, in the line's color, slightly apart per line
            shift = ceiling * (1.0 + 0.15 * c) if log_y else ceiling + 0.03 * c * abs(ceiling)
            ax.plot(failed, np.full(failed.size, shift), "x", color=color, ms=9, mew=2)
    if bad.any():
        ax.plot([], [], "x", color="k", ms=9, mew=2, label=f"diverged ({int(bad.sum())} runs)")
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    ax.set_title(title or f"sweep: {metric} vs {x}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    return Plot(fig, ax)


_COLUMNS = (
    "final_train_loss",
    "final_val_loss",
    "best_val_loss",
    "best_val_step",
    "run",
    "final_sharpness",
    "max_sharpness",
    "final_preconditioned_sharpness",
    "max_preconditioned_sharpness",
    "stability_threshold",
)


def spectral_density(
    density: Any,
    *,
    eigenvalues: Any = None,
    num_top: int = 3,
    sigma: float | None = None,
    grid: np.ndarray | None = None,
    log_density: bool = True,
    ax=None,
    title: str | None = None,
) -> Plot:
    r"""The Hessian eigenvalue density, smoothed, with the top eigenvalues marked.

    From stochastic Lanczos quadrature (``jol.curvature.density``): the nodes and weights
    are convolved with a Gaussian of width ``sigma`` (``SpectralDensity.smooth``). The
    ``num_top`` largest eigenvalues are marked by vertical lines: the given ones
    (e.g. from ``jol.curvature.eigenvalues``), else the largest quadrature nodes (Ritz
    values, which converge to the extreme eigenvalues first). A log density axis shows
    the few large outliers next to the bulk near zero.

    Args:
      density: a ``SpectralDensity`` ``(nodes, weights)`` (arrays of the same shape).
      eigenvalues: top eigenvalues to mark: an array, an ``Eigen`` or a
        ``CurvatureReport`` (their ``values`` / ``eigenvalues``); default the top nodes.
      num_top: how many to mark.
      sigma: the Gaussian width; default 1% of the spectrum's range.
      grid: the eigenvalue grid; default 800 points over the range, padded by 5 sigma.
      log_density: a logarithmic density axis (floored at 1e-6 of the peak).
      ax: an axes to draw on; a new figure is made when None.
      title: the axes title.

    Returns:
      ``Plot(fig, ax)``: the figure and its single axes (``ax`` itself when given).
    """
    nodes = np.asarray(density.nodes, np.float64).reshape(-1)
    weights = np.asarray(density.weights, np.float64).reshape(-1)
    if nodes.shape != weights.shape or nodes.size == 0:
        raise ValueError(
            f"`density` must have nodes and weights of one shape, got {nodes.shape} and "
            f"{weights.shape}."
        )
    lo, hi = float(nodes.min()), float(nodes.max())
    width = max(hi - lo, 1e-12 * max(1.0, abs(hi)))
    sigma = 0.01 * width if sigma is None else float(sigma)
    if not sigma > 0:
        raise ValueError(f"`sigma` must be > 0, got {sigma!r}.")
    grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, 800) if grid is None else grid
    grid = np.asarray(grid, np.float64)
    z = (grid[:, None] - nodes[None, :]) / sigma
    smooth = np.exp(-0.5 * z**2) @ weights / (sigma * np.sqrt(2 * np.pi))
    fig, ax = _new_axes(ax, (6.0, 4.0))
    if log_density:
        floor = 1e-6 * float(smooth.max())
        ax.semilogy(grid, np.maximum(smooth, floor), color="C0", lw=1.5, label="density")
        ax.set_ylim(bottom=floor)
    else:
        ax.plot(grid, smooth, color="C0", lw=1.5, label="density")
        ax.fill_between(grid, smooth, color="C0", alpha=0.2, lw=0)
    if eigenvalues is None:
        top = np.sort(np.unique(nodes))[::-1][:num_top]
        what = "largest Ritz values"
    else:
        vals = getattr(eigenvalues, "values", getattr(eigenvalues, "eigenvalues", eigenvalues))
        top = np.sort(np.asarray(vals, np.float64).reshape(-1))[::-1][:num_top]
        what = "top eigenvalues"
    for i, lam in enumerate(top):
        ax.axvline(lam, color="C3", lw=1.0, ls="--", label=what if i == 0 else None)
    if top.size:
        ax.annotate(
            f"$\\lambda_{{max}}$ = {top[0]:.4g}",
            (top[0], 0.95),
            xycoords=("data", "axes fraction"),
            ha="right",
            va="top",
            fontsize=8,
            color="C3",
        )
    ax.set_xlabel("eigenvalue $\\lambda$")
    ax.set_ylabel("density")
    ax.set_title(title or f"Hessian spectral density ($\\sigma$ = {sigma:.2g})")
    ax.legend(fontsize=7, loc="upper center")
    ax.grid(alpha=0.3)
    return Plot(fig, ax)


def sharpness(
    history: Mapping[str, Any],
    *,
    learning_rate: float | None = None,
    preconditioned: bool | None = None,
    ax=None,
    title: str | None = None,
) -> Plot:
    r"""Sharpness :math:`\lambda_{\max}` against the optimizer's stability threshold.

    Gradient descent on the local quadratic is stable only while
    :math:`\lambda_{\max} < 2/\alpha` (Grosse & Ba, lectures 7-8);
    heavy-ball momentum while :math:`\lambda_{\max} < (2 + 2\beta)/\alpha`; Adam while its
    preconditioned sharpness :math:`\lambda_{\max}(P^{-1}H) < (2 + 2\beta_1)/((1-\beta_1)\alpha)`
    (Cohen et al. 2022). ``jol.curvature.sharpness_callback`` records the sharpness, the
    rule's ``stability_threshold`` and, with ``preconditioned=True``, the preconditioned
    sharpness. Steps where the sharpness is above the threshold are shaded.

    Args:
      history: a history with ``sharpness`` (NaN where not evaluated) and ``step``, and
        ``stability_threshold``, ``2/learning_rate`` or ``learning_rate``; or a mapping of
        run names to histories.
      learning_rate: the (constant) learning rate, when the history has none of those.
      preconditioned: plot ``preconditioned_sharpness`` (default: when the history has
        it) against ``stability_threshold``.
      ax: an axes to draw on; a new figure is made when None.
      title: the axes title.

    Returns:
      ``Plot(fig, ax)``: the figure and its single axes (``ax`` itself when given).
    """
    runs = _runs(history)
    fig, ax = _new_axes(ax, (6.0, 4.0))
    colors = matplotlib.colormaps["tab10"].colors
    named = {"gd": False, "other": False, "preconditioned": False}
    for i, (name, run) in enumerate(runs.items()):
        where = f"`history`{f'[{name!r}]' if name else ''}"
        pre = "preconditioned_sharpness" in run if preconditioned is None else preconditioned
        key = "preconditioned_sharpness" if pre else "sharpness"
        if key not in run:
            raise ValueError(
                f"{where} has no `{key}`; record it with jol.curvature.sharpness_callback("
                + (
                    "..., preconditioned=True, optimizer=tx)."
                    if pre
                    else "..., learning_rate=...)."
                )
            )
        lam = np.asarray(run[key], np.float64)
        steps = _steps(run, lam.size)
        two_over_lr = None
        if "2/learning_rate" in run:
            two_over_lr = np.asarray(run["2/learning_rate"], np.float64)
        elif "learning_rate" in run:
            two_over_lr = 2.0 / np.asarray(run["learning_rate"], np.float64)
        elif learning_rate is not None:
            two_over_lr = np.full(lam.size, 2.0 / float(learning_rate))
        if "stability_threshold" in run and (pre or "preconditioned_sharpness" not in run):
            # (an adaptive rule's threshold bounds the preconditioned sharpness only)
            bound = np.asarray(run["stability_threshold"], np.float64)
            same = two_over_lr is not None and np.allclose(bound, two_over_lr, equal_nan=True)
            bound_label = "2 / learning rate" if same else "stability threshold"
        elif pre:
            raise ValueError(
                f"{where} has no `stability_threshold` to hold the preconditioned sharpness "
                "against; record it with sharpness_callback(..., optimizer=tx)."
            )
        elif two_over_lr is not None:
            bound, bound_label = two_over_lr, "2 / learning rate"
        else:
            raise ValueError(
                "`learning_rate` is needed: the history has neither `stability_threshold`, "
                "`2/learning_rate` nor `learning_rate`."
            )
        named["gd" if bound_label.startswith("2") else "other"] = True
        named["preconditioned"] |= pre
        ok = np.isfinite(lam)
        color = colors[i % len(colors)]
        prefix = f"{name}: " if name else ""
        what = (
            "preconditioned sharpness $\\lambda_{max}(P^{-1}H)$"
            if pre
            else "sharpness $\\lambda_{max}$"
        )
        ax.plot(steps[ok], lam[ok], "o-", color=color, ms=3, lw=1.5, label=f"{prefix}{what}")
        b_ok = np.isfinite(bound)
        ax.plot(steps[b_ok], bound[b_ok], "--", color=color, lw=1.2, label=f"{prefix}{bound_label}")
        both = ok & b_ok
        if both.any():
            ax.fill_between(
                steps[both],
                bound[both],
                lam[both],
                where=lam[both] > bound[both],
                color="red",
                alpha=0.15,
                lw=0,
                interpolate=True,
            )
    default_title = (
        "sharpness vs 2 / learning rate"
        if not named["other"] and not named["preconditioned"]
        else "sharpness vs the stability threshold"
    )
    ax.set_xlabel("step")
    ax.set_ylabel("curvature")
    ax.set_title(title or default_title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return Plot(fig, ax)


def interpolation(result: Any, *, ax=None, title: str | None = None) -> Plot:
    r"""The loss along the line :math:`(1 - \alpha)\,\theta_a + \alpha\,\theta_b`.

    From ``jol.curvature.interpolate`` (Goodfellow et al. 2015): the loss against
    :math:`\alpha`, on a log scale when every loss is positive, with the two end points
    (:math:`\alpha = 0`: :math:`\theta_a`, :math:`\alpha = 1`: :math:`\theta_b`) marked
    and labelled when they lie within the alphas evaluated.

    Args:
      result: an ``Interpolation`` ``(alphas, losses)`` (1-D arrays of one length).
      ax: an axes to draw on; a new figure is made when None.
      title: the axes title.

    Returns:
      ``Plot(fig, ax)``: the figure and its single axes (``ax`` itself when given).
    """
    try:
        alphas = np.asarray(result.alphas, np.float64)
        losses = np.asarray(result.losses, np.float64)
    except AttributeError:
        raise TypeError(
            "`result` must be the Interpolation (alphas, losses) that "
            f"jol.curvature.interpolate returned, got {type(result).__name__}."
        ) from None
    if alphas.ndim != 1 or alphas.shape != losses.shape or alphas.size == 0:
        raise ValueError(
            f"`result` must have alphas and losses of one 1-D shape, got {alphas.shape} and "
            f"{losses.shape}."
        )
    order = np.argsort(alphas, kind="stable")
    alphas, losses = alphas[order], losses[order]
    finite = np.isfinite(losses)
    log = bool(finite.any() and np.all(losses[finite] > 0))
    fig, ax = _new_axes(ax, (6.0, 4.0))
    ax.plot(alphas, losses, "-", color="C0", lw=1.5, label="loss")
    for alpha, name, marker, color in ((0.0, "a", "o", "C2"), (1.0, "b", "s", "C3")):
        if not alphas[0] <= alpha <= alphas[-1]:
            continue
        value = float(np.interp(alpha, alphas, losses))
        if not np.isfinite(value):
            continue
        ax.plot(
            alpha,
            value,
            marker,
            color=color,
            ms=7,
            mec="k",
            zorder=3,
            label=f"$\\theta_{name}$ ($\\alpha$ = {alpha:g}): {value:.4g}",
        )
        ax.annotate(
            f"$\\theta_{name}$",
            (alpha, value),
            xytext=(0, 8),
            textcoords="offset points",
            ha="center",
            fontsize=9,
            color=color,
        )
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("$\\alpha$ in $(1 - \\alpha)\\,\\theta_a + \\alpha\\,\\theta_b$")
    ax.set_ylabel("loss")
    ax.set_title(title or "loss along the line from $\\theta_a$ to $\\theta_b$")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return Plot(fig, ax)


def _snapshots(trajectory: Any, like: Any) -> np.ndarray:
    """Parameter snapshots as a ``(T, D)`` array, flattened in ``ravel_pytree`` order.

    ``trajectory`` is a pytree like ``like`` whose leaves have a leading time axis, or a
    sequence of pytrees like ``like`` (NNX modules are read as their ``nnx.Param`` state).
    """
    want = jax.tree.structure(like)
    shapes = [np.shape(x) for x in jax.tree.leaves(like)]

    trajectory = _param_state(trajectory)
    if jax.tree.structure(trajectory) == want:
        leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(trajectory)]
        stacked = all(
            x.ndim == len(s) + 1 and x.shape[1:] == s for x, s in zip(leaves, shapes, strict=True)
        )
        if stacked and len({x.shape[0] for x in leaves}) == 1:
            return np.concatenate([x.reshape(x.shape[0], -1) for x in leaves], axis=1)
    elif isinstance(trajectory, Sequence) and not isinstance(trajectory, str) and trajectory:
        rows = []
        for snapshot in trajectory:
            snapshot = _param_state(snapshot)
            if jax.tree.structure(snapshot) != want:
                break
            leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(snapshot)]
            if [x.shape for x in leaves] != shapes:
                break
            rows.append(np.concatenate([x.reshape(-1) for x in leaves]))
        else:
            return np.stack(rows)
    raise ValueError(
        "`trajectory` must be a sequence of parameter snapshots shaped like the surface's "
        f"directions (leaf shapes {shapes}), or one pytree of that structure whose leaves "
        "have a leading time axis."
    )


def _param_state(tree: Any) -> Any:
    """An NNX module as its ``nnx.Param`` state; anything else unchanged."""
    try:
        from flax import nnx
    except ImportError:  # pragma: no cover - flax is a dependency
        return tree
    return nnx.state(tree, nnx.Param) if isinstance(tree, nnx.Module) else tree


def loss_surface(
    surface: Any,
    *,
    trajectory: Any = None,
    levels: int = 30,
    log: bool = True,
    ax=None,
    title: str | None = None,
) -> Plot:
    r"""Contours of the loss on a 2-D slice :math:`L(\theta + a\,\delta + b\,\eta)`.

    From ``jol.curvature.loss_surface`` (Li et al. 2018): filled contours of the loss over
    the grid ``(x, y)``, with a colorbar and the centre :math:`\theta` (``a = b = 0``)
    marked. A training ``trajectory`` is drawn in the slice: each snapshot's displacement
    from the centre is projected onto the plane of the two directions (least squares over
    the flattened parameters), its start and end marked. Random directions in many
    dimensions are nearly orthogonal to a trajectory, so its projection can be short;
    pass directions that span it (e.g. its principal components) to see it whole.

    Args:
      surface: a ``LossSurface`` (``x``, ``y``, ``losses`` of shape (len(y), len(x)),
        and, for a trajectory, ``directions`` and ``center``).
      trajectory: parameter snapshots in time order: a list of pytrees like the
        parameters (or NNX modules), or one pytree whose leaves have a leading time axis.
      levels: number of contour levels (an int >= 2).
      log: logarithmic levels and colours (used only when every finite loss is > 0).
      ax: an axes to draw on; a new figure is made when None.
      title: the axes title.

    Returns:
      ``Plot(fig, ax)``: the figure and its single axes (``ax`` itself when given); the
      colorbar is not among them.
    """
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise ValueError(f"`levels` must be an int >= 2, got {levels!r}.")
    try:
        x = np.asarray(surface.x, np.float64)
        y = np.asarray(surface.y, np.float64)
        zz = np.asarray(surface.losses, np.float64)
    except AttributeError:
        raise TypeError(
            "`surface` must be the LossSurface that jol.curvature.loss_surface returned, got "
            f"{type(surface).__name__}."
        ) from None
    if x.ndim != 1 or y.ndim != 1 or zz.shape != (y.size, x.size) or min(x.size, y.size) < 2:
        raise ValueError(
            f"`surface` must have x (gx,), y (gy,) and losses (gy, gx) with gx, gy >= 2, got "
            f"{x.shape}, {y.shape} and {zz.shape}."
        )
    path = None
    if trajectory is not None:
        directions = getattr(surface, "directions", None)
        center = getattr(surface, "center", None)
        if directions is None or center is None:
            raise ValueError(
                "`trajectory` needs the surface's `directions` and `center` to project onto; "
                "pass the LossSurface that jol.curvature.loss_surface returned."
            )
        basis = _snapshots(list(directions), center).T  # (D, 2)
        start = _snapshots([center], center)[0]
        moves = _snapshots(trajectory, center) - start[None, :]
        path = np.linalg.lstsq(basis, moves.T, rcond=None)[0].T  # (T, 2)

    finite = zz[np.isfinite(zz)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    log = bool(log) and lo > 0
    if log:
        lv = np.geomspace(lo, hi if hi > lo else lo * 10.0, levels)
        norm = LogNorm(lv[0], lv[-1])
    else:
        lv = np.linspace(lo, hi if hi > lo else lo + 1.0, levels)
        norm = Normalize(lv[0], lv[-1])
    z = np.ma.masked_invalid(zz)
    fig, ax = _new_axes(ax, (6.0, 5.0))
    filled = ax.contourf(x, y, z, levels=lv, cmap="viridis", norm=norm, zorder=1)
    ax.contour(x, y, z, levels=lv, colors="k", linewidths=0.3, alpha=0.4, zorder=1)
    ticks = lv[:: max(1, (levels - 1) // 6)]
    bar = fig.colorbar(
        filled, ax=ax, ticks=ticks, format="%.4g", label="loss (log scale)" if log else "loss"
    )
    bar.minorticks_off()
    center_loss = getattr(surface, "center_loss", None)
    label = "centre" if center_loss is None else f"centre: loss {float(center_loss):.4g}"
    ax.plot(0.0, 0.0, "*", color="white", mec="k", ms=13, zorder=4, label=label)
    if path is not None:
        ax.plot(
            path[:, 0],
            path[:, 1],
            ".-",
            color="tab:red",
            lw=1.4,
            ms=3,
            zorder=3,
            label="trajectory",
        )
        ax.plot(*path[0], "o", color="tab:red", mfc="white", mew=1.5, ms=8, zorder=4, label="start")
        ax.plot(*path[-1], "X", color="tab:red", mec="k", ms=9, zorder=4, label="end")
    ax.set_xlabel("direction 1 ($a$)")
    ax.set_ylabel("direction 2 ($b$)")
    ax.set_title(title or "loss surface")
    ax.legend(fontsize=7, loc="best")
    return Plot(fig, ax)


def block_spectra(result: Any, *, title: str | None = None) -> Plot:
    """Per-block curvature from ``jol.curvature.block_spectra``: two panels sharing the
    blocks as rows, the top eigenvalues of each diagonal block (log scale, the largest
    filled) and its mean curvature trace / size with the standard error.

    Args:
      result: a ``BlockSpectra``.
      title: the figure title.

    Returns:
      ``Plot(fig, axes)`` with ``axes`` the two panels.
    """
    for field in ("names", "eigenvalues", "trace", "trace_se", "sizes"):
        if not hasattr(result, field):
            raise TypeError(
                "`result` must be what jol.curvature.block_spectra returns, got "
                f"{type(result).__name__}."
            )
    names = list(result.names)
    n = len(names)
    values = np.asarray(result.eigenvalues, np.float64)
    fig = _figure((9.0, max(2.5, 0.45 * n + 1.2)))
    ax_eig, ax_tr = fig.subplots(1, 2, sharey=True)
    rows = np.arange(n)[::-1]  # the first block on top
    positive = values > 0
    for j in range(values.shape[1]):
        ok = positive[:, j]
        ax_eig.plot(
            values[ok, j],
            rows[ok],
            "o",
            ms=7 if j == 0 else 4,
            mfc="C0" if j == 0 else "none",
            mec="C0",
            label="$\\lambda_1$" if j == 0 else ("$\\lambda_2 \\ldots$" if j == 1 else None),
        )
    if positive.any():
        ax_eig.set_xscale("log")
    ax_eig.set_yticks(rows, names)
    ax_eig.set_xlabel("top eigenvalues of the block")
    ax_eig.grid(alpha=0.3)
    if values.shape[1] > 1:
        ax_eig.legend(fontsize=7, loc="best")
    sizes = np.asarray(result.sizes, np.float64)
    mean = np.asarray(result.trace, np.float64) / sizes
    err = np.asarray(result.trace_se, np.float64) / sizes
    ax_tr.barh(rows, mean, xerr=err, color="C1", alpha=0.7, error_kw={"lw": 1})
    ax_tr.axvline(0.0, color="k", lw=0.6)
    ax_tr.set_xlabel("mean curvature: trace / size")
    ax_tr.grid(alpha=0.3, axis="x")
    for r, size in zip(rows, sizes, strict=True):
        ax_tr.annotate(
            f"{int(size):,}",
            (1.0, r),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="center",
            fontsize=7,
            color="0.4",
        )
    curvature = getattr(result, "curvature", "hessian")
    fig.suptitle(title or f"per-block spectra of the {curvature}")
    return _axes_result(fig, [ax_eig, ax_tr])


def performance_profile(profile: Any, *, ax=None, title: str | None = None) -> Plot:
    r"""Performance profiles: :math:`\rho_m(\tau)` against :math:`\tau`, one step line per
    method, each labelled with its score.

    :math:`\rho_m(\tau)` is the fraction of problems that method :math:`m` solves within
    :math:`\tau` times the fastest method's time; the score
    :math:`B_m = \int_1^{r_{\max}} \rho_m / (r_{\max} - 1)` is the area under the line
    (AlgoPerf, Dahl et al. 2023; after Dolan & Moré 2002). A line that starts high wins
    often; one that climbs early is rarely far behind.

    Args:
      profile: a ``Profile`` from ``performance_profile(times)``, or an object whose
        ``.profile()`` returns one.
      ax: an axes to draw on; a new figure is made when None.
      title: the axes title.

    Returns:
      ``Plot(fig, ax)``: the figure and its single axes (``ax`` itself when given).
    """
    from jaxopt_lab.tuning._profile import Profile

    if not isinstance(profile, Profile) and callable(getattr(profile, "profile", None)):
        profile = profile.profile()
    if not isinstance(profile, Profile):
        raise TypeError(
            "`profile` must be a Profile (from performance_profile(times)) or an object with "
            f"a `.profile()` method returning one, got {type(profile).__name__}."
        )
    fig, ax = _new_axes(ax, (6.0, 4.0))
    colors = matplotlib.colormaps["tab20" if len(profile.fractions) > 10 else "tab10"].colors
    taus = np.asarray(profile.taus, np.float64)
    for i, (name, rho) in enumerate(profile.fractions.items()):
        ax.plot(
            taus,
            np.asarray(rho, np.float64),
            drawstyle="steps-post",  # rho is right-continuous: its value holds until the next tau
            color=colors[i % len(colors)],
            lw=1.6,
            label=f"{name} ({profile.scores[name]:.2f})",
        )
    ax.set_xlim(1.0, profile.r_max)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("ratio to the best time (τ)")
    ax.set_ylabel("fraction of problems")
    ax.set_title(title or f"performance profiles ({len(profile.problems)} problems)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", title="method (score)", title_fontsize=7)
    return Plot(fig, ax)


def _best_so_far(losses: Any, where: str) -> np.ndarray:
    """The running minimum of a trial's losses, NaN until the first finite one."""
    try:
        x = np.asarray(losses, np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"`{where}` must be a 1-D array of per-trial losses, got {type(losses).__name__}."
        ) from None
    if x.ndim != 1:
        raise ValueError(
            f"`{where}` must be a 1-D array of per-trial losses in trial order, got shape "
            f"{x.shape}."
        )
    return np.fmin.accumulate(np.where(np.isfinite(x), x, np.nan)) if x.size else x


def _tuning_panel(ax, curves: Mapping[str, Any], where: str, log: bool) -> None:
    colors = matplotlib.colormaps["tab20" if len(curves) > 10 else "tab10"].colors
    finite = []
    for i, (name, losses) in enumerate(curves.items()):
        best = _best_so_far(losses, f"{where}[{name!r}]")
        raw = np.asarray(losses, np.float64)
        finite.append(raw[np.isfinite(raw)])
        failed = int(raw.size - finite[-1].size)
        label = f"{name} ({failed}/{raw.size} diverged)" if failed else str(name)
        ax.plot(
            np.arange(1, best.size + 1),
            best,  # NaN (not drawn) before the first finite trial
            drawstyle="steps-post",
            color=colors[i % len(colors)],
            lw=1.6,
            label=label,
        )
    values = np.concatenate(finite) if finite else np.zeros(0)
    if log and values.size and np.all(values > 0):
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trials")
    ax.set_ylabel("best validation loss so far")
    ax.grid(alpha=0.3, which="both" if ax.get_yscale() == "log" else "major")
    ax.legend(fontsize=7, loc="best")


def tuning_curves(curves: Any, *, ax=None, title: str | None = None, log: bool = True) -> Plot:
    """The best loss so far against the number of tuning trials, one line per method.

    "The Crowded Valley budget view" (Schmidt et al. 2021, "Descending through a Crowded
    Valley"): how good a method gets with a tuning budget of ``k`` trials, the running
    minimum of its trials' losses in the order they were run. Diverged trials (NaN or
    inf) count as trials but not as losses; nothing is drawn before a method's first
    finite loss, and the legend counts its diverged trials.

    Args:
      curves: method -> a 1-D array of per-trial losses in trial order; or problem ->
        such a mapping (one panel per problem); or an object whose ``.tuning_curves()``
        returns either.
      ax: an axes to draw on (one problem only); a new figure is made when None.
      title: the axes title (with several problems: the figure's title).
      log: a logarithmic loss axis, when every finite loss is > 0.

    Returns:
      ``Plot(fig, ax)`` for one panel (``ax`` itself when given); ``Plot(fig, axes)``
      with one panel per problem, in order.
    """
    if not isinstance(curves, Mapping) and callable(getattr(curves, "tuning_curves", None)):
        curves = curves.tuning_curves()
    if not isinstance(curves, Mapping) or not curves:
        raise TypeError(
            "`curves` must be a non-empty mapping method -> per-trial losses (or problem -> "
            "such a mapping), or an object with a `.tuning_curves()` method returning one, "
            f"got {type(curves).__name__}."
        )
    nested = [isinstance(v, Mapping) for v in curves.values()]
    if any(nested) and not all(nested):
        raise ValueError(
            "`curves` mixes problems (mappings of methods) with methods (arrays of losses); "
            "give either method -> losses or problem -> (method -> losses)."
        )
    if not all(nested):
        fig, ax = _new_axes(ax, (6.0, 4.0))
        _tuning_panel(ax, curves, "curves", log)
        ax.set_title(title or "tuning curves: best loss so far")
        return Plot(fig, ax)
    if ax is not None:
        if len(curves) != 1:
            raise ValueError(
                f"`ax` takes one panel but `curves` has {len(curves)} problems; leave `ax` "
                "None to get a figure with one panel per problem."
            )
        ((problem, panel),) = curves.items()
        _tuning_panel(ax, panel, f"curves[{problem!r}]", log)
        ax.set_title(title or str(problem))
        return Plot(ax.figure, ax)
    count = len(curves)
    cols = min(3, count)
    fig, grid = subplots(math.ceil(count / cols), cols)
    grid = list(np.ravel(grid))
    panels = grid[:count]
    for empty in grid[count:]:
        fig.delaxes(empty)
    for panel_ax, (problem, panel) in zip(panels, curves.items(), strict=True):
        _tuning_panel(panel_ax, panel, f"curves[{problem!r}]", log)
        panel_ax.set_title(str(problem), fontsize=9)
    if count > 1 or title:
        fig.suptitle(title or "tuning curves: best loss so far", fontsize=11)
    return _axes_result(fig, panels)
