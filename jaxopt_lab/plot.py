r"""Figures. Every function returns a ``matplotlib.figure.Figure`` and never calls ``show``.

- :func:`trajectories`, :func:`trajectory_panels`: optimizers on the contours of a 2-D
  landscape (the lectures' SGD vs momentum vs Adam pictures).
- :func:`training_curves`: loss on a log scale, validation loss, learning rate
  (lecture 002, ``002_f85d30b52f182d0b.txt``: reading training curves).
- :func:`sweep_results`: final or best loss against the learning rate, one line per
  setting of the other hyperparameters, diverged runs marked.
- :func:`spectral_density`: the smoothed Hessian eigenvalue density with the top
  eigenvalues marked.
- :func:`sharpness`: :math:`\lambda_{\max}` against :math:`2/\alpha` during training
  (lecture 000, ``000_d710887e2ef8e555.txt``: gradient descent is stable for
  :math:`\alpha < 2/\lambda_{\max}`).

Figures are made with ``matplotlib.figure.Figure`` directly (no pyplot state); save
them with ``fig.savefig(path)``, or display them in a notebook.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from matplotlib.figure import Figure

from jaxopt_lab.landscapes import Landscape


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
) -> Figure:
    """Optimizer trajectories on the contours of a 2-D landscape.

    Args:
      landscape: a two-dimensional :class:`~jaxopt_lab.landscapes.Landscape`.
      paths: optimizer name -> iterates, an array of shape (steps + 1, 2).
      ax: an axes to draw on; a new figure is made when None.
      resolution: grid points per axis for the contours.
      levels: number of contour levels.
      title: the axes title (default: the landscape's name).

    Returns:
      The figure holding the axes.
    """
    if landscape.dim != 2:
        raise ValueError(f"`landscape` must be 2-D to plot contours, got dim={landscape.dim}.")
    if ax is None:
        fig = Figure(figsize=(6.0, 5.0), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    xx, yy, zz = _landscape_grid(landscape, resolution)
    if landscape.log_contours:
        zmin = max(float(zz.min()), 1e-3)
        lv = np.geomspace(zmin, float(zz.max()), levels)
        ax.contour(xx, yy, np.maximum(zz, zmin), levels=lv, cmap="Greys", linewidths=0.6)
    else:
        ax.contour(xx, yy, zz, levels=levels, cmap="Greys", linewidths=0.6)
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
    return fig


def trajectory_panels(
    panels: Sequence[tuple[Landscape, Mapping[str, np.ndarray]]], *, resolution: int = 200
) -> Figure:
    """Several :func:`trajectories` plots side by side, one per landscape."""
    fig = Figure(figsize=(6.0 * len(panels), 5.0), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (landscape, paths) in zip(axes, panels, strict=True):
        trajectories(landscape, paths, ax=ax, resolution=resolution)
    return fig


def _new_axes(ax, figsize: tuple[float, float]):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


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
) -> Figure:
    """Training curves: loss against step, validation loss, and the learning rate below.

    Lecture 002 (``002_f85d30b52f182d0b.txt``) reads these curves for slow progress,
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
      The figure.

    Example:
      >>> import numpy as np
      >>> import jaxopt_lab as jol
      >>> steps = np.arange(50)
      >>> fig = jol.plot.training_curves({"train_loss": np.exp(-steps / 10),
      ...                                 "val_loss": 0.1 + np.exp(-steps / 10)})
      >>> fig.savefig("curves.png")  # doctest: +SKIP
    """
    runs = _runs(history)
    for name, run in runs.items():
        if "train_loss" not in run and "loss" not in run:
            raise ValueError(
                f"`history`{f'[{name!r}]' if name else ''} needs a `train_loss` (or `loss`) "
                f"entry; it has {sorted(run)}."
            )
    with_lr = show_learning_rate and any("learning_rate" in run for run in runs.values())
    fig = Figure(figsize=figsize, layout="constrained")
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
    return fig


def sweep_results(
    result: Any,
    *,
    x: str = "learning_rate",
    metric: str | None = None,
    ax=None,
    log_x: bool = True,
    log_y: bool = True,
    title: str | None = None,
) -> Figure:
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
        ``final_train_loss``.
      ax: an axes to draw on; a new figure is made when None.
      log_x: a logarithmic ``x`` axis.
      log_y: a logarithmic metric axis.
      title: the axes title.

    Returns:
      The figure.

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
    others = [k for k in table if k not in (x, metric, "seed", "diverged") and k not in _COLUMNS]
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
    return fig


_COLUMNS = ("final_train_loss", "final_val_loss", "best_val_loss", "best_val_step", "run")


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
) -> Figure:
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
      The figure.
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
    return fig


def sharpness(
    history: Mapping[str, Any],
    *,
    learning_rate: float | None = None,
    ax=None,
    title: str | None = None,
) -> Figure:
    r"""Sharpness :math:`\lambda_{\max}` against the stability bound :math:`2/\alpha`.

    Gradient descent on the local quadratic is stable only while
    :math:`\lambda_{\max} < 2/\alpha` (lecture 000, ``000_d710887e2ef8e555.txt``);
    ``jol.curvature.sharpness_callback`` records both during ``jol.train``. Steps where
    the sharpness is above the bound are shaded.

    Args:
      history: a history with ``sharpness`` (NaN where not evaluated) and ``step``, and
        ``2/learning_rate`` or ``learning_rate``; or a mapping of run names to histories.
      learning_rate: the (constant) learning rate, when the history has neither column.
      ax: an axes to draw on; a new figure is made when None.
      title: the axes title.

    Returns:
      The figure.
    """
    runs = _runs(history)
    fig, ax = _new_axes(ax, (6.0, 4.0))
    colors = matplotlib.colormaps["tab10"].colors
    for i, (name, run) in enumerate(runs.items()):
        if "sharpness" not in run:
            raise ValueError(
                f"`history`{f'[{name!r}]' if name else ''} has no `sharpness`; record it with "
                "jol.curvature.sharpness_callback(..., learning_rate=...)."
            )
        lam = np.asarray(run["sharpness"], np.float64)
        steps = _steps(run, lam.size)
        if "2/learning_rate" in run:
            bound = np.asarray(run["2/learning_rate"], np.float64)
        elif "learning_rate" in run:
            bound = 2.0 / np.asarray(run["learning_rate"], np.float64)
        elif learning_rate is not None:
            bound = np.full(lam.size, 2.0 / float(learning_rate))
        else:
            raise ValueError(
                "`learning_rate` is needed: the history has neither `2/learning_rate` nor "
                "`learning_rate`."
            )
        ok = np.isfinite(lam)
        color = colors[i % len(colors)]
        prefix = f"{name}: " if name else ""
        ax.plot(
            steps[ok],
            lam[ok],
            "o-",
            color=color,
            ms=3,
            lw=1.5,
            label=f"{prefix}sharpness $\\lambda_{{max}}$",
        )
        b_ok = np.isfinite(bound)
        ax.plot(
            steps[b_ok], bound[b_ok], "--", color=color, lw=1.2, label=f"{prefix}2 / learning rate"
        )
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
    ax.set_xlabel("step")
    ax.set_ylabel("curvature")
    ax.set_title(title or "sharpness vs 2 / learning rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return fig
