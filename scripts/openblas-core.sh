# Sourced by scripts that run rcpu's programs (scripts/test.sh, benchmarks/scale/run.sh).
# Debian 12's OpenBLAS 0.3.21 does not recognise recent Intel Xeons with AVX-512 and runs its generic
# "Prescott" kernels, inside its LAPACK too (docs/performance.md): the SmolLM2 pipeline test takes 4x
# as long there. Names the core for OpenBLAS unless the caller did; other CPUs (AMD's Zen is
# recognised) are left to OpenBLAS.
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -q GenuineIntel /proc/cpuinfo 2>/dev/null &&
  grep -m1 '^flags' /proc/cpuinfo | grep -qw avx512f; then
  export OPENBLAS_CORETYPE=SkylakeX
fi
