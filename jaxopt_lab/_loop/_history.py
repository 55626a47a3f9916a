"""History rows of the chunks put together, and divergence reported on request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from jaxopt_lab._errors import DivergedError
from jaxopt_lab._loop._step import Spec


def assemble_history(chunks: list[dict[str, np.ndarray]], spec: Spec, axis: int) -> dict:
    """Concatenates per-chunk rows along ``axis`` and drops the padding rows."""
    if not chunks:
        return {}
    history = {}
    for name in chunks[0]:
        rows = np.concatenate([c[name] for c in chunks], axis=axis)
        history[name] = np.take(rows, np.arange(spec.num_rows), axis=axis)
    history["step"] = np.arange(spec.num_rows, dtype=np.int32) * spec.log_every
    return history


def raise_if_diverged(
    diverged: np.ndarray,
    steps: np.ndarray,
    *,
    labels: Sequence[str],
    what: str,
) -> None:
    """Raises :class:`DivergedError` when any run's ``diverged`` curve ends True.

    Args:
      diverged: bool ``(runs, rows)``: the ``diverged`` history of every run.
      steps: ``(rows,)`` the step of each row.
      labels: one description per run (its hyperparameters and seed).
      what: the call, for the message (``"train"``, ``"sweep"``).
    """
    diverged = np.asarray(diverged, bool).reshape(len(labels), -1)
    bad = np.flatnonzero(diverged[:, -1])
    if bad.size == 0:
        return
    parts = [f"{labels[r]} by step {int(steps[np.argmax(diverged[r])])}" for r in bad[:10]]
    more = f" and {bad.size - 10} more" if bad.size > 10 else ""
    raise DivergedError(
        f"`{what}` (throw=True): {bad.size} of {len(labels)} run(s) diverged and were "
        f"frozen: {'; '.join(parts)}{more}. Lower the learning rate, or pass throw=False "
        "to get the runs back with their `diverged` flags."
    )


def describe_run(hparams: Mapping[str, np.ndarray], seeds: np.ndarray, run: int) -> str:
    """``run 3 (learning_rate=0.3, momentum=0.9, seed 1)``."""
    values = ", ".join(f"{k}={np.asarray(v)[run].item():.4g}" for k, v in hparams.items())
    return f"run {run} ({values}{', ' if values else ''}seed {int(seeds[run])})"
