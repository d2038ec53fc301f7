#!/usr/bin/env bash
# Development only (never run in CI): creates the virtual environment that the llama.cpp reference
# scripts (logits.py, compare.py, bench.py, to_f32.py) run in. It installs PyPI's llama-cpp-python
# (an sdist: llama.cpp is compiled here with CMake, about 6 CPU-minutes) and gguf at the versions the
# reported figures were made with; numpy comes from Debian (python3-numpy) through
# --system-site-packages.
#
# Usage: tools/reference_llamacpp/setup.sh            (venv in build-llamacpp/venv, git-ignored)
#        RCPU_LLAMACPP_VENV=/some/dir tools/reference_llamacpp/setup.sh
# The last line printed is the venv's python.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${RCPU_LLAMACPP_VENV:-$repo/build-llamacpp/venv}"
python=/usr/bin/python3

if ! "$python" -c 'import numpy' 2>/dev/null; then
  echo "setup: numpy missing for $python; installing python3-numpy (needs root)" >&2
  apt-get install -y python3-numpy python3-venv python3-dev cmake >&2
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv" >&2
  "$python" -m venv --system-site-packages "$venv"
fi
if ! "$venv/bin/python" -c 'import llama_cpp, sys; sys.exit(llama_cpp.__version__ != "0.3.36")' 2>/dev/null; then
  echo "setup: building llama-cpp-python==0.3.36 (CMake, about 6 CPU-minutes)" >&2
  CMAKE_ARGS="-DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=ON" CMAKE_BUILD_PARALLEL_LEVEL=2 \
    "$venv/bin/python" -m pip install --no-cache-dir llama-cpp-python==0.3.36 >&2
fi
"$venv/bin/python" -m pip install --quiet gguf==0.19.0 >&2
"$venv/bin/python" -c 'import importlib.metadata, llama_cpp, gguf, numpy; print("setup: llama_cpp", llama_cpp.__version__, "gguf", importlib.metadata.version("gguf"), "numpy", numpy.__version__)' >&2
echo "$venv/bin/python"
