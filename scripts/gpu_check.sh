#!/usr/bin/env bash
# One-shot GPU check of rcpu's CUDA backend (issue 5): the CUDA tests and the bounded benchmarks, with
# the figures written as markdown for docs/benchmarks.md.
#
#   scripts/gpu_check.sh build   Here, on a machine without a GPU: configure and build only the CUDA
#                                targets (Release, sm_90) and stage the binaries and libbenchmark in
#                                build-gpu/stage (a few MB). No device time is spent building.
#   scripts/gpu_check.sh run     On the device machine: run the staged tests and benchmarks, write
#                                gpu-results.md (+ logs and JSON) to $OUT (else docs/gpu-results/).
#   scripts/gpu_check.sh all     build, then run (on a machine with nvcc, Eigen 3.4, Catch2, Google
#                                Benchmark and a GPU).
#
# From a session that has the H200 (see docs/cuda.md, "Running the GPU check"):
#   scripts/gpu_check.sh build                     # here; then call the device tool with
#   run(command="scripts/gpu_check.sh run", carry=["build-gpu/stage"], timeout_s=600)
# Expected device time: about 1-2 min to start the machine, then 3-5 min for this script. Every step
# has its own timeout: tests 5 x 40 s, compute-sanitizer 45 s, benchmarks 75 + 120 + 90 s; their sum,
# 530 s, fits one 600 s call.
#
# Environment: RCPU_GPU_BUILD (build dir, default build-gpu), RCPU_CUDA_ARCH (default 90),
# RCPU_GPU_SANITIZE (1: run compute-sanitizer memcheck on one test binary, default 1),
# RCPU_BENCH_QUICK (1: only the sizes the issue asks for, default 1).
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
build=${RCPU_GPU_BUILD:-build-gpu}
stage=$build/stage
tests=(test_cuda_host test_cuda_statistics test_cuda_procrustes test_cuda_compensation test_cuda_prune)

