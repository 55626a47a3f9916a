"""Figures. Every function returns a ``matplotlib.figure.Figure`` and never calls ``show``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from jaxopt_lab.landscapes import Landscape


def _landscape_grid(landscape: Landscape, resolution: int):
    import jax
    import jax.numpy as jnp

    (x0, x1), (y0, y1) = landscape.bounds
    xs = np.linspace(x0, x1, resolution)
    ys = np.linspace(y0, y1, resolution)
    xx, yy = np.meshgrid(xs, ys)
    pts = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], axis=1), jnp.float32)
    zz = np.asarray(jax.jit(jax.vmap(landscape.fn))(pts)).reshape(xx.shape)
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
