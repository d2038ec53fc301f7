// rcpu: rotation-constrained error compensation for structured pruning.
// SPDX-License-Identifier: MIT
#ifndef RCPU_CUDA_CONFIG_HPP
#define RCPU_CUDA_CONFIG_HPP

/// \file cuda/config.hpp
/// Entry guard of the optional CUDA backend. Every header under rcpu/cuda/ includes this one first.
/// The backend is host code only (cuBLAS, cuSOLVER and the CUDA runtime API, compiled by the
/// consumer's own C++ compiler), plus a few small kernels that the CMake target rcpu::cuda builds
/// into a static library. Linking that target defines RCPU_CUDA_LINKED.

#ifndef RCPU_CUDA_LINKED
#error "rcpu/cuda.hpp is the optional CUDA backend: configure rcpu with -DRCPU_ENABLE_CUDA=ON and link the CMake target rcpu::cuda (it builds the backend's kernels and links cuBLAS, cuSOLVER and the CUDA runtime). The CPU library is rcpu/rcpu.hpp."
#endif

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <cstdint>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include "../config.hpp"
#include "types.hpp"

#endif  // RCPU_CUDA_CONFIG_HPP
