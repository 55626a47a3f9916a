#!/usr/bin/env bash
# The GPU benchmark (benchmarks/bench_gpu.py), under 8 minutes on one GPU.
# Run from the repository root on a machine with a GPU and jax[cuda] installed:
#   bash benchmarks/gpu.sh            # pass --quick for a smoke run (also on a CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
  --format=csv,noheader
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # torch and JAX share the GPU
exec timeout 480 python benchmarks/bench_gpu.py "$@"
