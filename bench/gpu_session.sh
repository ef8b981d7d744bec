#!/usr/bin/env bash
# A lent GPU's 15 minutes, prepared: what is still unmeasured on a GPU, in one device call.
#
#   bash bench/gpu_session.sh prepare   # here, before asking for the device (about 1 minute):
#                                       # wheels the device image lacks -> .whl/, segsynth's own
#                                       # wheel (entry points make the plugins), HRF -> .hrf/
#   device run: command "bash bench/gpu_session.sh run", carry [".whl", ".hrf"], timeout_s 600
#
# `run` installs the wheels into /tmp/site, runs bench/bench_gpu.py on the parts not yet measured
# on a GPU (docs/benchmarks.md: sampling after the writer change, batch-16 MFU, DCGAN, pix2pix b4),
# then recipes/retina-hrf-gpu.yaml (#12) for whatever time is left (END_S, default 570 s after
# the start), and packs the run's small files (no checkpoints, no pairs) into $OUT/hrf_run.tgz.
# A run cut short keeps its checkpoints in runs/hrf-gpu on the warm machine: calling `run` again
# at once with HRF_ONLY=1 resumes it. The device image has torch but not pydantic or kornia
# (/work/.library/device/KINDS.md lists its packages); the versions below are this venv's.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
case "${1:-}" in
prepare)
  for line in /.whl/ /.hrf/; do grep -qxF "$line" .git/info/exclude 2>/dev/null || echo "$line" >> .git/info/exclude; done
  rm -rf .whl && mkdir -p .whl
  pins=$("$PY" -m pip list --format=freeze 2>/dev/null | grep -iE '^(pydantic|pydantic[-_]core|annotated[-_]types|typing[-_]inspection|kornia|kornia[-_]rs|typing[-_]extensions)==')
  "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl $pins || exit 1
  "$PY" -m pip wheel --no-deps -q . -w .whl || exit 1
  rm -rf .hrf && cp -r "${HRF:-../shared/data/HRF}" .hrf || exit 1
  du -sh .whl .hrf ;;
run)
  export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
  T0=$(date +%s)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site
  nvidia-smi --query-gpu=name,memory.total --format=csv
  python3 -c "import segsynth, pydantic, kornia, torch; print('imports ok, torch', torch.__version__)" || exit 4
  if [ "${HRF_ONLY:-0}" = 0 ]; then
    timeout "${BENCH_S:-240}" python3 bench/bench_gpu.py --device cuda --out "$OUT/bench" --seconds 4 \
      --budget "${BENCH_BUDGET:-175}" --only "${PARTS:-sampling,sampling_level1,unet_b16,pix2pix_b4,dcgan,pix2pix_b16}" \
      2>&1 | tee "$OUT/bench.log"
  fi
  left=$(( ${END_S:-570} - ($(date +%s) - T0) ))
  echo "retina-hrf-gpu gets $left s"
  timeout "$left" python3 -m segsynth.cli run recipes/retina-hrf-gpu.yaml --out runs/hrf-gpu --device cuda \
    --set "data.params.root=$PWD/.hrf" --no-progress > "$OUT/hrf.log" 2>&1
  echo "retina-hrf-gpu exit $? at $(( $(date +%s) - T0 )) s"; tail -30 "$OUT/hrf.log"
  (cd runs/hrf-gpu 2>/dev/null && tar czf "$OUT/hrf_run.tgz" --exclude='*.pt' --exclude='*.safetensors' \
    --exclude='synthetic/images' --exclude='synthetic/masks' .)
  ls -la "$OUT" ;;
*) echo "usage: bash bench/gpu_session.sh prepare|run" >&2; exit 2 ;;
esac
