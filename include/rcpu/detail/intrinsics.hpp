// SPDX-License-Identifier: MIT
#ifndef RCPU_DETAIL_INTRINSICS_HPP
#define RCPU_DETAIL_INTRINSICS_HPP

// Included first by every rcpu header, before Eigen.
//
// g++ (12 at least) reports -Wmaybe-uninitialized and -Wuninitialized inside its own AVX-512
// intrinsics wherever Eigen's AVX-512 kernels inline them (with -march=native on an AVX-512 machine,
// or -march=x86-64-v4): _mm512_undefined_pd() and friends are a variable initialised with itself, on
// purpose. The false warning is reported at the intrinsic's own line, and g++ takes the diagnostic
// state of that line, so the two warnings are switched off while the compiler's intrinsic headers are
// read here, and for nothing else: rcpu's code and the user's keep both. (If <immintrin.h> was
// included before any rcpu header, its lines were read outside this and the warnings can appear:
// include rcpu's headers before Eigen's.)
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__) && (defined(__x86_64__) || defined(__i386__))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

#endif  // RCPU_DETAIL_INTRINSICS_HPP
