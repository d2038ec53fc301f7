// Helpers of the CUDA device tests: one Context for the whole run, token blocks in every element type
// and storage order (with the values the device will see, rounded as the device rounds them), and
// layers with structured activations.
#ifndef RCPU_TESTS_CUDA_SUPPORT_HPP
#define RCPU_TESTS_CUDA_SUPPORT_HPP

#include <rcpu/cuda.hpp>
#include <rcpu/rcpu.hpp>

#include <cstring>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "support.hpp"

namespace rcpu_cuda_test {

using rcpu::Index;
using rcpu::cuda::DataType;
using rcpu::cuda::StorageOrder;

/// The context every test shares (device 0).
inline const rcpu::cuda::Context& ctx() {
  static const rcpu::cuda::Context c(0);
  return c;
}

template <typename Scalar>
using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
template <typename Scalar>
using Vec = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

/// A token block in device memory, and the exact values it holds (as double, after rounding to its type).
struct DeviceBlock {
  rcpu::cuda::DeviceBuffer<unsigned char> bytes;
  rcpu::cuda::TokenBlock block;
  Eigen::MatrixXd values;  // tokens x channels
};

template <typename T>
double round_to(double x, T* out) {
  if constexpr (std::is_same<T, float>::value) {
    *out = float(x);
    return double(*out);
  } else if constexpr (std::is_same<T, double>::value) {
    *out = x;
    return x;
  } else if constexpr (std::is_same<T, __half>::value) {
    *out = __float2half(float(x));
    return double(__half2float(*out));
  } else {
    *out = __float2bfloat16(float(x));
    return double(__bfloat162float(*out));
  }
}

template <typename T>
DeviceBlock make_block_typed(const Eigen::MatrixXd& X, DataType type, StorageOrder order, Index pad) {
  const Index n = X.rows(), d = X.cols();
  const bool row = order == StorageOrder::row_major;
  const Index ld = (row ? d : n) + pad;
  std::vector<T> host(std::size_t(ld * (row ? n : d)));
  DeviceBlock b;
  b.values.resize(n, d);
  for (Index t = 0; t < n; ++t)
    for (Index j = 0; j < d; ++j) b.values(t, j) = round_to(X(t, j), &host[std::size_t(row ? t * ld + j : j * ld + t)]);
  const auto guard = ctx().activate();
  b.bytes = rcpu::cuda::DeviceBuffer<unsigned char>(host.size() * sizeof(T));
  rcpu::cuda::detail::upload_bytes(ctx(), b.bytes.data(), host.data(), host.size() * sizeof(T));
  ctx().synchronize();
  b.block = row ? rcpu::cuda::TokenBlock::row_major(b.bytes.data(), type, n, d, ld)
                : rcpu::cuda::TokenBlock::col_major(b.bytes.data(), type, n, d, ld);
  return b;
}

/// X (tokens x channels) as a device block of `type` in `order`, with `pad` unused elements per line.
inline DeviceBlock make_block(const Eigen::MatrixXd& X, DataType type, StorageOrder order, Index pad = 0) {
  switch (type) {
    case DataType::f32: return make_block_typed<float>(X, type, order, pad);
    case DataType::f64: return make_block_typed<double>(X, type, order, pad);
    case DataType::f16: return make_block_typed<__half>(X, type, order, pad);
    case DataType::bf16: return make_block_typed<__nv_bfloat16>(X, type, order, pad);
  }
  return {};
}

/// Activations with structure: low rank, offsets, one loud channel, one channel with |mean| >> std.
inline Eigen::MatrixXd activations(std::uint32_t seed, Index n, Index d, double offset = 3.0) {
  rcpu_test::Rng rng(seed);
  const Index r = std::min<Index>(6, d);
  Eigen::MatrixXd X = rng.normal(n, r) * rng.normal(r, d) / std::sqrt(double(r)) + 0.3 * rng.normal(n, d);
  X.rowwise() += rng.normal(1, d).row(0);
  if (d > 1) X.col(1) *= 8.0;
  if (d > 2) X.col(2).array() += offset * 100.0;
  return X;
}

/// Largest relative difference of two vectors, entrywise against max(|b|, floor).
inline double max_rel(const Eigen::VectorXd& a, const Eigen::VectorXd& b, double floor = 1e-300) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (Index i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a(i) - b(i)) / std::max(std::abs(b(i)), floor));
  return m;
}

/// Device matrix from a host one.
template <typename Scalar>
rcpu::cuda::DeviceMatrix<Scalar> up(const Mat<double>& m) {
  return rcpu::cuda::DeviceMatrix<Scalar>::from_host(ctx(), m.cast<Scalar>());
}

template <typename Scalar>
Eigen::MatrixXd down(const rcpu::cuda::DeviceMatrix<Scalar>& m) {
  return m.to_host(ctx()).template cast<double>();
}

}  // namespace rcpu_cuda_test

#endif  // RCPU_TESTS_CUDA_SUPPORT_HPP
