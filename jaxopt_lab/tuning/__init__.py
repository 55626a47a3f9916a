"""Tuning protocols on the sweep engine: successive halving, comparisons, profiles.

- :func:`tune`: synchronous successive halving of a sample of trials;
- :func:`compare`: optimizer families tuned alike on a suite of problems, their best
  settings rerun with fresh seeds: final and best losses with intervals, steps and
  seconds to a target, divergence rates (a :class:`Comparison`);
- :func:`performance_profile`: AlgoPerf's performance profiles of times to a target;
- :data:`FAMILIES` / :func:`family`: optimizer families with their search spaces.
"""

from jaxopt_lab.tuning._compare import Comparison as Comparison
from jaxopt_lab.tuning._compare import Entry as Entry
from jaxopt_lab.tuning._compare import Stat as Stat
from jaxopt_lab.tuning._compare import compare as compare
from jaxopt_lab.tuning._families import FAMILIES as FAMILIES
from jaxopt_lab.tuning._families import family as family
from jaxopt_lab.tuning._profile import Profile as Profile
from jaxopt_lab.tuning._profile import performance_profile as performance_profile
from jaxopt_lab.tuning._tune import Rung as Rung
from jaxopt_lab.tuning._tune import TuneResult as TuneResult
from jaxopt_lab.tuning._tune import rung_schedule as rung_schedule
from jaxopt_lab.tuning._tune import tune as tune

__all__ = [
    "FAMILIES",
    "Comparison",
    "Entry",
    "Profile",
    "Rung",
    "Stat",
    "TuneResult",
    "compare",
    "family",
    "performance_profile",
    "rung_schedule",
    "tune",
]
