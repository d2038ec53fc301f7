// SPDX-License-Identifier: MIT
#ifndef RCPU_CUDA_TYPES_HPP
#define RCPU_CUDA_TYPES_HPP

/// \file cuda/types.hpp
/// Element types and storage orders of device data. Free of Eigen, so that the backend's kernel
/// translation unit (compiled by nvcc) can include it.

#ifndef RCPU_CUDA_LINKED
#error "rcpu/cuda/*.hpp is the optional CUDA backend: configure rcpu with -DRCPU_ENABLE_CUDA=ON and link the CMake target rcpu::cuda."
#endif

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <cstddef>

#include <library_types.h>

namespace rcpu {
namespace cuda {

/// Element type of activations handed to the device statistics.
enum class DataType {
  f32,  ///< float
  f64,  ///< double
  f16,  ///< IEEE half (__half)
  bf16  ///< bfloat16 (__nv_bfloat16)
};

inline const char* to_string(DataType t) {
  switch (t) {
    case DataType::f32: return "f32";
    case DataType::f64: return "f64";
    case DataType::f16: return "f16";
    case DataType::bf16: return "bf16";
  }
  return "unknown";
}

/// Bytes per element.
inline std::size_t size_of(DataType t) {
  switch (t) {
    case DataType::f32: return 4;
    case DataType::f64: return 8;
    case DataType::f16: return 2;
    case DataType::bf16: return 2;
  }
  return 0;
}

/// The cuBLAS / cuSOLVER name of a DataType.
inline cudaDataType cuda_data_type(DataType t) {
  switch (t) {
    case DataType::f32: return CUDA_R_32F;
    case DataType::f64: return CUDA_R_64F;
    case DataType::f16: return CUDA_R_16F;
    case DataType::bf16: return CUDA_R_16BF;
  }
  return CUDA_R_32F;
}

/// Storage order of a tokens x channels block in device memory.
enum class StorageOrder {
  row_major,  ///< token after token (a contiguous PyTorch activation [tokens, channels]); ld >= channels
  col_major   ///< channel after channel (Eigen's default for a tokens x channels matrix); ld >= tokens
};

inline const char* to_string(StorageOrder o) { return o == StorageOrder::row_major ? "row_major" : "col_major"; }

}  // namespace cuda
}  // namespace rcpu

#endif  // RCPU_CUDA_TYPES_HPP