do_build() {
  set -e
  local jobs
  jobs=$(nproc 2>/dev/null || echo 2)
  # Portable binaries for another machine: no BLAS/LAPACK shared libraries (pure Eigen on the CPU side),
  # so that only glibc, libstdc++ and the CUDA 13 libraries are needed there. (A static libstdc++ would
  # raise the glibc requirement: GCC 12's std::random_device then needs glibc 2.36's arc4random.)
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="${CXX:-g++}" \
    -DRCPU_ENABLE_CUDA=ON -DRCPU_BUILD_TESTS=ON -DRCPU_BUILD_BENCHMARKS=ON -DRCPU_BUILD_EXAMPLES=OFF \
    -DRCPU_BUILD_APPS=OFF -DRCPU_INSTALL=OFF -DRCPU_USE_BLAS=OFF -DCMAKE_CUDA_ARCHITECTURES="${RCPU_CUDA_ARCH:-90}" \
    -DCMAKE_EXE_LINKER_FLAGS=""
  cmake --build "$build" -j "$jobs" --target rcpu_cuda_checks
  rm -rf "$stage"
  mkdir -p "$stage/bin" "$stage/lib"
  for t in "${tests[@]}"; do cp "$build/tests/cuda/$t" "$stage/bin/"; done
  cp "$build/benchmarks/cuda/bench_cuda" "$stage/bin/"
  # Google Benchmark is a shared library on Debian; the device machine does not have it.
  for lib in $(ldd "$stage/bin/bench_cuda" | awk '/libbenchmark/ {print $3}'); do cp -L "$lib" "$stage/lib/"; done
  strip "$stage"/bin/* 2>/dev/null || true
  echo "staged $(du -sh "$stage" | cut -f1) in $stage:"; ls -la "$stage/bin" "$stage/lib"
  echo "shared libraries the device machine must provide:"
  ldd "$stage"/bin/* | awk '/=>/ {print $1}' | sort -u | grep -v -E '^(linux-vdso|libbenchmark)' | sed 's/^/  /'
  echo "newest glibc / libstdc++ symbol versions needed: $(objdump -T "$stage"/bin/* "$stage"/lib/* 2>/dev/null |
    grep -o 'GLIBC_[0-9.]*' | sort -V | tail -1) / $(objdump -T "$stage"/bin/* "$stage"/lib/* 2>/dev/null |
    grep -o 'GLIBCXX_[0-9.]*' | sort -V | tail -1)"
  set +e
}

# Where the CUDA libraries are on the device machine (the binaries' RUNPATH points at this machine's).
cuda_library_path() {
  local dirs=()
  for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
    [ -d "$d" ] && dirs+=("$d")
  done
  local cublas
  cublas=$(find /usr/local /usr/lib /opt -name 'libcublas.so.13' 2>/dev/null | head -1)
  [ -n "$cublas" ] && dirs+=("$(dirname "$cublas")")
  local cusolver
  cusolver=$(find /usr/local /usr/lib /opt -name 'libcusolver.so.12' 2>/dev/null | head -1)
  [ -n "$cusolver" ] && dirs+=("$(dirname "$cusolver")")
  (IFS=:; echo "${dirs[*]}")
}

do_run() {
  local out=${OUT:-docs/gpu-results}
  mkdir -p "$out"
  local md=$out/gpu-results.md tlog=$out/gpu-tests.log blog=$out/gpu-bench.log
  : >"$tlog"
  : >"$blog"
  [ -x "$stage/bin/bench_cuda" ] || { echo "no staged binaries in $stage: run 'scripts/gpu_check.sh build' first (or 'all')"; exit 2; }
  export LD_LIBRARY_PATH="$PWD/$stage/lib:$(cuda_library_path)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local start
  start=$(date +%s)
  local device="unknown device" driver="?" 
  if command -v nvidia-smi >/dev/null; then
    device=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)
    driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)
  fi
  {
    echo "## rcpu CUDA backend on the GPU: $(date -u +%Y-%m-%d) on ${device}"
    echo
    echo "Driver ${driver}; CUDA runtime $(ldd "$stage/bin/bench_cuda" | awk '/libcudart/ {print $3}'); binaries built for sm_90 by \`scripts/gpu_check.sh build\` at commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') (plus uncommitted changes, if any)."
    echo
    echo "### Tests (GPU against the CPU implementation)"
    echo
    echo "| binary | result | seconds |"
    echo "|---|---|---|"
  } >"$md"
  for t in "${tests[@]}"; do
    if ldd "$stage/bin/$t" | grep -q "not found"; then
      echo "$t: missing libraries:" | tee -a "$tlog"; ldd "$stage/bin/$t" | grep "not found" | tee -a "$tlog"
    fi
  done
  local failed=0
  for t in "${tests[@]}"; do
    local t0 rc result
    t0=$(date +%s)
    echo "=== $t" >>"$tlog"
    timeout 40 "$stage/bin/$t" >>"$tlog" 2>&1
    rc=$?
    case $rc in
      0) result="passed" ;;
      77) result="skipped (no device)" ;;
      124) result="TIMED OUT (40 s)"; failed=1 ;;
      *) result="FAILED (exit $rc)"; failed=1 ;;
    esac
    echo "| $t | $result | $(( $(date +%s) - t0 )) |" >>"$md"
    echo "$t: $result"
  done
  echo >>"$md"
  grep -E "^(test cases|assertions|All tests passed)" "$tlog" | sed 's/^/    /' >>"$md"
  echo >>"$md"

  if [ "${RCPU_GPU_SANITIZE:-1}" = "1" ] && command -v compute-sanitizer >/dev/null; then
    echo "=== compute-sanitizer memcheck: test_cuda_statistics" >>"$tlog"
    timeout 45 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 \
      "$stage/bin/test_cuda_statistics" "long blocks and many channels*" \
      >>"$tlog" 2>&1
    local src=$?
    echo "compute-sanitizer memcheck of test_cuda_statistics (one test case): exit $src (0: clean, 9: errors found, 124: timeout)" | tee -a "$md"
    echo >>"$md"
  fi

  export RCPU_BENCH_QUICK=${RCPU_BENCH_QUICK:-1}
  local part
  for part in gram procrustes llama7b; do
    local limit=75
    [ "$part" = procrustes ] && limit=120
    [ "$part" = llama7b ] && limit=90
    echo "=== bench $part (timeout $limit s)" >>"$blog"
    local filter="^$part/"
    [ "$part" = gram ] && filter="^(gram|gemm)/"
    timeout "$limit" "$stage/bin/bench_cuda" --benchmark_filter="$filter" --benchmark_counters_tabular=true \
      --benchmark_out="$out/gpu-bench-$part.json" --benchmark_out_format=json >>"$blog" 2>&1
    echo "bench $part: exit $?" | tee -a "$blog"
  done
  grep -m1 "SKIPPED" "$blog" | sed 's/^/Benchmarks: /' >>"$md"
  python3 scripts/gpu_summary.py "$md" "$out/gpu-bench-gram.json" "$out/gpu-bench-procrustes.json" "$out/gpu-bench-llama7b.json"
  echo "Whole script: $(( $(date +%s) - start )) s on the device." >>"$md"
  echo "results: $md"
  cat "$md"
  return $failed
}

case "$mode" in
  build) do_build ;;
  run) do_run ;;
  all) do_build && do_run ;;
  *) echo "usage: scripts/gpu_check.sh [build|run|all]" >&2; exit 2 ;;
esac
