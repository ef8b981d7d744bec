#!/usr/bin/env bash
# One-command GPU benchmark (issue #17): training (U-Net, pix2pix b1/b4, DCGAN at retina.yaml
# size, bf16 + torch.compile), sampling, and a 1-process torchrun run, in under 8 minutes.
# Writes $OUT/gpu_bench.json and $OUT/gpu_bench.md (OUT defaults to bench_out). All the logic,
# and every option (--seconds, --only, --peak-tflops, --budget, ...), is in bench/bench_gpu.py:
#   OUT=/tmp/out bash bench/gpu.sh [--seconds 15] [--only unet,dcgan]
set -euo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" bench/bench_gpu.py --device cuda --out "${OUT:-bench_out}" "$@"
