#!/usr/bin/env bash
# Fetches the distribution-shift calibration corpus of docs/results.md: the Python 3.11 documentation
# as Debian 12 packages it (python3.11-doc, downloaded with `apt-get download`, never installed),
# turned into plain text by scripts/shift_corpus.py. Prints the path of the text file on stdout.
#
# Usage: scripts/fetch_shift_corpus.sh          (files in build-models/pydoc, git-ignored)
#        RCPU_SHIFT_DIR=/some/dir scripts/fetch_shift_corpus.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${RCPU_SHIFT_DIR:-$repo/build-models/pydoc}"
out="$dir/pydoc.txt"
if [ ! -s "$out" ]; then
  mkdir -p "$dir"
  if ! ls "$dir"/python3.11-doc_*.deb >/dev/null 2>&1; then
    echo "fetch_shift_corpus: apt-get download python3.11-doc" >&2
    (cd "$dir" && apt-get download python3.11-doc >&2)
  fi
  rm -rf "$dir/x"
  dpkg-deb -x "$(ls "$dir"/python3.11-doc_*.deb | head -n 1)" "$dir/x"
  python3 "$repo/scripts/shift_corpus.py" "$dir/x/usr/share/doc/python3.11/html" "$out.tmp"
  mv "$out.tmp" "$out"
fi
echo "$out"
