"""Diagnostics: gradient checks, training-curve diagnosis and unit health.

The recap table of Grosse & Ba's lectures on optimization and the training curves of
Congeduti's lecture as tools: :func:`check_grad` (incorrect gradients:
finite differences), :func:`diagnose` (slow progress, oscillations, instability,
fluctuations, plateaux, overfitting), :func:`unit_health` and :func:`symmetric_units`
(dead or saturated units, symmetries), :func:`record_activations` (activations of a Flax
NNX model), and :func:`gradient_noise` (the minibatch gradient's variance against the
:math:`1/S` law and the noise scale that says when a larger batch stops paying; Grosse &
Ba, "CSC421 Lectures 7-8: Optimization", and Goodfellow et al. ch. 8 as taught by Favaro).
"""

from jaxopt_lab.diagnostics._curves import PROBLEMS as PROBLEMS
from jaxopt_lab.diagnostics._curves import Finding as Finding
from jaxopt_lab.diagnostics._curves import diagnose as diagnose
from jaxopt_lab.diagnostics._grad_check import GradCheck as GradCheck
from jaxopt_lab.diagnostics._grad_check import LeafCheck as LeafCheck
from jaxopt_lab.diagnostics._grad_check import check_grad as check_grad
from jaxopt_lab.diagnostics._noise import GradientNoise as GradientNoise
from jaxopt_lab.diagnostics._noise import gradient_noise as gradient_noise
from jaxopt_lab.diagnostics._units import ACTIVATIONS as ACTIVATIONS
from jaxopt_lab.diagnostics._units import LayerHealth as LayerHealth
from jaxopt_lab.diagnostics._units import LayerSymmetry as LayerSymmetry
from jaxopt_lab.diagnostics._units import Symmetry as Symmetry
from jaxopt_lab.diagnostics._units import UnitHealth as UnitHealth
from jaxopt_lab.diagnostics._units import record_activations as record_activations
from jaxopt_lab.diagnostics._units import symmetric_units as symmetric_units
from jaxopt_lab.diagnostics._units import unit_health as unit_health

__all__ = [
    "ACTIVATIONS",
    "PROBLEMS",
    "Finding",
    "GradCheck",
    "GradientNoise",
    "LayerHealth",
    "LayerSymmetry",
    "LeafCheck",
    "Symmetry",
    "UnitHealth",
    "check_grad",
    "diagnose",
    "gradient_noise",
    "record_activations",
    "symmetric_units",
    "unit_health",
]
