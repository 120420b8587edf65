#!/usr/bin/env bash
# Fills .gpu/ (git-ignored; name it in the device run's `carry`) with what tools/gpu_check.sh needs for its
# real-server test on a GPU machine that has CUDA torch, pytest, numpy, pillow, safetensors and aiohttp but
# not ComfyUI: ComfyUI's source, and wheels (linux x86_64, CPython 3.12, no dependencies) of the small
# packages its server imports at start. Heavy ones it imports but the test never uses (scipy, av,
# torchvision, transformers...) are stood in for by tools/gpu_stubs instead, keeping .gpu/ near 20 MB.
#   COMFYUI_SRC=/work/comfyui bash tools/prepare_gpu_carry.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${COMFYUI_SRC:-/work/comfyui}
PY_VERSION=${PY_VERSION:-3.12}
grep -qx '.gpu/' "$(git rev-parse --git-common-dir)/info/exclude" 2>/dev/null \
  || echo '.gpu/' >> "$(git rev-parse --git-common-dir)/info/exclude"
rm -rf .gpu
mkdir -p .gpu/wheels .gpu/frontend
# ComfyUI without its virtual environment, tests, caches, models and user folders.
tar -C "$SRC" --exclude=./venv --exclude=./tests --exclude=./tests-unit --exclude='__pycache__' \
    --exclude=./models --exclude=./output --exclude=./input --exclude=./user --exclude=./READY \
    -cf - . | (mkdir -p .gpu/ComfyUI && tar -C .gpu/ComfyUI -xf -)
echo '<!doctype html><title>no frontend</title>' > .gpu/frontend/index.html   # --front-end-root: API only
WHEELS="einops torchsde trampoline pyyaml psutil tqdm requests urllib3 idna certifi charset-normalizer"
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest .gpu/wheels \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --python-version "$PY_VERSION" --implementation cp $WHEELS
ls .gpu/wheels
du -sh .gpu
