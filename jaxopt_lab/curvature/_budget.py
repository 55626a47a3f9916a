"""The memory budget of the dense path, shared by :func:`dense_hessian` and
:meth:`HessianOperator.dense` (its own module, so that neither imports the other).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxopt_lab._validation import check_count

DENSE_MAX_BYTES = 1 << 30
"""Default budget of :func:`dense_hessian`: 1 GiB for the matrix (float32: D <= 16384)."""


def _gib(num_bytes: float) -> str:
    return f"{num_bytes / 2**30:.3g} GiB"


def _budget(max_bytes: Any) -> int:
    if max_bytes is None:
        return DENSE_MAX_BYTES
    return check_count(
        max_bytes, "max_bytes", fix="Pass a number of bytes, e.g. 2**30 for 1 GiB, or None."
    )


def check_dense_budget(size: int, dtype: Any, max_bytes: int | None, peak: int = 0) -> None:
    """Raises ``ValueError`` when the dense path would use more than ``max_bytes``.

    ``peak`` is the memory the compiled program needs (matrix, work space, arguments);
    without it only the matrix is counted (a lower bound, checked before compiling).
    A ``max_bytes`` that is not a whole number >= 1 (or None) is refused by
    :func:`jaxopt_lab._validation.check_count`.
    """
    budget = _budget(max_bytes)
    matrix = size * size * np.dtype(dtype).itemsize
    needed = max(matrix, peak)
    if needed > budget:
        what = (
            f"{_gib(needed)} at its peak (the {_gib(matrix)} matrix, its symmetrised copy "
            "and the work space of the Hessian-vector products)"
            if peak > matrix
            else f"{_gib(matrix)} ({size:,} x {size:,} x {np.dtype(dtype).itemsize} bytes)"
        )
        raise ValueError(
            f"The dense Hessian of {size:,} parameters needs {what}, above `max_bytes` = "
            f"{_gib(budget)}. Use the matrix-free path instead "
            '(`jol.curvature.analyze(..., method="lanczos")`, or `eigenvalues`, `trace`, '
            "`density` on the loss or on a `jol.curvature.hvp_operator`), or raise "
            "`max_bytes` if the memory is really there."
        )
