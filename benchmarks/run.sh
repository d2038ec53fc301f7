#!/usr/bin/env bash
# Builds rcpu's benchmarks, runs them all with repetitions (medians), and writes docs/benchmarks.md
# with tables, plots (docs/benchmarks-*.svg) and the machine and library versions.
#   benchmarks/run.sh                 full run (about 35-45 min on 2 cores)
#   benchmarks/run.sh --report-only   rewrite docs/benchmarks.md from the last run's JSON files
#   benchmarks/run.sh --only gram     run one group (gram, procrustes, layer, eigen_blas), then report;
#                                     the other groups keep their last figures, and every section of
#                                     the report says when its figures were measured
# Run on a quiet machine: the report records the load average before and after.
# Threads: OpenBLAS's (OPENBLAS_NUM_THREADS, default = all cores) are what the figures use.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${RCPU_BENCH_BUILD:-build/bench}
out=$build/results
mode=run
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --report-only) mode=report ;;
    --only) only=$2; shift ;;
    *) echo "usage: benchmarks/run.sh [--report-only] [--only gram|procrustes|layer|eigen_blas]" >&2; exit 2 ;;
  esac
  shift
done

if [ "$mode" = run ]; then
  jobs=$(nproc 2>/dev/null || echo 2)
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRCPU_BUILD_BENCHMARKS=ON -DRCPU_BUILD_TESTS=OFF \
    -DRCPU_BUILD_EXAMPLES=OFF -DRCPU_BUILD_APPS=OFF -DRCPU_USE_BLAS=ON >/dev/null
  cmake --build "$build" -j "$jobs" --target bench_gram bench_gram_eigen bench_procrustes bench_procrustes_eigen \
    bench_layer bench_eigen_blas
  mkdir -p "$out"
  # A full run describes the machine in machine.txt; a one-group run in machine-<group>.txt, next to it.
  machine="$out/machine.txt"
  if [ -n "$only" ]; then machine="$out/machine-$only.txt"; else rm -f "$out"/machine-*.txt; fi
  {
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
    echo "memory: $(free -g | awk '/^Mem:/ {print $2}') GiB"
    echo "kernel: $(uname -r)"
    echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "compiler: $(c++ --version | head -1)"
    for p in libopenblas0-pthread libopenblas0-openmp libopenblas0-serial liblapacke libbenchmark1debian libeigen3-dev; do
      v=$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true)
      [ -n "$v" ] && echo "package: $p $v"
    done
    echo "blas alternative: $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo unknown)"
    echo "lapack alternative: $(readlink -f /usr/lib/x86_64-linux-gnu/liblapack.so.3 2>/dev/null || echo unknown)"
    echo "OPENBLAS_CORETYPE: ${OPENBLAS_CORETYPE:-(unset)}"
    echo "OPENBLAS_NUM_THREADS: ${OPENBLAS_NUM_THREADS:-(unset)}"
    echo "OMP_NUM_THREADS: ${OMP_NUM_THREADS:-(unset)}"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  } >"$machine"
  start=$(date +%s)
  run() {  # run <group> <binary>: repetitions are set per benchmark; interleaving spreads load bursts
    local group=$1 bin=$2
    if [ -n "$only" ] && [ "$only" != "$group" ]; then return; fi
    echo "== $bin ($(date +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg))"
    "$build/benchmarks/$bin" --benchmark_min_time=0.5 --benchmark_enable_random_interleaving=true \
      --benchmark_out="$out/$bin.json" --benchmark_out_format=json --benchmark_format=console
  }
  run eigen_blas bench_eigen_blas
  run gram bench_gram
  run gram bench_gram_eigen
  run procrustes bench_procrustes
  run procrustes bench_procrustes_eigen
  run layer bench_layer
  {
    echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "duration: $(( $(date +%s) - start )) s"
  } >>"$machine"
fi

python3 "$root/benchmarks/report.py" "$out" "$root/docs"
echo "wrote docs/benchmarks.md"
