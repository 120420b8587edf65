#!/usr/bin/env bash
# The GPU checks of issue 17, from the repo root on a machine with CUDA torch; everything goes to $OUT:
#   bash tools/gpu_check.sh          (about 5 minutes on an H200)
# 1. tests/test_cuda.py, and tests/test_model_management.py against ComfyUI's model management on CUDA;
# 2. the speed bench on CUDA (atelier.py bench --quick --device cuda, training and codec groups);
# 3. the real server on the GPU (no --cpu): another model holding a large tensor on the card is evicted
#    for our training; the dataset node; folder confinement. Needs .gpu/ (tools/prepare_gpu_carry.sh).
# At most 7 files in $OUT: summary.txt (one line per step), test_cuda.txt, bench_cuda.txt, the bench's
# JSON and Markdown, server_test.txt, server_log.txt.
set -u
OUT=${OUT:-/tmp/atelier-gpu}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
ROOT=$PWD
note() { echo "[$(date +%T)] $*" | tee -a "$OUT/summary.txt"; }
note "env: $($PY -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))" 2>&1)"
GPU_ENV=()
if [ -d .gpu/ComfyUI ]; then
  pip_out=$($PY -m pip install --quiet --no-index --no-deps --target .gpu/site .gpu/wheels/*.whl 2>&1)
  note "wheels into .gpu/site: rc=$? ${pip_out: -500}"
  STUBS=scipy,av,torchvision,torchaudio,transformers,tokenizers,sentencepiece,kornia,spandrel
  GPU_ENV=(COMFYUI_DIR="$ROOT/.gpu/ComfyUI" PYTHONPATH="$ROOT/.gpu/site:$ROOT/tools/gpu_stubs"
           ATELIER_STUB_MODULES="$STUBS" ATELIER_FRONTEND_ROOT="$ROOT/.gpu/frontend")
fi
timeout 150 env "${GPU_ENV[@]}" $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_model_management.py \
    > "$OUT/test_cuda.txt" 2>&1
note "test_cuda + model management: rc=$? $(tail -1 "$OUT/test_cuda.txt")"
timeout 150 $PY atelier.py bench --quick --device cuda --only train,codec --out "$OUT" > "$OUT/bench_cuda.txt" 2>&1
note "bench --device cuda: rc=$?"
if [ -d .gpu/ComfyUI ]; then
  timeout 240 env "${GPU_ENV[@]}" ATELIER_SERVER_GPU=1 $PY -m pytest -q -s -p no:cacheprovider \
      --basetemp=/tmp/atelier-gpu-it tests/integration/test_comfyui.py \
      -k "evicted or dataset_node or confined" > "$OUT/server_test.txt" 2>&1
  note "real server on the GPU: rc=$? $(tail -1 "$OUT/server_test.txt")"
  log=$(find /tmp/atelier-gpu-it -name server.log | head -1)
  [ -n "$log" ] && tail -c 200000 "$log" > "$OUT/server_log.txt"
else
  note "no .gpu/ (run tools/prepare_gpu_carry.sh and carry .gpu): real-server test skipped"
fi
