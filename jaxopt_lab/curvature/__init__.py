"""Curvature: Hessian eigen-analysis from 2-D toys to trained nets.

Dense (``jax.hessian`` + ``eigh``) for small problems; matrix-free Hessian-vector products
averaged over data (Lanczos, Hutchinson, stochastic Lanczos quadrature) for large ones.
:func:`along_gradient` is the second-order Taylor test along the gradient (Goodfellow et
al. ch. 8 as taught by Favaro): the curvature :math:`g^\\top H g / g^\\top g` and the
largest step that still decreases the quadratic model.
"""

from jaxopt_lab.curvature._along import AlongGradient as AlongGradient
from jaxopt_lab.curvature._along import along_gradient as along_gradient
from jaxopt_lab.curvature._analyze import CurvatureReport as CurvatureReport
from jaxopt_lab.curvature._analyze import analyze as analyze
from jaxopt_lab.curvature._analyze import classify as classify
from jaxopt_lab.curvature._blocks import BlockOperator as BlockOperator
from jaxopt_lab.curvature._blocks import BlockSpectra as BlockSpectra
from jaxopt_lab.curvature._blocks import block_spectra as block_spectra
from jaxopt_lab.curvature._dense import DENSE_MAX_BYTES as DENSE_MAX_BYTES
from jaxopt_lab.curvature._dense import dense_hessian as dense_hessian
from jaxopt_lab.curvature._eigen import Eigen as Eigen
from jaxopt_lab.curvature._eigen import eigenvalues as eigenvalues
from jaxopt_lab.curvature._eigen import power_iteration as power_iteration
from jaxopt_lab.curvature._ggn import OUTPUT_LOSSES as OUTPUT_LOSSES
from jaxopt_lab.curvature._ggn import FisherOperator as FisherOperator
from jaxopt_lab.curvature._ggn import GGNOperator as GGNOperator
from jaxopt_lab.curvature._ggn import fisher_operator as fisher_operator
from jaxopt_lab.curvature._ggn import ggn_operator as ggn_operator
from jaxopt_lab.curvature._operator import HessianOperator as HessianOperator
from jaxopt_lab.curvature._operator import hvp_operator as hvp_operator
from jaxopt_lab.curvature._precondition import PreconditionedOperator as PreconditionedOperator
from jaxopt_lab.curvature._precondition import diagonal_preconditioner as diagonal_preconditioner
from jaxopt_lab.curvature._precondition import precondition as precondition
from jaxopt_lab.curvature._precondition import (
    preconditioned_sharpness as preconditioned_sharpness,
)
from jaxopt_lab.curvature._precondition import stability_threshold as stability_threshold
from jaxopt_lab.curvature._sharpness import SharpnessCallback as SharpnessCallback
from jaxopt_lab.curvature._sharpness import SharpnessState as SharpnessState
from jaxopt_lab.curvature._sharpness import sharpness_callback as sharpness_callback
from jaxopt_lab.curvature._stochastic import SpectralDensity as SpectralDensity
from jaxopt_lab.curvature._stochastic import TraceEstimate as TraceEstimate
from jaxopt_lab.curvature._stochastic import density as density
from jaxopt_lab.curvature._stochastic import trace as trace
from jaxopt_lab.curvature._subspace import SubspaceCallback as SubspaceCallback
from jaxopt_lab.curvature._subspace import SubspaceOverlap as SubspaceOverlap
from jaxopt_lab.curvature._subspace import gradient_overlap as gradient_overlap
from jaxopt_lab.curvature._subspace import subspace_callback as subspace_callback
from jaxopt_lab.curvature._surface import Interpolation as Interpolation
from jaxopt_lab.curvature._surface import LossSurface as LossSurface
from jaxopt_lab.curvature._surface import interpolate as interpolate
from jaxopt_lab.curvature._surface import loss_surface as loss_surface
from jaxopt_lab.transforms._rule import Preconditioner as Preconditioner

__all__ = [
    "DENSE_MAX_BYTES",
    "OUTPUT_LOSSES",
    "AlongGradient",
    "BlockOperator",
    "BlockSpectra",
    "CurvatureReport",
    "Eigen",
    "FisherOperator",
    "GGNOperator",
    "HessianOperator",
    "Interpolation",
    "LossSurface",
    "PreconditionedOperator",
    "Preconditioner",
    "SharpnessCallback",
    "SharpnessState",
    "SpectralDensity",
    "SubspaceCallback",
    "SubspaceOverlap",
    "TraceEstimate",
    "along_gradient",
    "analyze",
    "block_spectra",
    "classify",
    "dense_hessian",
    "density",
    "diagonal_preconditioner",
    "eigenvalues",
    "fisher_operator",
    "ggn_operator",
    "gradient_overlap",
    "hvp_operator",
    "interpolate",
    "loss_surface",
    "power_iteration",
    "precondition",
    "preconditioned_sharpness",
    "sharpness_callback",
    "stability_threshold",
    "subspace_callback",
    "trace",
]
