#!/usr/bin/env bash
# Development only: the virtual environment of the PyTorch proofs in tools/torch (prune_smollm2.py,
# distributed.py) and of the torch rows of benchmarks/python/bench_update.py: the transformers reference
# environment (tools/reference_transformers/setup.sh: torch, transformers, gguf at pinned versions, about
# 3 GB with torch's CUDA libraries) plus rcpu's Python module built from this clone with `pip install .`.
#
# Usage: tools/torch/setup.sh            (prints the venv's python; build-ref/venv, git-ignored)
#        RCPU_REF_VENV=/some/dir tools/torch/setup.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="$("$repo/tools/reference_transformers/setup.sh" | tail -n 1)"
"$python" -m pip install --quiet pytest >&2
# --force-reinstall: the version number does not change when the clone does.
"$python" -m pip install --quiet --force-reinstall --no-deps "$repo" >&2
"$python" -c 'import rcpu, torch; print("setup: rcpu", rcpu.__version__, "torch", torch.__version__)' >&2
echo "$python"
