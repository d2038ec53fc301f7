# The optional CUDA backend: the target rcpu::cuda (included by the top-level CMakeLists.txt when
# RCPU_ENABLE_CUDA is ON; the rcpu target exists at this point).
#
# rcpu::cuda is a small static library (the backend's few kernels, src/cuda/kernels.cu, built by nvcc)
# plus the host-only headers rcpu/cuda.hpp and rcpu/cuda/*.hpp, which any C++17 compiler builds
# against cuBLAS, cuSOLVER and the CUDA runtime: consumers of an installed rcpu::cuda need no nvcc.
# Linking it defines RCPU_CUDA_LINKED, without which rcpu/cuda.hpp stops with #error.
#
#   RCPU_CUDA_ARCHITECTURES  GPU architectures of the kernels (default "80;90": A100, H100/H200, plus
#                            PTX for newer GPUs); CMAKE_CUDA_ARCHITECTURES, when set, wins.

# CMP0104: CUDA_ARCHITECTURES must be set (CMake >= 3.18); this file's policy scope only.
if(POLICY CMP0104)
  cmake_policy(SET CMP0104 NEW)
endif()

find_package(CUDAToolkit REQUIRED)

# Use the toolkit's nvcc unless the user chose a CUDA compiler.
if(NOT CMAKE_CUDA_COMPILER AND CUDAToolkit_NVCC_EXECUTABLE AND EXISTS "${CUDAToolkit_NVCC_EXECUTABLE}")
  set(CMAKE_CUDA_COMPILER "${CUDAToolkit_NVCC_EXECUTABLE}")
endif()
set(RCPU_CUDA_ARCHITECTURES "80;90" CACHE STRING "GPU architectures of rcpu::cuda's kernels")
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES ${RCPU_CUDA_ARCHITECTURES})
endif()
# One CUDA runtime in every binary: the shared one (CUDA::cudart), never also the static one.
if(NOT DEFINED CMAKE_CUDA_RUNTIME_LIBRARY)
  set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
endif()
enable_language(CUDA)

add_library(rcpu_cuda STATIC ${PROJECT_SOURCE_DIR}/src/cuda/kernels.cu)
add_library(rcpu::cuda ALIAS rcpu_cuda)
target_link_libraries(rcpu_cuda PUBLIC rcpu CUDA::cublas CUDA::cusolver CUDA::cudart)
target_compile_definitions(rcpu_cuda PUBLIC RCPU_CUDA_LINKED)
target_compile_features(rcpu_cuda PUBLIC cxx_std_17)
set_target_properties(rcpu_cuda PROPERTIES
  EXPORT_NAME cuda
  CUDA_STANDARD 17
  CUDA_STANDARD_REQUIRED ON
  CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}"
  CUDA_RUNTIME_LIBRARY Shared
  POSITION_INDEPENDENT_CODE ON)
# The kernel file's own warnings (host side through nvcc's host compiler), as errors in rcpu's CI.
if(RCPU_IS_TOP_LEVEL)
  target_compile_options(rcpu_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)
  if(RCPU_WARNINGS_AS_ERRORS)
    target_compile_options(rcpu_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings>)
  endif()
endif()

# Everything CUDA in one target, so that `cmake --build <dir> --target rcpu_cuda_checks` builds the
# library, its tests and benchmarks in parallel (tests/cuda and benchmarks/cuda add themselves).
add_custom_target(rcpu_cuda_checks)
add_dependencies(rcpu_cuda_checks rcpu_cuda)

if(RCPU_INSTALL)
  include(GNUInstallDirs)
  install(TARGETS rcpu_cuda EXPORT rcpuTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  # Read by rcpuConfig.cmake.in: the package then finds CUDAToolkit for rcpu::cuda's dependencies.
  set(RCPU_CUDA_EXPORTED ON)
endif()
