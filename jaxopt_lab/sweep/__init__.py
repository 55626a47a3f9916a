"""Vmapped hyperparameter sweeps, sharded over devices, with result tables."""

from jaxopt_lab.sweep._grid import seed_keys as seed_keys
from jaxopt_lab.sweep._result import SweepResult as SweepResult
from jaxopt_lab.sweep._sweep import sweep as sweep

__all__ = [
    "SweepResult",
    "seed_keys",
    "sweep",
]
