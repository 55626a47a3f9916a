"""The one exception for failures found inside compiled code, raised only on request."""

from __future__ import annotations


class DivergedError(FloatingPointError):
    """A run diverged, or an eigenvalue did not converge, and the caller passed ``throw=True``.

    Raised after the compiled work has finished (never from inside it), so every other
    run of a sweep is complete; the message names the runs (their hyperparameters and
    seeds) and the step by which each was frozen.
    """
