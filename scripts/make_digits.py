"""Regenerates ``jaxopt_lab/datasets/digits.npz`` from scikit-learn's copy of UCI digits.

The file holds the 1797 8x8 images of the UCI "Optical Recognition of Handwritten
Digits" test set (Alpaydin & Kaynak, 1998; CC BY 4.0) as ``uint8`` pixel counts 0..16,
split once into training and validation sets, stratified by class (20% of each class
to validation, chosen with a fixed NumPy seed). scikit-learn is needed only here, never
by the package.

Run from the repository root::

    pip install scikit-learn
    python scripts/make_digits.py
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

VALIDATION_FRACTION = 0.2
SEED = 0


def split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns sorted (train, validation) index arrays, stratified by class."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val = round(fraction * idx.size)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def main() -> None:
    from sklearn.datasets import load_digits

    default = pathlib.Path(__file__).resolve().parents[1] / "jaxopt_lab/datasets/digits.npz"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=default)
    args = parser.parse_args()

    bunch = load_digits()
    x = bunch.data.astype(np.uint8)  # pixel counts 0..16
    y = bunch.target.astype(np.uint8)
    assert x.shape == (1797, 64) and np.array_equal(bunch.data, x), "unexpected digits data"
    train, val = split(y, VALIDATION_FRACTION, SEED)
    np.savez_compressed(args.out, x_train=x[train], y_train=y[train], x_val=x[val], y_val=y[val])
    print(f"wrote {args.out}: {train.size} train, {val.size} validation examples")


if __name__ == "__main__":
    main()
