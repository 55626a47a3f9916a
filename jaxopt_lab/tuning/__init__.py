"""Tuning protocols on the sweep engine: successive halving, comparisons, profiles.

- :func:`tune`: synchronous successive halving of a sample of trials;
- :func:`performance_profile`: AlgoPerf's performance profiles of times to a target.
"""

from jaxopt_lab.tuning._profile import Profile as Profile
from jaxopt_lab.tuning._profile import performance_profile as performance_profile
from jaxopt_lab.tuning._tune import Rung as Rung
from jaxopt_lab.tuning._tune import TuneResult as TuneResult
from jaxopt_lab.tuning._tune import rung_schedule as rung_schedule
from jaxopt_lab.tuning._tune import tune as tune

__all__ = ["Profile", "Rung", "TuneResult", "performance_profile", "rung_schedule", "tune"]
