// SPDX-License-Identifier: MIT
// The few kernels of rcpu's CUDA backend (declared in rcpu/cuda/kernels.hpp). Everything else in the
// backend is host code calling cuBLAS and cuSOLVER; these cover what the libraries do not: per-channel
// sums of |x| and the two-pass variance of a token block, half/bfloat16 conversion, index gathers,
// symmetrisation of a SYRK result, diagonal updates, and dot products accumulated in double.
//
// Conventions: matrices are column-major, element (i, j) at p[i + j * ld]; 64-bit offsets throughout;
// every reduction has a fixed order, so results do not change from run to run.
#include <rcpu/cuda/kernels.hpp>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace rcpu {
namespace cuda {
namespace detail {
namespace kernels {
namespace {

using i64 = std::int64_t;

constexpr int block_threads = 256;  // every kernel runs 256 threads per block
constexpr i64 max_grid_y = 65535;

__device__ __forceinline__ double load(const float* p, i64 k) { return double(p[k]); }
__device__ __forceinline__ double load(const double* p, i64 k) { return p[k]; }
__device__ __forceinline__ double load(const __half* p, i64 k) { return double(__half2float(p[k])); }
__device__ __forceinline__ double load(const __nv_bfloat16* p, i64 k) { return double(__bfloat162float(p[k])); }

__device__ __forceinline__ double warp_sum(double v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the block (blockDim.x == block_threads); the result is valid in thread 0. Safe to call
// several times in a row (it synchronises before returning).
__device__ double block_sum(double v) {
  __shared__ double warp_sums[block_threads / 32];
  const int lane = int(threadIdx.x) % 32;
  const int warp = int(threadIdx.x) / 32;
  v = warp_sum(v);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < block_threads / 32 ? warp_sums[lane] : 0.0;
    v = warp_sum(v);
  }
  __syncthreads();
  return v;
}

i64 ceil_div(i64 a, i64 b) { return (a + b - 1) / b; }

// 2-D launch shape for an elementwise pass over a rows x cols matrix: x over row tiles, y over columns
// (with a grid-stride loop in y for more than 65535 columns).
dim3 grid_2d(i64 rows, i64 cols) {
  return dim3(unsigned(ceil_div(rows, block_threads)), unsigned(cols < max_grid_y ? cols : max_grid_y), 1);
}

unsigned grid_1d(i64 n) {
  const i64 b = ceil_div(n, block_threads);
  return unsigned(b < 4096 ? (b > 0 ? b : 1) : 4096);
}

// ---------------------------------------------------------------------------------------------
// Moments of a token block.

// Tokens per chunk below which the block is not split further; at most max_chunks chunks.
constexpr i64 max_chunks = 256;

i64 chunk_count(i64 tokens, StorageOrder order) {
  const i64 per = order == StorageOrder::row_major ? 64 : 1024;
  const i64 c = ceil_div(tokens, per);
  return c < 1 ? 1 : (c > max_chunks ? max_chunks : c);
}

// Row-major block (token t, channel j at x[t * ld + j]): one thread per channel and chunk of tokens;
// neighbouring threads read neighbouring channels (coalesced).
template <typename T>
__global__ void moments_rows(const T* __restrict__ x, i64 tokens, i64 channels, i64 ld, i64 chunk_len, i64 chunks,
                             const double* __restrict__ mean, double* __restrict__ part) {
  const i64 j = i64(blockIdx.x) * blockDim.x + threadIdx.x;
  const i64 c = blockIdx.y;
  if (j >= channels) return;
  const i64 t0 = c * chunk_len;
  const i64 t1 = t0 + chunk_len < tokens ? t0 + chunk_len : tokens;
  if (mean == nullptr) {
    double s = 0, a = 0, q = 0;
    for (i64 t = t0; t < t1; ++t) {
      const double v = load(x, t * ld + j);
      s += v;
      a += fabs(v);
      q += v * v;
    }
    part[c * channels + j] = s;
    part[(chunks + c) * channels + j] = a;
    part[(2 * chunks + c) * channels + j] = q;
  } else {
    const double mu = mean[j];
    double m = 0;
    for (i64 t = t0; t < t1; ++t) {
      const double v = load(x, t * ld + j) - mu;
      m += v * v;
    }
    part[c * channels + j] = m;
  }
}

// Column-major block (token t, channel j at x[t + j * ld]): one block per channel and chunk; the
// threads stride over the chunk's tokens (coalesced) and reduce in shared memory.
template <typename T>
__global__ void moments_cols(const T* __restrict__ x, i64 tokens, i64 channels, i64 ld, i64 chunk_len, i64 chunks,
                             const double* __restrict__ mean, double* __restrict__ part) {
  const i64 j = blockIdx.x;
  const i64 c = blockIdx.y;
  const i64 t0 = c * chunk_len;
  const i64 t1 = t0 + chunk_len < tokens ? t0 + chunk_len : tokens;
  const T* col = x + j * ld;
  if (mean == nullptr) {
    double s = 0, a = 0, q = 0;
    for (i64 t = t0 + threadIdx.x; t < t1; t += blockDim.x) {
      const double v = load(col, t);
      s += v;
      a += fabs(v);
      q += v * v;
    }
    s = block_sum(s);
    a = block_sum(a);
    q = block_sum(q);
    if (threadIdx.x == 0) {
      part[c * channels + j] = s;
      part[(chunks + c) * channels + j] = a;
      part[(2 * chunks + c) * channels + j] = q;
    }
  } else {
    const double mu = mean[j];
    double m = 0;
    for (i64 t = t0 + threadIdx.x; t < t1; t += blockDim.x) {
      const double v = load(col, t) - mu;
      m += v * v;
    }
    m = block_sum(m);
    if (threadIdx.x == 0) part[c * channels + j] = m;
  }
}

__global__ void moments_reduce_sums(i64 channels, i64 chunks, double tokens, const double* __restrict__ part,
                                    double* sum, double* abs_sum, double* sq_sum, double* mean) {
  for (i64 j = i64(blockIdx.x) * blockDim.x + threadIdx.x; j < channels; j += i64(gridDim.x) * blockDim.x) {
    double s = 0, a = 0, q = 0;
    for (i64 c = 0; c < chunks; ++c) {
      s += part[c * channels + j];
      a += part[(chunks + c) * channels + j];
      q += part[(2 * chunks + c) * channels + j];
    }
    sum[j] = s;
    abs_sum[j] = a;
    sq_sum[j] = q;
    mean[j] = s / tokens;
  }
}

__global__ void moments_reduce_m2(i64 channels, i64 chunks, const double* __restrict__ part, double* m2) {
  for (i64 j = i64(blockIdx.x) * blockDim.x + threadIdx.x; j < channels; j += i64(gridDim.x) * blockDim.x) {
    double m = 0;
    for (i64 c = 0; c < chunks; ++c) m += part[c * channels + j];
    m2[j] = m;
  }
}

template <typename T>
cudaError_t moments_impl(const T* x, StorageOrder order, i64 tokens, i64 channels, i64 ld, double* scratch,
                         double* sum, double* abs_sum, double* sq_sum, double* mean, double* m2, cudaStream_t stream) {
  const i64 chunks = chunk_count(tokens, order);
  const i64 chunk_len = ceil_div(tokens, chunks);
  const bool rows = order == StorageOrder::row_major;
  const dim3 grid = rows ? dim3(unsigned(ceil_div(channels, block_threads)), unsigned(chunks), 1)
                         : dim3(unsigned(channels), unsigned(chunks), 1);
  if (rows)
    moments_rows<T><<<grid, block_threads, 0, stream>>>(x, tokens, channels, ld, chunk_len, chunks, nullptr, scratch);
  else
    moments_cols<T><<<grid, block_threads, 0, stream>>>(x, tokens, channels, ld, chunk_len, chunks, nullptr, scratch);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  moments_reduce_sums<<<grid_1d(channels), block_threads, 0, stream>>>(channels, chunks, double(tokens), scratch, sum,
                                                                       abs_sum, sq_sum, mean);
  e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  if (rows)
    moments_rows<T><<<grid, block_threads, 0, stream>>>(x, tokens, channels, ld, chunk_len, chunks, mean, scratch);
  else
    moments_cols<T><<<grid, block_threads, 0, stream>>>(x, tokens, channels, ld, chunk_len, chunks, mean, scratch);
  e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  moments_reduce_m2<<<grid_1d(channels), block_threads, 0, stream>>>(channels, chunks, scratch, m2);
  return cudaGetLastError();
}

template <typename Acc, typename B>
__global__ void merge_kernel(i64 channels, double na, Acc* sum, Acc* abs_sum, Acc* sq_sum, Acc* mean, Acc* m2,
                             double nb, const B* b_sum, const B* b_abs, const B* b_sq, const B* b_mean, const B* b_m2) {
  for (i64 j = i64(blockIdx.x) * blockDim.x + threadIdx.x; j < channels; j += i64(gridDim.x) * blockDim.x) {
    const double bmean = b_mean != nullptr ? double(b_mean[j]) : double(b_sum[j]) / nb;
    if (na == 0) {
      mean[j] = Acc(bmean);
      m2[j] = Acc(b_m2[j]);
    } else {
      const double nt = na + nb;
      const double delta = bmean - double(mean[j]);
      mean[j] = Acc(double(mean[j]) + delta * (nb / nt));
      m2[j] = Acc(double(m2[j]) + double(b_m2[j]) + delta * delta * (na * nb / nt));
    }
    sum[j] = Acc(double(sum[j]) + double(b_sum[j]));
    abs_sum[j] = Acc(double(abs_sum[j]) + double(b_abs[j]));
    sq_sum[j] = Acc(double(sq_sum[j]) + double(b_sq[j]));
  }
}

template <typename Acc, typename B>
cudaError_t merge_impl(i64 channels, double na, Acc* sum, Acc* abs_sum, Acc* sq_sum, Acc* mean, Acc* m2, double nb,
                       const B* b_sum, const B* b_abs, const B* b_sq, const B* b_mean, const B* b_m2,
                       cudaStream_t stream) {
  if (channels <= 0) return cudaSuccess;
  merge_kernel<Acc, B><<<grid_1d(channels), block_threads, 0, stream>>>(channels, na, sum, abs_sum, sq_sum, mean, m2,
                                                                        nb, b_sum, b_abs, b_sq, b_mean, b_m2);
  return cudaGetLastError();
}

// ---------------------------------------------------------------------------------------------
// Elementwise passes.

template <typename In, typename Out>
__global__ void convert_kernel(const In* __restrict__ src, i64 rows, i64 cols, i64 lds, Out* __restrict__ dst,
                               i64 ldd) {
  const i64 i = i64(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  for (i64 j = blockIdx.y; j < cols; j += gridDim.y) dst[i + j * ldd] = Out(load(src, i + j * lds));
}

template <typename In, typename Out>
cudaError_t convert_impl(const void* src, i64 rows, i64 cols, i64 lds, void* dst, i64 ldd, cudaStream_t stream) {
  convert_kernel<In, Out><<<grid_2d(rows, cols), block_threads, 0, stream>>>(static_cast<const In*>(src), rows, cols,
                                                                             lds, static_cast<Out*>(dst), ldd);
  return cudaGetLastError();
}

template <typename Out>
cudaError_t convert_from(const void* src, DataType src_type, i64 rows, i64 cols, i64 lds, void* dst, i64 ldd,
                         cudaStream_t stream) {
  switch (src_type) {
    case DataType::f32: return convert_impl<float, Out>(src, rows, cols, lds, dst, ldd, stream);
    case DataType::f64: return convert_impl<double, Out>(src, rows, cols, lds, dst, ldd, stream);
    case DataType::f16: return convert_impl<__half, Out>(src, rows, cols, lds, dst, ldd, stream);
    case DataType::bf16: return convert_impl<__nv_bfloat16, Out>(src, rows, cols, lds, dst, ldd, stream);
  }
  return cudaErrorInvalidValue;
}

// Upper triangle := transpose of the lower one, through 32 x 32 shared-memory tiles so that both the
// reads and the writes are coalesced. Block (x, y) owns destination tile (rows y, columns x), y <= x.
template <typename T>
__global__ void symmetrize_kernel(T* a, i64 n, i64 ld) {
  __shared__ T tile[32][33];
  const i64 bi = blockIdx.y;  // destination row tile
  const i64 bj = blockIdx.x;  // destination column tile
  if (bi > bj) return;
  for (int k = threadIdx.y; k < 32; k += blockDim.y) {
    const i64 j = bj * 32 + threadIdx.x;  // source row (a column index of the destination)
    const i64 i = bi * 32 + k;            // source column
    if (i < n && j < n) tile[k][threadIdx.x] = a[j + i * ld];  // tile[i - 32 bi][j - 32 bj] = a(j, i)
  }
  __syncthreads();
  for (int k = threadIdx.y; k < 32; k += blockDim.y) {
    const i64 i = bi * 32 + threadIdx.x;
    const i64 j = bj * 32 + k;
    if (i < n && j < n && i < j) a[i + j * ld] = tile[threadIdx.x][k];  // a(i, j) = a(j, i)
  }
}

template <typename T>
cudaError_t symmetrize_impl(T* a, i64 n, i64 ld, cudaStream_t stream) {
  if (n <= 1) return cudaSuccess;
  const i64 tiles = ceil_div(n, 32);
  if (tiles > max_grid_y) return cudaErrorInvalidValue;
  symmetrize_kernel<T><<<dim3(unsigned(tiles), unsigned(tiles), 1), dim3(32, 8, 1), 0, stream>>>(a, n, ld);
  return cudaGetLastError();
}

template <typename In, typename Out>
__global__ void gather_kernel(const In* __restrict__ a, i64 lda, const i64* __restrict__ rows, i64 nrows,
                              const i64* __restrict__ cols, i64 ncols, Out* __restrict__ b, i64 ldb) {
  const i64 i = i64(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= nrows) return;
  const i64 r = rows != nullptr ? rows[i] : i;
  for (i64 j = blockIdx.y; j < ncols; j += gridDim.y) {
    const i64 c = cols != nullptr ? cols[j] : j;
    b[i + j * ldb] = Out(a[r + c * lda]);
  }
}

template <typename In, typename Out>
cudaError_t gather_impl(const In* a, i64 lda, const i64* rows, i64 nrows, const i64* cols, i64 ncols, Out* b,
                        i64 ldb, cudaStream_t stream) {
  if (nrows <= 0 || ncols <= 0) return cudaSuccess;
  gather_kernel<In, Out><<<grid_2d(nrows, ncols), block_threads, 0, stream>>>(a, lda, rows, nrows, cols, ncols, b, ldb);
  return cudaGetLastError();
}

template <typename T>
__global__ void scale_kernel(T* a, i64 lda, i64 rows, i64 cols, const T* row_scale, const T* col_scale) {
  const i64 i = i64(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  const T r = row_scale != nullptr ? row_scale[i] : T(1);
  for (i64 j = blockIdx.y; j < cols; j += gridDim.y) a[i + j * lda] *= col_scale != nullptr ? r * col_scale[j] : r;
}

template <typename T>
cudaError_t scale_impl(T* a, i64 lda, i64 rows, i64 cols, const T* row_scale, const T* col_scale,
                       cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  scale_kernel<T><<<grid_2d(rows, cols), block_threads, 0, stream>>>(a, lda, rows, cols, row_scale, col_scale);
  return cudaGetLastError();
}

template <typename T>
__global__ void diagonal_signs_kernel(const T* r, i64 ld, i64 n, T* signs) {
  for (i64 i = i64(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += i64(gridDim.x) * blockDim.x)
    signs[i] = r[i + i * ld] < T(0) ? T(-1) : T(1);
}

template <typename T>
__global__ void add_to_diagonal_kernel(T* a, i64 ld, i64 n, T value) {
  for (i64 i = i64(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += i64(gridDim.x) * blockDim.x)
    a[i + i * ld] += value;
}

// Dot product: block b takes columns b, b + gridDim.x, ...; its threads stride down each column.
// Exactly dot_partials blocks, then one block adds the partials: a fixed order.
template <typename T>
__global__ void dot_kernel(const T* __restrict__ a, i64 lda, const T* __restrict__ b, i64 ldb, i64 rows, i64 cols,
                           double* partials) {
  double s = 0;
  for (i64 j = blockIdx.x; j < cols; j += gridDim.x)
    for (i64 i = threadIdx.x; i < rows; i += blockDim.x) s += double(a[i + j * lda]) * double(b[i + j * ldb]);
  s = block_sum(s);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

__global__ void dot_final_kernel(const double* partials, double* result) {
  double v = 0;
  for (i64 k = threadIdx.x; k < i64(dot_partials); k += blockDim.x) v += partials[k];
  v = block_sum(v);
  if (threadIdx.x == 0) *result = v;
}

template <typename T>
cudaError_t dot_impl(const T* a, i64 lda, const T* b, i64 ldb, i64 rows, i64 cols, double* partials, double* result,
                     cudaStream_t stream) {
  dot_kernel<T><<<unsigned(dot_partials), block_threads, 0, stream>>>(a, lda, b, ldb, rows, cols, partials);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  dot_final_kernel<<<1, block_threads, 0, stream>>>(partials, result);
  return cudaGetLastError();
}

template <typename T>
__global__ void column_norms_kernel(const T* __restrict__ w, i64 ld, i64 rows, i64 cols, double* abs_sums,
                                    double* sq_sums) {
  for (i64 j = blockIdx.x; j < cols; j += gridDim.x) {
    double a = 0, q = 0;
    for (i64 i = threadIdx.x; i < rows; i += blockDim.x) {
      const double v = double(w[i + j * ld]);
      a += fabs(v);
      q += v * v;
    }
    a = block_sum(a);
    q = block_sum(q);
    if (threadIdx.x == 0) {
      abs_sums[j] = a;
      sq_sums[j] = q;
    }
  }
}

template <typename T>
cudaError_t column_norms_impl(const T* w, i64 ld, i64 rows, i64 cols, double* abs_sums, double* sq_sums,
                              cudaStream_t stream) {
  if (cols <= 0) return cudaSuccess;
  const unsigned grid = unsigned(cols < 65535 ? cols : 65535);
  column_norms_kernel<T><<<grid, block_threads, 0, stream>>>(w, ld, rows, cols, abs_sums, sq_sums);
  return cudaGetLastError();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The launchers.

std::size_t moments_scratch(std::int64_t tokens, std::int64_t channels, StorageOrder order) {
  if (tokens <= 0 || channels <= 0) return 0;
  return std::size_t(3 * chunk_count(tokens, order) * channels);
}

cudaError_t block_moments(const void* x, DataType type, StorageOrder order, std::int64_t tokens,
                          std::int64_t channels, std::int64_t ld, double* scratch, double* sum, double* abs_sum,
                          double* sq_sum, double* mean, double* m2, cudaStream_t stream) {
  if (tokens <= 0 || channels <= 0) return cudaSuccess;
  switch (type) {
    case DataType::f32:
      return moments_impl(static_cast<const float*>(x), order, tokens, channels, ld, scratch, sum, abs_sum, sq_sum,
                          mean, m2, stream);
    case DataType::f64:
      return moments_impl(static_cast<const double*>(x), order, tokens, channels, ld, scratch, sum, abs_sum, sq_sum,
                          mean, m2, stream);
    case DataType::f16:
      return moments_impl(static_cast<const __half*>(x), order, tokens, channels, ld, scratch, sum, abs_sum, sq_sum,
                          mean, m2, stream);
    case DataType::bf16:
      return moments_impl(static_cast<const __nv_bfloat16*>(x), order, tokens, channels, ld, scratch, sum, abs_sum,
                          sq_sum, mean, m2, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t merge_moments(std::int64_t channels, double na, float* sum, float* abs_sum, float* sq_sum, float* mean,
                          float* m2, double nb, const double* b_sum, const double* b_abs, const double* b_sq,
                          const double* b_mean, const double* b_m2, cudaStream_t stream) {
  return merge_impl(channels, na, sum, abs_sum, sq_sum, mean, m2, nb, b_sum, b_abs, b_sq, b_mean, b_m2, stream);
}
cudaError_t merge_moments(std::int64_t channels, double na, double* sum, double* abs_sum, double* sq_sum,
                          double* mean, double* m2, double nb, const double* b_sum, const double* b_abs,
                          const double* b_sq, const double* b_mean, const double* b_m2, cudaStream_t stream) {
  return merge_impl(channels, na, sum, abs_sum, sq_sum, mean, m2, nb, b_sum, b_abs, b_sq, b_mean, b_m2, stream);
}
cudaError_t merge_moments(std::int64_t channels, double na, float* sum, float* abs_sum, float* sq_sum, float* mean,
                          float* m2, double nb, const float* b_sum, const float* b_abs, const float* b_sq,
                          const float* b_mean, const float* b_m2, cudaStream_t stream) {
  return merge_impl(channels, na, sum, abs_sum, sq_sum, mean, m2, nb, b_sum, b_abs, b_sq, b_mean, b_m2, stream);
}

cudaError_t convert(const void* src, DataType src_type, std::int64_t rows, std::int64_t cols, std::int64_t ld_src,
                    void* dst, DataType dst_type, std::int64_t ld_dst, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaSuccess;
  if (dst_type == DataType::f32) return convert_from<float>(src, src_type, rows, cols, ld_src, dst, ld_dst, stream);
  if (dst_type == DataType::f64) return convert_from<double>(src, src_type, rows, cols, ld_src, dst, ld_dst, stream);
  return cudaErrorInvalidValue;
}

cudaError_t symmetrize_lower(float* a, std::int64_t n, std::int64_t ld, cudaStream_t stream) {
  return symmetrize_impl(a, n, ld, stream);
}
cudaError_t symmetrize_lower(double* a, std::int64_t n, std::int64_t ld, cudaStream_t stream) {
  return symmetrize_impl(a, n, ld, stream);
}

cudaError_t gather(const float* a, std::int64_t lda, const std::int64_t* rows, std::int64_t nrows,
                   const std::int64_t* cols, std::int64_t ncols, float* b, std::int64_t ldb, cudaStream_t stream) {
  return gather_impl(a, lda, rows, nrows, cols, ncols, b, ldb, stream);
}
cudaError_t gather(const double* a, std::int64_t lda, const std::int64_t* rows, std::int64_t nrows,
                   const std::int64_t* cols, std::int64_t ncols, double* b, std::int64_t ldb, cudaStream_t stream) {
  return gather_impl(a, lda, rows, nrows, cols, ncols, b, ldb, stream);
}
cudaError_t gather(const double* a, std::int64_t lda, const std::int64_t* rows, std::int64_t nrows,
                   const std::int64_t* cols, std::int64_t ncols, float* b, std::int64_t ldb, cudaStream_t stream) {
  return gather_impl(a, lda, rows, nrows, cols, ncols, b, ldb, stream);
}
cudaError_t gather(const float* a, std::int64_t lda, const std::int64_t* rows, std::int64_t nrows,
                   const std::int64_t* cols, std::int64_t ncols, double* b, std::int64_t ldb, cudaStream_t stream) {
  return gather_impl(a, lda, rows, nrows, cols, ncols, b, ldb, stream);
}

cudaError_t scale(float* a, std::int64_t lda, std::int64_t rows, std::int64_t cols, const float* row_scale,
                  const float* col_scale, cudaStream_t stream) {
  return scale_impl(a, lda, rows, cols, row_scale, col_scale, stream);
}
cudaError_t scale(double* a, std::int64_t lda, std::int64_t rows, std::int64_t cols, const double* row_scale,
                  const double* col_scale, cudaStream_t stream) {
  return scale_impl(a, lda, rows, cols, row_scale, col_scale, stream);
}

cudaError_t diagonal_signs(const float* r, std::int64_t ld, std::int64_t n, float* signs, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  diagonal_signs_kernel<float><<<grid_1d(n), block_threads, 0, stream>>>(r, ld, n, signs);
  return cudaGetLastError();
}
cudaError_t diagonal_signs(const double* r, std::int64_t ld, std::int64_t n, double* signs, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  diagonal_signs_kernel<double><<<grid_1d(n), block_threads, 0, stream>>>(r, ld, n, signs);
  return cudaGetLastError();
}

cudaError_t add_to_diagonal(float* a, std::int64_t ld, std::int64_t n, float value, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  add_to_diagonal_kernel<float><<<grid_1d(n), block_threads, 0, stream>>>(a, ld, n, value);
  return cudaGetLastError();
}
cudaError_t add_to_diagonal(double* a, std::int64_t ld, std::int64_t n, double value, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  add_to_diagonal_kernel<double><<<grid_1d(n), block_threads, 0, stream>>>(a, ld, n, value);
  return cudaGetLastError();
}

cudaError_t dot(const float* a, std::int64_t lda, const float* b, std::int64_t ldb, std::int64_t rows,
                std::int64_t cols, double* partials, double* result, cudaStream_t stream) {
  return dot_impl(a, lda, b, ldb, rows, cols, partials, result, stream);
}
cudaError_t dot(const double* a, std::int64_t lda, const double* b, std::int64_t ldb, std::int64_t rows,
                std::int64_t cols, double* partials, double* result, cudaStream_t stream) {
  return dot_impl(a, lda, b, ldb, rows, cols, partials, result, stream);
}

cudaError_t column_norms(const float* w, std::int64_t ld, std::int64_t rows, std::int64_t cols, double* abs_sums,
                         double* sq_sums, cudaStream_t stream) {
  return column_norms_impl(w, ld, rows, cols, abs_sums, sq_sums, stream);
}
cudaError_t column_norms(const double* w, std::int64_t ld, std::int64_t rows, std::int64_t cols, double* abs_sums,
                         double* sq_sums, cudaStream_t stream) {
  return column_norms_impl(w, ld, rows, cols, abs_sums, sq_sums, stream);
}

}  // namespace kernels
}  // namespace detail
}  // namespace cuda
}  // namespace rcpu
