"""Test configuration: strict JAX, headless matplotlib."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
# The command line turns on JAX's persistent compilation cache; the tests that call it in
# this process leave it off (a cache shared across tests would hide compilations they
# count). test_cli checks the cache in a subprocess of its own.
os.environ["JAXOPT_LAB_COMPILATION_CACHE"] = "0"

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
