"""Curvature: Hessian eigen-analysis from 2-D toys to trained nets.

Dense (``jax.hessian`` + ``eigh``) for small problems; matrix-free Hessian-vector products
averaged over data (Lanczos, Hutchinson, stochastic Lanczos quadrature) for large ones.
"""

from jaxopt_lab.curvature._analyze import CurvatureReport as CurvatureReport
from jaxopt_lab.curvature._analyze import analyze as analyze
from jaxopt_lab.curvature._analyze import classify as classify
from jaxopt_lab.curvature._dense import DENSE_MAX_BYTES as DENSE_MAX_BYTES
from jaxopt_lab.curvature._dense import dense_hessian as dense_hessian
from jaxopt_lab.curvature._eigen import Eigen as Eigen
from jaxopt_lab.curvature._eigen import eigenvalues as eigenvalues
from jaxopt_lab.curvature._eigen import power_iteration as power_iteration
from jaxopt_lab.curvature._operator import HessianOperator as HessianOperator
from jaxopt_lab.curvature._operator import hvp_operator as hvp_operator
from jaxopt_lab.curvature._sharpness import SharpnessCallback as SharpnessCallback
from jaxopt_lab.curvature._sharpness import SharpnessState as SharpnessState
from jaxopt_lab.curvature._sharpness import sharpness_callback as sharpness_callback
from jaxopt_lab.curvature._stochastic import SpectralDensity as SpectralDensity
from jaxopt_lab.curvature._stochastic import TraceEstimate as TraceEstimate
from jaxopt_lab.curvature._stochastic import density as density
from jaxopt_lab.curvature._stochastic import trace as trace

__all__ = [
    "DENSE_MAX_BYTES",
    "CurvatureReport",
    "Eigen",
    "HessianOperator",
    "SharpnessCallback",
    "SharpnessState",
    "SpectralDensity",
    "TraceEstimate",
    "analyze",
    "classify",
    "dense_hessian",
    "density",
    "eigenvalues",
    "hvp_operator",
    "power_iteration",
    "sharpness_callback",
    "trace",
]
