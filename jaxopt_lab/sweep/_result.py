"""``SweepResult``: curves of every run, and tables over them."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class SweepResult(NamedTuple):
    """What :func:`jaxopt_lab.sweep` returns; runs are combination-major, seed-minor.

    ``curves`` has the keys of :func:`jaxopt_lab.train`'s ``history`` (but ``step``),
    each an array of shape ``(runs, rows)``; ``steps`` gives the step of each row.
    """

    hparams: dict[str, np.ndarray]  # name -> (runs,) hyperparameter value of each run
    seeds: np.ndarray  # (runs,) seed of each run
    steps: np.ndarray  # (rows,) step of each history row: 0, log_every, ..., steps
    curves: dict[str, np.ndarray]  # metric -> (runs, rows)
    params: Any  # final trained parameters, every leaf with a leading (runs,) axis
    num_devices: int  # devices the runs were sharded over
    state: Any = None  # final model state (leading (runs,) axis) of stateful and NNX models
    model_def: Any = None  # the engine's description of the model (for `model(run)`)
    memory_plan: dict | None = None  # max_parallel="auto": max_parallel, bytes_per_device, budget

    @property
    def num_runs(self) -> int:
        return self.seeds.size

    @property
    def diverged(self) -> np.ndarray:
        """bool (runs,): the run was frozen (non-finite, or above the divergence bound)."""
        return self.curves["diverged"][:, -1]

    @property
    def nonfinite(self) -> np.ndarray:
        """bool (runs,): the run was frozen by a non-finite value."""
        return self.curves["nonfinite"][:, -1]

    def model(self, run: int) -> Any:
        """The trained Flax NNX module of run ``run`` (evaluation mode).

        Raises:
          ValueError: the sweep's ``init_fn`` did not return an NNX module.
        """
        if self.model_def is None or self.model_def.kind != "nnx":
            raise ValueError(
                "`SweepResult.model` needs a sweep whose `init_fn` returns an nnx.Module; "
                "this one trained a pytree: read `params` (and `state`) instead."
            )
        if not 0 <= run < self.num_runs:
            raise ValueError(f"`run` must be in [0, {self.num_runs}), got {run}.")
        if self.params is None:
            raise ValueError(
                "this sweep ran with keep_params=False: it kept no parameters; run it "
                "again with keep_params=True to get the trained modules."
            )
        params, state = jax.tree.map(lambda x: jnp.asarray(x[run]), (self.params, self.state))
        return self.model_def.module(params, state)

    def select(self, **hparams: float) -> np.ndarray:
        """Indices of the runs whose hyperparameters equal ``hparams`` (all seeds)."""
        mask = np.ones(self.num_runs, bool)
        for name, value in hparams.items():
            if name not in self.hparams:
                raise ValueError(
                    f"`{name}` is not a hyperparameter of this sweep ({sorted(self.hparams)})."
                )
            mask &= np.isclose(self.hparams[name], value, rtol=1e-6, atol=0)
        return np.flatnonzero(mask)

    def table(self) -> dict[str, np.ndarray]:
        """One row per run: hyperparameters, seed, final losses, best validation loss.

        Columns: each hyperparameter, ``seed``, ``final_train_loss``, and with
        ``eval_data`` ``final_val_loss``, ``best_val_loss`` and ``best_val_step`` (the
        step at which it was reached); with ``jol.curvature.sharpness_callback`` among
        the callbacks, ``final_sharpness`` and ``max_sharpness`` (the last and the largest
        value recorded), the same for ``preconditioned_sharpness``, and the run's
        ``stability_threshold`` (its last value); then ``diverged``.
        """
        out = dict(self.hparams)
        out["seed"] = self.seeds
        out["final_train_loss"] = self.curves["train_loss"][:, -1]
        if "val_loss" in self.curves:
            val = self.curves["val_loss"]
            filled = np.where(np.isnan(val), np.inf, val)
            best = np.argmin(filled, axis=1)
            out["final_val_loss"] = val[:, -1]
            out["best_val_loss"] = val[np.arange(self.num_runs), best]
            out["best_val_step"] = self.steps[best]
        for name in ("sharpness", "preconditioned_sharpness"):
            if name in self.curves:
                out["final_" + name] = _last_finite(self.curves[name])
                out["max_" + name] = _max_finite(self.curves[name])
        if "stability_threshold" in self.curves:
            out["stability_threshold"] = _last_finite(self.curves["stability_threshold"])
        out["diverged"] = self.diverged
        return out

    def best(self, metric: str | None = None) -> dict[str, Any]:
        """The table row (plus its ``run`` index) with the lowest ``metric``.

        Args:
          metric: a table column; default ``best_val_loss`` with validation data,
            else ``final_train_loss``. Diverged runs are never chosen.

        Raises:
          ValueError: every run diverged, or an unknown ``metric``.
        """
        table = self.table()
        metric = metric or ("best_val_loss" if "best_val_loss" in table else "final_train_loss")
        if metric not in table:
            raise ValueError(
                f"`metric` must be a column of the table ({list(table)}), got {metric!r}."
            )
        values = np.asarray(table[metric], float)
        values = np.where(self.diverged | np.isnan(values), np.inf, values)  # NaN: never best
        if np.all(np.isinf(values)):
            raise ValueError("every run diverged; lower the learning rates in the grid.")
        run = int(np.argmin(values))
        return {"run": run, **{k: v[run].item() for k, v in table.items()}}

    def best_setting(self, metric: str | None = None, reduce: str = "mean") -> dict[str, Any]:
        """The hyperparameter setting with the lowest ``metric`` reduced over its seeds.

        A setting with any diverged seed (or a NaN ``metric``) is never chosen: its mean
        would hide the seed that blew up.

        Args:
          metric: a loss column of :meth:`table`; default ``final_val_loss`` with
            validation data, else ``final_train_loss``.
          reduce: over seeds: ``"mean"``, ``"median"`` or ``"max"`` (the worst seed).

        Returns:
          ``{hyperparameter: value (a Python number, float32 values by their shortest
          repr: 0.1, not 0.10000000149), ..., metric: reduced value, metric + "_std": spread
          over seeds (population std), "num_seeds": n, "runs": [run indices]}``.

        Raises:
          ValueError: an unknown ``metric`` or ``reduce``, or every setting has a
          diverged seed.
        """
        from jaxopt_lab import _validation

        table = self.table()
        metric = metric or ("final_val_loss" if "final_val_loss" in table else "final_train_loss")
        losses = [k for k in table if k.endswith("_loss")]
        if metric not in losses:
            raise ValueError(f"`metric` must be one of {losses}, got {metric!r}.")
        _validation.check_choice("reduce", reduce, ("mean", "median", "max"))
        keys = list(self.hparams)
        groups: dict[tuple, list[int]] = {}
        for run in range(self.num_runs):
            groups.setdefault(tuple(_plain(self.hparams[k][run]) for k in keys), []).append(run)
        values = np.asarray(table[metric], np.float64)
        best, best_value = None, np.inf
        for setting, runs in groups.items():
            v = values[runs]
            if self.diverged[runs].any() or not np.isfinite(v).all():
                continue
            r = {"mean": np.mean, "median": np.median, "max": np.max}[reduce](v)
            if r < best_value:
                best, best_value = (setting, runs), r
        if best is None:
            raise ValueError(
                "every setting of the sweep has a diverged seed; lower the learning rates "
                "in the grid."
            )
        setting, runs = best
        v = values[runs]
        return {
            **dict(zip(keys, setting, strict=True)),
            metric: float(best_value),
            metric + "_std": float(v.std()),
            "num_seeds": len(runs),
            "runs": list(runs),
        }

    def aggregate(self) -> dict[str, np.ndarray]:
        """Mean and standard deviation over seeds, one row per hyperparameter combination.

        Columns: each hyperparameter; ``<metric>_mean`` and ``<metric>_std`` (population
        std, ``ddof=0``) for each loss column of :meth:`table`, over all seeds including
        diverged ones; ``num_diverged``. With it, plot e.g. the final loss against the
        learning rate, one line per momentum.
        """
        table = self.table()
        num_seeds = np.unique(self.seeds).size
        combos = self.num_runs // num_seeds

        def grouped(a: np.ndarray) -> np.ndarray:
            return np.asarray(a).reshape(combos, num_seeds)

        out = {name: grouped(v)[:, 0] for name, v in self.hparams.items()}
        for name in ("final_train_loss", "final_val_loss", "best_val_loss"):
            if name in table:
                out[name + "_mean"] = grouped(table[name]).mean(axis=1)
                out[name + "_std"] = grouped(table[name]).std(axis=1)
        out["num_diverged"] = grouped(self.diverged).sum(axis=1)
        return out

    def to_pandas(self):
        """:meth:`table` as a ``pandas.DataFrame`` (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError(
                "`SweepResult.to_pandas` needs pandas: pip install pandas. "
                "`table()` gives the same columns as NumPy arrays."
            ) from e
        return pd.DataFrame(self.table())

    def format(self) -> str:
        """:meth:`table` as aligned text."""
        table = self.table()
        cells = [list(table)]
        for i in range(self.num_runs):
            cells.append([_fmt(table[k][i]) for k in table])
        widths = [max(len(row[j]) for row in cells) for j in range(len(cells[0]))]
        return "\n".join(
            "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells
        )


def _fmt(x: Any) -> str:
    if isinstance(x, np.bool_ | bool):
        return str(bool(x))
    if isinstance(x, np.integer | int):
        return str(int(x))
    return f"{float(x):.4g}"


def _plain(x: np.generic) -> Any:
    """A NumPy scalar as a Python number; a float by its shortest repr in its own dtype."""
    return float(str(x)) if isinstance(x, np.floating) else x.item()


def _last_finite(curves: np.ndarray) -> np.ndarray:
    """(runs,) the last finite value of each row (NaN where there is none)."""
    curves = np.asarray(curves, np.float64)
    finite = np.isfinite(curves)
    last = curves.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1)
    return np.where(finite.any(axis=1), curves[np.arange(curves.shape[0]), last], np.nan)


def _max_finite(curves: np.ndarray) -> np.ndarray:
    """(runs,) the largest finite value of each row (NaN where there is none)."""
    curves = np.asarray(curves, np.float64)
    finite = np.isfinite(curves)
    return np.where(finite.any(axis=1), np.where(finite, curves, -np.inf).max(axis=1), np.nan)
