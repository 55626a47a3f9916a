"""A guard against a known miscompilation of jaxlib 0.10.2 on CPU.

jaxlib 0.10.2's XLA:CPU offloads some fused dot and reduce computations to YNNPACK and
returns wrong numbers for them under ``jit`` (jax-ml/jax#39103, fixed in later
releases; 0.10.1 is not affected). Here it turned diagonal blocks of a Gauss-Newton
matrix (a ``vmap`` of ``jvp``/``vjp`` products inside ``jit``) into values of 1e22 or NaN.
Importing jaxopt_lab with that jaxlib adds ``--xla_cpu_experimental_ynn_fusion_type=``
(no YNNPACK fusions) to ``XLA_FLAGS`` before JAX starts its CPU backend, unless
``XLA_FLAGS`` already sets that option or ``JAXOPT_LAB_KEEP_XLA_FLAGS=1``. The flag
concerns the CPU backend only. A program that started JAX's CPU backend before importing
jaxopt_lab is not covered: set the flag yourself there.
"""

from __future__ import annotations

import os

AFFECTED = ("0.10.2",)
FLAG = "--xla_cpu_experimental_ynn_fusion_type="


def apply() -> bool:
    """Adds :data:`FLAG` to ``XLA_FLAGS`` where it is needed; returns whether it did."""
    try:
        from importlib.metadata import version

        jaxlib_version = version("jaxlib")
    except Exception:  # pragma: no cover - jaxlib is a dependency
        return False
    if jaxlib_version not in AFFECTED or os.environ.get("JAXOPT_LAB_KEEP_XLA_FLAGS") == "1":
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" in flags:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    return True


APPLIED = apply()
