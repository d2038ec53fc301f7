// rcpu: rotation-constrained error compensation for structured pruning.
// SPDX-License-Identifier: MIT
#ifndef RCPU_CUDA_HPP
#define RCPU_CUDA_HPP

/// \file cuda.hpp
/// The optional CUDA backend: statistics, Procrustes, compensation and one-layer pruning on the GPU
/// with cuBLAS and cuSOLVER, mirroring the CPU API (same options, same report). Never included by
/// rcpu/rcpu.hpp; needs the CMake target rcpu::cuda (configure with -DRCPU_ENABLE_CUDA=ON), without
/// which it stops with #error. Host code only: consumers compile it with their own C++17 compiler.
///
///   rcpu::cuda::Context            device, stream, cuBLAS and cuSOLVER handles (RAII)
///   rcpu::cuda::DeviceMatrix<T>    owning column-major device matrix; MatrixView<T> for foreign memory
///   rcpu::cuda::DeviceStatistics   streamed statistics from device token blocks (f32/f64/f16/bf16)
///   rcpu::cuda::Procrustes         the rotation, with four cuSOLVER routes (SolverOptions)
///   rcpu::cuda::compensate         every rcpu::Compensation, from device weights and statistics
///   rcpu::cuda::prune_layer        scores + selection + compensation + report (rcpu::PruneOptions)
///   rcpu::cuda::Error              a failed CUDA / cuBLAS / cuSOLVER call: library, code, name, call

#include "detail/intrinsics.hpp"  // first: before Eigen (see there)

#include "cuda/config.hpp"
#include "cuda/error.hpp"
#include "cuda/context.hpp"
#include "cuda/memory.hpp"
#include "cuda/statistics.hpp"
#include "cuda/procrustes.hpp"
#include "cuda/compensation.hpp"
#include "cuda/prune.hpp"

#endif  // RCPU_CUDA_HPP
