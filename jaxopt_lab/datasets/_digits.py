"""The 8x8 handwritten digits, shipped with the package."""

from __future__ import annotations

import functools
import importlib.resources
from typing import NamedTuple

import numpy as np


class Split(NamedTuple):
    """One part of a labelled data set; a pytree whose leaves share the leading axis."""

    x: np.ndarray  # float32 (n, 64): pixel intensities scaled to [0, 1]
    y: np.ndarray  # int32 (n,): class labels 0..9


class Digits(NamedTuple):
    """The digits data set with its fixed train/validation split."""

    train: Split  # 1438 examples
    validation: Split  # 359 examples


NUM_CLASSES = 10
NUM_FEATURES = 64


@functools.cache
def _load() -> Digits:
    resource = importlib.resources.files("jaxopt_lab.datasets").joinpath("digits.npz")
    with resource.open("rb") as f, np.load(f) as z:
        arrays = {name: z[name] for name in ("x_train", "y_train", "x_val", "y_val")}

    def part(x: np.ndarray, y: np.ndarray) -> Split:
        x = (x.astype(np.float32) / np.float32(16.0)).reshape(-1, NUM_FEATURES)
        return Split(x=x, y=y.astype(np.int32))

    return Digits(
        train=part(arrays["x_train"], arrays["y_train"]),
        validation=part(arrays["x_val"], arrays["y_val"]),
    )


def digits() -> Digits:
    """Loads the 8x8 handwritten digits (1797 images, 10 classes) from the package.

    The images come with a fixed split, stratified by class: 1438 for training and 359
    for validation. Pixels are scaled from the original counts 0..16 to float32 in
    [0, 1]; labels are int32. Nothing is downloaded: the arrays are read from a
    compressed file inside the package (made by ``scripts/make_digits.py``). Each call
    returns fresh copies, so callers may modify them.

    Returns:
      A :class:`Digits` with ``train`` and ``validation`` :class:`Split` s, each with
      ``x`` of shape ``(n, 64)`` and ``y`` of shape ``(n,)``. Both are pytrees, so they
      can be passed as ``data`` and ``eval_data`` to :func:`jaxopt_lab.train`.

    Example:
      >>> import jaxopt_lab as jol
      >>> ds = jol.datasets.digits()
      >>> ds.train.x.shape, ds.validation.y.dtype
      ((1438, 64), dtype('int32'))
    """
    cached = _load()
    return Digits(
        train=Split(x=cached.train.x.copy(), y=cached.train.y.copy()),
        validation=Split(x=cached.validation.x.copy(), y=cached.validation.y.copy()),
    )
