"""Test configuration: strict JAX, headless matplotlib."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
# The command line turns on JAX's persistent compilation cache; the tests that call it in
# this process leave it off (a cache shared across tests would hide compilations they
# count). test_cli checks the cache in a subprocess of its own.
os.environ["JAXOPT_LAB_COMPILATION_CACHE"] = "0"
# Compiling is most of the suite's time (programs run for a few steps on small models),
# and XLA:CPU's backend optimizations are most of compiling: the tests build programs at
# level 0 (a quarter less wall time). They check behaviour and numbers, which agree with
# the default level to float rounding within their tolerances, and bit-for-bit claims
# compare programs built alike. Subprocesses (the CLI, several processes, notebooks)
# inherit it. Users, the README's commands and the benchmarks keep XLA's default.
_LEVEL = "--xla_backend_optimization_level"
if _LEVEL not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_LEVEL}=0".strip()

import jax  # noqa: E402 (after XLA_FLAGS is set)

import jaxopt_lab._xla_workaround  # noqa: E402, F401 (before any test starts JAX's CPU backend)

jax.config.update("jax_numpy_rank_promotion", "raise")
# As optimistix: no implicit dtype promotion in the tests (a float32 array times a Python
# float is fine; float32 with float64, or int with float, must be made explicit). Users'
# code runs under JAX's default ("standard") promotion, which the library also supports.
jax.config.update("jax_numpy_dtype_promotion", "strict")
