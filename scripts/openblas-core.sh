# Sourced by scripts that run rcpu's programs (scripts/test.sh, benchmarks/scale/run.sh).
# Debian 12's OpenBLAS 0.3.21 does not recognise recent Intel Xeons with AVX-512 and runs its generic
# "Prescott" kernels, inside its LAPACK too (docs/performance.md). On every Intel CPU with the AVX-512
# subsets of OpenBLAS's SkylakeX kernels (F, CD, BW, DQ, VL) this names that core, unless the caller set
# one; other CPUs (AMD's Zen is recognised) are left to OpenBLAS.
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -q GenuineIntel /proc/cpuinfo 2>/dev/null; then
  rcpu_cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo || true) "
  rcpu_skylakex=1
  for rcpu_flag in avx512f avx512cd avx512bw avx512dq avx512vl; do
    [[ "$rcpu_cpu_flags" == *" $rcpu_flag "* ]] || rcpu_skylakex=0
  done
  if [ "$rcpu_skylakex" = 1 ]; then
    export OPENBLAS_CORETYPE=SkylakeX
  fi
  unset rcpu_cpu_flags rcpu_skylakex rcpu_flag
fi
