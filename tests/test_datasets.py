"""Tests of the bundled digits data and of the script that made it."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import numpy as np

import jaxopt_lab as jol

SCRIPT = pathlib.Path(__file__).parents[1] / "scripts" / "make_digits.py"


def test_digits_shapes_ranges_and_split():
    ds = jol.datasets.digits()
    assert ds.train.x.shape == (1438, 64) and ds.validation.x.shape == (359, 64)
    assert ds.train.x.dtype == np.float32 and ds.train.y.dtype == np.int32
    x = np.concatenate([ds.train.x, ds.validation.x])
    y = np.concatenate([ds.train.y, ds.validation.y])
    assert x.shape == (1797, 64)
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(x * 16, np.round(x * 16))  # the original counts 0..16
    np.testing.assert_array_equal(np.unique(y), np.arange(10))
    counts = np.bincount(y)
    assert counts.sum() == 1797 and counts.min() >= 174  # UCI test set: 174..183 per class
    val_share = np.bincount(ds.validation.y) / counts
    np.testing.assert_allclose(val_share, 0.2, atol=0.01)  # stratified split
    assert "sklearn" not in sys.modules  # loaded from the package file


def test_digits_is_fixed_and_returns_copies():
    a, b = jol.datasets.digits(), jol.datasets.digits()
    for part in ("train", "validation"):
        for field in ("x", "y"):
            np.testing.assert_array_equal(
                getattr(getattr(a, part), field), getattr(getattr(b, part), field)
            )
    a.train.x[:] = -1.0
    assert jol.datasets.digits().train.x.min() == 0.0
    # a known example: the first training image is the data set's first image, a zero
    assert b.train.y[0] == 0
    np.testing.assert_array_equal(b.train.x[0, :8] * 16, [0, 0, 5, 13, 9, 1, 0, 0])


def test_make_digits_split_is_stratified_and_deterministic():
    spec = importlib.util.spec_from_file_location("make_digits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    y = np.repeat(np.arange(3), [10, 20, 30])
    train, val = module.split(y, 0.2, seed=0)
    assert np.intersect1d(train, val).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(60))
    np.testing.assert_array_equal(np.bincount(y[val]), [2, 4, 6])
    again = module.split(y, 0.2, seed=0)
    np.testing.assert_array_equal(again[1], val)
