"""Test configuration: strict JAX, headless matplotlib."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
# The command line turns on JAX's persistent compilation cache; the tests that call it in
# this process leave it off (a cache shared across tests would hide compilations they
# count). test_cli checks the cache in a subprocess of its own.
os.environ["JAXOPT_LAB_COMPILATION_CACHE"] = "0"

import jax

import jaxopt_lab._xla_workaround  # noqa: F401 (before any test starts JAX's CPU backend)

jax.config.update("jax_numpy_rank_promotion", "raise")
# As optimistix: no implicit dtype promotion in the tests (a float32 array times a Python
# float is fine; float32 with float64, or int with float, must be made explicit). Users'
# code runs under JAX's default ("standard") promotion, which the library also supports.
jax.config.update("jax_numpy_dtype_promotion", "strict")
