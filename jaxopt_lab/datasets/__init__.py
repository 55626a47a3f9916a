"""Small data sets bundled with jaxopt_lab; nothing is downloaded at run time.

``digits``: the UCI "Optical Recognition of Handwritten Digits" data set, the 1797-image
8x8 test part as distributed with scikit-learn (E. Alpaydin and C. Kaynak, 1998,
UCI Machine Learning Repository, https://doi.org/10.24432/C50P49), licensed under
CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). Changes: pixel counts
stored as uint8 and split once into training and validation sets
(``scripts/make_digits.py``); the loader scales them to [0, 1].

``standardize``: center and scale input features per feature (zero mean, unit variance),
with ``apply`` for validation data: the input normalization that Grosse & Ba, "CSC421
Lectures 7-8: Optimization", and LeCun, "Optimization for Deep Learning", prescribe
against ill-conditioned curvature.
"""

from jaxopt_lab.datasets._digits import NUM_CLASSES as NUM_CLASSES
from jaxopt_lab.datasets._digits import NUM_FEATURES as NUM_FEATURES
from jaxopt_lab.datasets._digits import Digits as Digits
from jaxopt_lab.datasets._digits import Split as Split
from jaxopt_lab.datasets._digits import digits as digits
from jaxopt_lab.datasets._standardize import Standardized as Standardized
from jaxopt_lab.datasets._standardize import standardize as standardize

__all__ = [
    "NUM_CLASSES",
    "NUM_FEATURES",
    "Digits",
    "Split",
    "Standardized",
    "digits",
    "standardize",
]
