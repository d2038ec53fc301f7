#!/usr/bin/env bash
# Creates the Python environment of make_fixtures.py: a venv at build-quants/venv (git-ignored) that
# sees Debian's numpy (python3-numpy) and has PyPI gguf 0.19.0, the reference the fixtures come from.
#   tools/quants_reference/setup.sh
#   build-quants/venv/bin/python tools/quants_reference/make_fixtures.py
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/build-quants/venv"
if ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  echo "setup.sh: Debian's numpy is missing: sudo apt-get install python3-numpy python3-venv" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$(dirname "$venv")"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
"$venv/bin/python" -m pip install --disable-pip-version-check gguf==0.19.0
"$venv/bin/python" -c 'import gguf, numpy, importlib.metadata as m; print("gguf", m.version("gguf"), "numpy", numpy.__version__)'
