#!/usr/bin/env bash
# Development only: creates the virtual environment that the independent check (compare.py) runs in,
# with PyPI's torch (CPU is enough; the wheel also brings CUDA libraries, about 3 GB), transformers,
# gguf and accelerate at the versions the saved results were made with.
#
# Usage: tools/reference_transformers/setup.sh            (venv in build-ref/venv, git-ignored)
#        RCPU_REF_VENV=/some/dir tools/reference_transformers/setup.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${RCPU_REF_VENV:-$repo/build-ref/venv}"
python="${PYTHON:-/usr/bin/python3}"
[ -x "$python" ] || python="$(command -v python3)"
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv" >&2
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet \
  torch==2.15.0 transformers==5.23.0 gguf==0.19.0 accelerate==1.15.0 numpy
"$venv/bin/python" -c 'import torch, transformers, gguf; print("setup: torch", torch.__version__, "transformers", transformers.__version__)'
echo "$venv/bin/python"
