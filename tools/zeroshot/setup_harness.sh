#!/usr/bin/env bash
# Development only: the virtual environment for tools/zeroshot/harness_reference.py, EleutherAI
# lm-evaluation-harness 0.4.13 on top of the transformers reference environment. Reuses build-ref/venv
# (tools/reference_transformers/setup.sh: torch, transformers, gguf, accelerate; run first if missing)
# and adds lm-eval with the versions the saved results were made with. Prints the python path on stdout.
#
# Usage: tools/zeroshot/setup_harness.sh            (venv in build-ref/venv, git-ignored)
#        RCPU_REF_VENV=/some/dir tools/zeroshot/setup_harness.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${RCPU_REF_VENV:-$repo/build-ref/venv}"
if ! [ -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import torch, transformers, gguf, accelerate' 2>/dev/null; then
  RCPU_REF_VENV="$venv" "$repo/tools/reference_transformers/setup.sh" >&2
fi
echo "setup_harness: pip install lm-eval==0.4.13 (and pinned datasets, evaluate, pyarrow) into $venv" >&2
# lm-eval's own requirements, pinned where they matter for the results (data loading, metrics).
"$venv/bin/python" -m pip install --quiet \
  lm-eval==0.4.13 datasets==5.2.0 evaluate==0.4.6 pyarrow==26.0.1 >&2
"$venv/bin/python" -c 'import lm_eval, datasets, torch, transformers; print("setup_harness: lm-eval", lm_eval.__version__, "datasets", datasets.__version__, "torch", torch.__version__, "transformers", transformers.__version__)' >&2
echo "$venv/bin/python"
