// SPDX-License-Identifier: MIT
#ifndef RCPU_CUDA_COMPENSATION_HPP
#define RCPU_CUDA_COMPENSATION_HPP

/// \file cuda/compensation.hpp
/// Compensation of a pruned linear layer on the GPU, from device-resident weights and statistics
/// (as rcpu::compensate, compensation.hpp, and with the same options, methods and report). With G the
/// Gram of the input and K the kept columns:
///   A = W G[:,K] = W_K G_KK + W_D G_DK,   M = A W_K^T,   ||Z||^2 = <W_K G_KK, W_K>.
/// Products run in the weights' precision (float or double) with cuBLAS; the Procrustes solve follows
/// SolverOptions; every trace and inner product of the report is accumulated in double.

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "../compensation.hpp"
#include "../error.hpp"
#include "../report.hpp"
#include "../selection.hpp"
#include "config.hpp"
#include "context.hpp"
#include "detail/checks.hpp"
#include "detail/linalg.hpp"
#include "error.hpp"
#include "memory.hpp"
#include "procrustes.hpp"
#include "statistics.hpp"

namespace rcpu {
namespace cuda {

/// A compensated layer on the device: weight over the kept columns, bias, and what was used.
/// The device counterpart of rcpu::Compensated; to_host() downloads it into one.
template <typename Scalar>
struct Compensated {
  DeviceMatrix<Scalar> weight;      ///< d_out x k, columns in the order of the kept set
  DeviceMatrix<Scalar> bias;        ///< d_out x 1, or empty when the layer had none and the method adds none
  DeviceMatrix<Scalar> rotation;    ///< Q (d_out x d_out) for rotation-based methods, else empty
  double scale = 1.0;               ///< s for rotation_scale, else 1
  Eigen::VectorXd singular_values;  ///< of M (host), for rotation-based methods, else empty
  LayerReport report;               ///< errors before/after on the calibration statistics

  bool has_bias() const { return !bias.empty(); }

  /// The same result on the host (synchronises).
  rcpu::Compensated<Scalar> to_host(const Context& ctx) const {
    rcpu::Compensated<Scalar> h;
    h.weight = weight.to_host(ctx);
    if (!bias.empty()) h.bias = bias.to_host(ctx).col(0);
    if (!rotation.empty()) h.rotation = rotation.to_host(ctx);
    h.scale = scale;
    h.singular_values = singular_values;
    h.report = report;
    return h;
  }
};

namespace detail {

template <typename T>
MatrixView<const T> as_view(const DeviceMatrix<T>& m) {
  return m.view();
}
template <typename T>
MatrixView<const T> as_view(const MatrixView<T>& v) {
  return MatrixView<const T>(v.data, v.rows, v.cols, v.ld);
}
/// The scalar of a DeviceMatrix<T> or MatrixView<[const] T>.
template <typename M>
using scalar_of = std::remove_const_t<std::remove_pointer_t<decltype(as_view(std::declval<const M&>()).data)>>;

// ||Y'||^2 = wgw + 2 b'.W's_K + n ||b'||^2;  <Y, Y'> = <W', A> + b'.Ws + b.W's_K + n b.b'.
inline OutputComparison compare_outputs(double n, double YY, double wgw, double wa, const Eigen::VectorXd& Ws,
                                        const Eigen::VectorXd& Wps, const Eigen::VectorXd& b0,
                                        const Eigen::VectorXd& bp) {
  OutputComparison c;
  const double YpYp = wgw + 2.0 * bp.dot(Wps) + n * bp.squaredNorm();
  const double cross = wa + bp.dot(Ws) + b0.dot(Wps) + n * b0.dot(bp);
  const double err2 = std::max(0.0, YY + YpYp - 2.0 * cross);
  c.relative_error = std::sqrt(err2 / YY);
  c.norm_ratio = std::sqrt(YpYp / YY);
  c.cosine = cross / std::sqrt(YY * YpYp);
  return c;
}

template <typename T>
DeviceMatrix<T> zeros(const Context& c, Index rows, Index cols) {
  DeviceMatrix<T> m(rows, cols);
  m.set_zero(c);
  return m;
}

template <typename T>
Eigen::VectorXd gemv_to_host(const Context& c, const DeviceMatrix<T>& A, const DeviceBuffer<T>& x, DeviceBuffer<T>& y) {
  gemv(c, CUBLAS_OP_N, A.rows(), A.cols(), T(1), A.data(), A.ld(), x.data(), T(0), y.data());
  return download_vector(c, y.data(), A.rows());
}

// The layer, the kept set and every product the compensations and the report share (the device
// counterpart of the CPU's LayerSystem). All matrices in Scalar, contiguous.
template <typename Scalar>
struct DeviceLayer {
  using Mat = DeviceMatrix<Scalar>;
  const Context& c;
  Index d_out = 0, d_in = 0, k = 0, m = 0;
  double n = 0;
  std::vector<Index> K, D;
  DeviceBuffer<std::int64_t> dK, dD;
  Mat WK, WD, GKK, GDK, P, A, WG_D;  // P = W_K G_KK, A = W G[:,K], WG_D = W G[:,D] (geometry only)
  DeviceBuffer<Scalar> s, mean, sK, muK, muD, b0, Ws, tmp;  // device vectors
  Eigen::VectorXd Ws_h, b0_h;                                // host copies (double)
  double zz = 0, aw = 0, yy = 0, YY = 0;                     // ||Z||^2, <A, W_K>, ||WX||^2, ||WX + b||^2
  Mat YYt;                                                   // (WX + b)(WX + b)^T, geometry only
  double YYt2 = 0;                                           // ||YYt||_F^2

  DeviceLayer(const Context& c_) : c(c_) {}
};

template <typename Scalar, typename Acc>
void build_layer(DeviceLayer<Scalar>& L, MatrixView<const Scalar> W, MatrixView<const Scalar> bias, bool has_bias,
                 const DeviceStatistics<Acc>& stats, const Moments& mom, const std::vector<Index>& kept, bool products,
                 bool geometry) {
  using Mat = DeviceMatrix<Scalar>;
  const Context& c = L.c;
  L.d_out = W.rows;
  L.d_in = W.cols;
  L.K = kept;
  L.D = rcpu::complement(kept, W.cols);
  L.k = Index(L.K.size());
  L.m = Index(L.D.size());
  L.n = double(mom.tokens);
  L.dK = upload_indices(c, L.K);
  if (L.m) L.dD = upload_indices(c, L.D);
  L.WK = gather<Scalar, Scalar>(c, W, nullptr, L.d_out, L.dK.data(), L.k);
  if (L.m) L.WD = gather<Scalar, Scalar>(c, W, nullptr, L.d_out, L.dD.data(), L.m);

  Eigen::VectorXd sK(L.k), muK(L.k), muD(L.m);
  for (Index i = 0; i < L.k; ++i) {
    sK(i) = mom.sum(L.K[std::size_t(i)]);
    muK(i) = mom.mean(L.K[std::size_t(i)]);
  }
  for (Index i = 0; i < L.m; ++i) muD(i) = mom.mean(L.D[std::size_t(i)]);
  L.s = upload_vector<Scalar>(c, mom.sum);
  L.mean = upload_vector<Scalar>(c, mom.mean);
  L.sK = upload_vector<Scalar>(c, sK);
  L.muK = upload_vector<Scalar>(c, muK);
  L.muD = upload_vector<Scalar>(c, muD);
  L.tmp = DeviceBuffer<Scalar>(std::size_t(L.d_out));
  L.Ws = DeviceBuffer<Scalar>(std::size_t(L.d_out));
  gemv(c, CUBLAS_OP_N, L.d_out, L.d_in, Scalar(1), W.data, W.ld, L.s.data(), Scalar(0), L.Ws.data());
  L.Ws_h = download_vector(c, L.Ws.data(), L.d_out);
  L.b0 = DeviceBuffer<Scalar>(std::size_t(L.d_out));
  if (has_bias) {
    copy_2d(c, L.b0.data(), L.d_out, bias.data, bias.ld, L.d_out, 1, cudaMemcpyDeviceToDevice);
    L.b0_h = download_vector(c, L.b0.data(), L.d_out);
  } else {
    RCPU_CUDA_CHECK(cudaMemsetAsync(L.b0.data(), 0, std::size_t(L.d_out) * sizeof(Scalar), c.stream()));
    L.b0_h = Eigen::VectorXd::Zero(L.d_out);
  }
  if (!products) return;

  const MatrixView<const Acc> G = stats.gram();
  L.GKK = gather<Scalar, Acc>(c, G, L.dK.data(), L.k, L.dK.data(), L.k);
  L.P = Mat(L.d_out, L.k);
  gemm(c, CUBLAS_OP_N, CUBLAS_OP_N, L.d_out, L.k, L.k, Scalar(1), L.WK.data(), L.d_out, L.GKK.data(), L.k, Scalar(0),
       L.P.data(), L.d_out);
  L.A = Mat::copy_of(c, L.P.view());
  DotBatch dots(c, 3);
  Mat WDGDD;
  if (L.m) {
    L.GDK = gather<Scalar, Acc>(c, G, L.dD.data(), L.m, L.dK.data(), L.k);
    gemm(c, CUBLAS_OP_N, CUBLAS_OP_N, L.d_out, L.k, L.m, Scalar(1), L.WD.data(), L.d_out, L.GDK.data(), L.m, Scalar(1),
         L.A.data(), L.d_out);  // A = W_K G_KK + W_D G_DK
    const Mat GDD = gather<Scalar, Acc>(c, G, L.dD.data(), L.m, L.dD.data(), L.m);
    WDGDD = Mat(L.d_out, L.m);
    gemm(c, CUBLAS_OP_N, CUBLAS_OP_N, L.d_out, L.m, L.m, Scalar(1), L.WD.data(), L.d_out, GDD.data(), L.m, Scalar(0),
         WDGDD.data(), L.d_out);
    dots.enqueue<Scalar>(2, WDGDD.view(), L.WD.view());
  }
  dots.enqueue<Scalar>(0, L.P.view(), L.WK.view());
  dots.enqueue<Scalar>(1, L.A.view(), L.WK.view());
  const std::vector<double> d3 = dots.fetch();
  L.zz = d3[0];
  L.aw = d3[1];
  // ||W X||^2 = ||W_K X_K||^2 + 2 <W_D G_DK, W_K> + <W_D G_DD, W_D>, with <W_D G_DK, W_K> = aw - zz.
  L.yy = L.zz + 2.0 * (L.aw - L.zz) + d3[2];
  L.YY = L.yy + 2.0 * L.b0_h.dot(L.Ws_h) + L.n * L.b0_h.squaredNorm();
  if (!geometry) return;

  // YYt = A W_K^T + (W_K G_DK^T + W_D G_DD) W_D^T + Ws b^T + b Ws^T + n b b^T.
  L.YYt = Mat(L.d_out, L.d_out);
  gemm(c, CUBLAS_OP_N, CUBLAS_OP_T, L.d_out, L.d_out, L.k, Scalar(1), L.A.data(), L.d_out, L.WK.data(), L.d_out,
       Scalar(0), L.YYt.data(), L.d_out);
  if (L.m) {
    L.WG_D = std::move(WDGDD);  // its dot above was enqueued (and read) already
    gemm(c, CUBLAS_OP_N, CUBLAS_OP_T, L.d_out, L.m, L.k, Scalar(1), L.WK.data(), L.d_out, L.GDK.data(), L.m, Scalar(1),
         L.WG_D.data(), L.d_out);
    gemm(c, CUBLAS_OP_N, CUBLAS_OP_T, L.d_out, L.d_out, L.m, Scalar(1), L.WG_D.data(), L.d_out, L.WD.data(), L.d_out,
         Scalar(1), L.YYt.data(), L.d_out);
  }
  if (has_bias) {
    ger(c, L.d_out, L.d_out, Scalar(1), L.Ws.data(), 1, L.b0.data(), 1, L.YYt.data(), L.d_out);
    ger(c, L.d_out, L.d_out, Scalar(1), L.b0.data(), 1, L.Ws.data(), 1, L.YYt.data(), L.d_out);
    ger(c, L.d_out, L.d_out, Scalar(L.n), L.b0.data(), 1, L.b0.data(), 1, L.YYt.data(), L.d_out);
  }
  L.YYt2 = frobenius_dot<Scalar>(c, L.YYt.view(), L.YYt.view());
}

// The comparison of a candidate (Wp, bp) with the dense layer; WpG = Wp G_KK when geometry is asked for.
template <typename Scalar>
OutputComparison compare_device(DeviceLayer<Scalar>& L, const DeviceMatrix<Scalar>& Wp, const DeviceBuffer<Scalar>& bp,
                                const Eigen::VectorXd& bp_h, double wgw, const DeviceMatrix<Scalar>* WpG) {
  const Context& c = L.c;
  const Eigen::VectorXd Wps_h = gemv_to_host(c, Wp, L.sK, L.tmp);  // W' s_K (left in L.tmp)
  const double wa = frobenius_dot<Scalar>(c, Wp.view(), L.A.view());
  OutputComparison out = compare_outputs(L.n, L.YY, wgw, wa, L.Ws_h, Wps_h, L.b0_h, bp_h);
  if (WpG == nullptr || L.YYt.empty()) return out;
  const Index d = L.d_out;
  const Scalar n = Scalar(L.n);
  // Y Y'^T = A W'^T + Ws b'^T + b (W's_K)^T + n b b'^T;  Y' Y'^T = W'G W'^T + W's_K b'^T + b' (W's_K)^T + n b' b'^T.
  DeviceMatrix<Scalar> YYp(d, d), YpYp(d, d);
  gemm(c, CUBLAS_OP_N, CUBLAS_OP_T, d, d, L.k, Scalar(1), L.A.data(), d, Wp.data(), d, Scalar(0), YYp.data(), d);
  gemm(c, CUBLAS_OP_N, CUBLAS_OP_T, d, d, L.k, Scalar(1), WpG->data(), d, Wp.data(), d, Scalar(0), YpYp.data(), d);
  ger(c, d, d, Scalar(1), L.Ws.data(), 1, bp.data(), 1, YYp.data(), d);
  ger(c, d, d, Scalar(1), L.b0.data(), 1, L.tmp.data(), 1, YYp.data(), d);
  ger(c, d, d, n, L.b0.data(), 1, bp.data(), 1, YYp.data(), d);
  ger(c, d, d, Scalar(1), L.tmp.data(), 1, bp.data(), 1, YpYp.data(), d);
  ger(c, d, d, Scalar(1), bp.data(), 1, L.tmp.data(), 1, YpYp.data(), d);
  ger(c, d, d, n, bp.data(), 1, bp.data(), 1, YpYp.data(), d);
  DotBatch dots(c, 2);
  dots.enqueue<Scalar>(0, YYp.view(), YYp.view());
  dots.enqueue<Scalar>(1, YpYp.view(), YpYp.view());
  const std::vector<double> xy = dots.fetch();
  const double a = L.YYt2;
  out.inner_product_distortion = std::sqrt(std::max(0.0, a - 2.0 * xy[0] + xy[1]) / a);
  return out;
}

// The Procrustes rotation of the layer (rotation, rotation_scale, rotation_bias, rotation_ridge):
// M = A W_K^T = U S V^T, Q = U V^T into out.rotation and out.singular_values, trace = tr(S), with the
// report's rank, condition and det fix. False, with the reason in out.report.info, when the solve failed.
template <typename Scalar>
bool device_rotation(DeviceLayer<Scalar>& L, const CompensationOptions& opt, const SolverOptions& solver,
                     const std::string& f, Compensated<Scalar>& out, double& trace) {
  const Context& c = L.c;
  const Index d = L.d_out, k = L.k;
  LayerReport& rep = out.report;
  DeviceMatrix<Scalar> M(d, d);
  gemm(c, CUBLAS_OP_N, CUBLAS_OP_T, d, d, k, Scalar(1), L.A.data(), d, L.WK.data(), d, Scalar(0), M.data(), d);
  require_finite<Scalar>(c, M.view(), f + ": M = Y Z^T");
  bool flipped = false;
  if (solver.solve_in_double || resolve(opt.procrustes, solver) == ProcrustesSolver::syevd) {
    ProcrustesSolution<double> sol = solve_procrustes<double, Scalar>(c, M.view(), opt.procrustes, solver);
    rep.info = sol.info;
    if (sol.info != Info::success) return false;
    out.rotation = convert_copy<Scalar, double>(c, sol.q.view());
    out.singular_values = std::move(sol.sigma);
    trace = sol.trace;
    flipped = sol.flipped;
  } else {
    ProcrustesSolution<Scalar> sol = solve_procrustes<Scalar, Scalar>(c, M.view(), opt.procrustes, solver);
    rep.info = sol.info;
    if (sol.info != Info::success) return false;
    out.rotation = std::move(sol.q);
    out.singular_values = std::move(sol.sigma);
    trace = sol.trace;
    flipped = sol.flipped;
  }
  rep.rank_m = numerical_rank<Scalar>(out.singular_values);
  rep.condition_m = condition_number(out.singular_values);
  rep.reflection_fixed = flipped;
  return true;
}

// The ridge pulled toward a prior P (least_squares: nullptr, P = 0; proximal_ridge: W_K;
// rotation_ridge: Q W_K), W' = (A + lambda P)(G_KK + lambda I)^-1, into Wnew, with
// wgw = tr(W' G_KK W'^T). Leaves Wnew empty, with rep.info = no_convergence, when the eigensolver
// fallback for a singular G_KK + lambda I fails.
template <typename Scalar>
void device_ridge(DeviceLayer<Scalar>& L, double lam, const DeviceMatrix<Scalar>* prior, LayerReport& rep,
                  DeviceMatrix<Scalar>& Wnew, double& wgw) {
  const Context& c = L.c;
  const Index d = L.d_out, k = L.k;
  // rhs = (W G[:,K])^T (+ lambda P^T), k x d_out; H = G_KK + lambda I. P0 is W_K, weighted 0, when
  // there is no prior (geam reads a matrix either way).
  const DeviceMatrix<Scalar>& P0 = prior != nullptr ? *prior : L.WK;
  DeviceMatrix<Scalar> X(k, d);
  geam(c, CUBLAS_OP_T, CUBLAS_OP_T, k, d, Scalar(1), L.A.data(), d, Scalar(prior != nullptr ? lam : 0.0), P0.data(), d,
       X.data(), k);
  DeviceMatrix<Scalar> H = DeviceMatrix<Scalar>::copy_of(c, L.GKK.view());
  RCPU_CUDA_LAUNCH(kernels::add_to_diagonal(H.data(), k, k, Scalar(lam), c.stream()));
  const cudaDataType t = cuda_type<Scalar>();
  SolverWorkspace ws;
  std::size_t dev = 0, host = 0;
  RCPU_CUDA_CHECK(cusolverDnXpotrf_bufferSize(c.cusolver(), c.cusolver_params(), CUBLAS_FILL_MODE_LOWER, k, t, H.data(),
                                              k, t, &dev, &host));
  ws.reserve(dev, host);
  RCPU_CUDA_CHECK(cusolverDnXpotrf(c.cusolver(), c.cusolver_params(), CUBLAS_FILL_MODE_LOWER, k, t, H.data(), k, t,
                                   ws.device_ptr(), dev, ws.host_ptr(), host, ws.info.data()));
  if (read_info(c, ws.info.data(), "cusolverDnXpotrf") == 0) {
    RCPU_CUDA_CHECK(cusolverDnXpotrs(c.cusolver(), c.cusolver_params(), CUBLAS_FILL_MODE_LOWER, k, d, t, H.data(), k, t,
                                     X.data(), k, ws.info.data()));
    read_info(c, ws.info.data(), "cusolverDnXpotrs");
  } else {
    // G_KK + lambda I is not positive definite (e.g. lambda = 0 and dead channels): solve with the
    // pseudo-inverse from its eigendecomposition, and say so.
    H = DeviceMatrix<Scalar>::copy_of(c, L.GKK.view());
    RCPU_CUDA_LAUNCH(kernels::add_to_diagonal(H.data(), k, k, Scalar(lam), c.stream()));
    DeviceBuffer<Scalar> ev(static_cast<std::size_t>(k));
    RCPU_CUDA_CHECK(cusolverDnXsyevd_bufferSize(c.cusolver(), c.cusolver_params(), CUSOLVER_EIG_MODE_VECTOR,
                                                CUBLAS_FILL_MODE_LOWER, k, t, H.data(), k, t, ev.data(), t, &dev, &host));
    ws.reserve(dev, host);
    RCPU_CUDA_CHECK(cusolverDnXsyevd(c.cusolver(), c.cusolver_params(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER,
                                     k, t, H.data(), k, t, ev.data(), t, ws.device_ptr(), dev, ws.host_ptr(), host,
                                     ws.info.data()));
    if (read_info(c, ws.info.data(), "cusolverDnXsyevd") > 0) {
      rep.info = Info::no_convergence;
      return;
    }
    const Eigen::VectorXd e = download_vector(c, ev.data(), k);
    const double tol = double(k) * double(std::numeric_limits<Scalar>::epsilon()) * e.cwiseAbs().maxCoeff();
    Eigen::VectorXd inv(k);
    for (Index i = 0; i < k; ++i) inv(i) = e(i) > tol ? 1.0 / e(i) : 0.0;
    const DeviceBuffer<Scalar> dinv = upload_vector<Scalar>(c, inv);
    DeviceMatrix<Scalar> T1(k, d);  // V^T rhs, rows scaled by 1 / lambda_i
    gemm(c, CUBLAS_OP_T, CUBLAS_OP_N, k, d, k, Scalar(1), H.data(), k, X.data(), k, Scalar(0), T1.data(), k);
    RCPU_CUDA_LAUNCH(kernels::scale(T1.data(), k, k, d, dinv.data(), nullptr, c.stream()));
    gemm(c, CUBLAS_OP_N, CUBLAS_OP_N, k, d, k, Scalar(1), H.data(), k, T1.data(), k, Scalar(0), X.data(), k);
    rep.info = Info::numerical_issue;
  }
  Wnew = DeviceMatrix<Scalar>(d, k);
  geam(c, CUBLAS_OP_T, CUBLAS_OP_T, d, k, Scalar(1), X.data(), k, Scalar(0), X.data(), k, Wnew.data(), d);
  // W' (G_KK + lam I) = rhs^T  =>  tr(W' G_KK W'^T) = <rhs^T, W'> - lam <W', W'>, rhs^T = A (+ lam P).
  DotBatch dots(c, 3);
  dots.enqueue<Scalar>(0, L.A.view(), Wnew.view());
  dots.enqueue<Scalar>(1, P0.view(), Wnew.view());
  dots.enqueue<Scalar>(2, Wnew.view(), Wnew.view());
  const std::vector<double> v = dots.fetch();
  wgw = v[0] + (prior != nullptr ? lam * v[1] : 0.0) - lam * v[2];
}

template <typename Scalar, typename Acc>
Compensated<Scalar> compensate_device(const Context& c, MatrixView<const Scalar> W, MatrixView<const Scalar> bias,
                                      bool has_bias, const DeviceStatistics<Acc>& stats, const std::vector<Index>& kept,
                                      Compensation method, const CompensationOptions& opt, const SolverOptions& solver,
                                      const char* fn) {
  const std::string f = fn;
  require(std::isfinite(opt.lambda) && opt.lambda >= 0,
          f + ": lambda = " + std::to_string(opt.lambda) + " must be finite and >= 0");
  require(std::isfinite(opt.scale_epsilon) && opt.scale_epsilon >= 0,
          f + ": scale_epsilon = " + std::to_string(opt.scale_epsilon) + " must be finite and >= 0");
  const bool have_gram = stats.has_gram();
  require(have_gram || !needs_gram(method), f + ": '" + to_string(method) +
                                                "' needs the Gram, but the statistics were built with GramMode::diagonal");
  const ScopedDevice on(c.device());
  const bool geometry = opt.geometry && have_gram;
  const Moments mom = stats.download_moments();
  DeviceLayer<Scalar> L(c);
  build_layer(L, W, bias, has_bias, stats, mom, kept, have_gram, geometry);
  const Index d = L.d_out, k = L.k;

  Compensated<Scalar> out;
  LayerReport& rep = out.report;
  rep.tokens = mom.tokens;
  rep.rows = d;
  rep.columns = L.d_in;
  rep.kept_columns = k;

  DeviceMatrix<Scalar> Wnew;   // the compensated weight when it differs from W_K
  DeviceBuffer<Scalar> b_out;  // the result's bias when there is one
  bool has_b_out = has_bias;
  if (has_bias) {
    b_out = DeviceBuffer<Scalar>(std::size_t(d));
    copy_2d(c, b_out.data(), d, L.b0.data(), d, d, 1, cudaMemcpyDeviceToDevice);
  }
  double wgw = L.zz;  // tr(W' G_KK W'^T) of the result
  switch (method) {
    case Compensation::none: break;
    case Compensation::bias:
      if (!has_b_out) {
        b_out = DeviceBuffer<Scalar>(std::size_t(d));
        RCPU_CUDA_CHECK(cudaMemsetAsync(b_out.data(), 0, std::size_t(d) * sizeof(Scalar), c.stream()));
        has_b_out = true;
      }
      if (L.m) gemv(c, CUBLAS_OP_N, d, L.m, Scalar(1), L.WD.data(), d, L.muD.data(), Scalar(1), b_out.data());
      break;
    case Compensation::rotation:
    case Compensation::rotation_scale:
    case Compensation::rotation_bias: {
      double trace = 0;
      if (!device_rotation(L, opt, solver, f, out, trace)) break;
      Wnew = DeviceMatrix<Scalar>(d, k);
      gemm(c, CUBLAS_OP_N, CUBLAS_OP_N, d, k, d, Scalar(1), out.rotation.data(), d, L.WK.data(), d, Scalar(0),
           Wnew.data(), d);
      if (method == Compensation::rotation_scale) {
        const double den = L.zz + opt.scale_epsilon;
        require(std::isfinite(den) && den > 0,
                f + ": ||Z||^2 + epsilon = " + std::to_string(den) + " must be positive and finite (rotation_scale)");
        out.scale = trace / den;
        scal(c, d * k, Scalar(out.scale), Wnew.data());
        wgw = out.scale * out.scale * L.zz;
      }
      if (method == Compensation::rotation_bias) {  // b' = b + W mu - W' mu_K
        if (!has_b_out) {
          b_out = DeviceBuffer<Scalar>(std::size_t(d));
          RCPU_CUDA_CHECK(cudaMemsetAsync(b_out.data(), 0, std::size_t(d) * sizeof(Scalar), c.stream()));
          has_b_out = true;
        }
        gemv(c, CUBLAS_OP_N, d, L.d_in, Scalar(1), W.data, W.ld, L.mean.data(), Scalar(1), b_out.data());
        gemv(c, CUBLAS_OP_N, d, k, Scalar(-1), Wnew.data(), d, L.muK.data(), Scalar(1), b_out.data());
      }
      rep.scale = out.scale;
      break;
    }
    case Compensation::least_squares:
    case Compensation::proximal_ridge:
      device_ridge(L, opt.lambda, method == Compensation::proximal_ridge ? &L.WK : nullptr, rep, Wnew, wgw);
      break;
    case Compensation::rotation_ridge: {
      // The ridge whose prior is the rotated weight Q W_K (Q of the rotation, same options).
      double trace = 0;
      if (!device_rotation(L, opt, solver, f, out, trace)) break;
      DeviceMatrix<Scalar> QWK(d, k);
      gemm(c, CUBLAS_OP_N, CUBLAS_OP_N, d, k, d, Scalar(1), out.rotation.data(), d, L.WK.data(), d, Scalar(0),
           QWK.data(), d);
      device_ridge(L, opt.lambda, &QWK, rep, Wnew, wgw);
      break;
    }
  }
  if (rep.info != Info::success && rep.info != Info::numerical_issue) {
    out.weight = std::move(L.WK);
    if (has_bias) out.bias = DeviceMatrix<Scalar>::copy_of(c, MatrixView<const Scalar>(L.b0.data(), d, 1, d));
    return out;
  }
  const DeviceMatrix<Scalar>& Wp = Wnew.empty() ? L.WK : Wnew;
  Eigen::VectorXd bp_h = L.b0_h;
  if (has_b_out) {
    bp_h = download_vector(c, b_out.data(), d);
    if (!bp_h.allFinite()) rep.info = Info::numerical_issue;
  }
  if (!std::isfinite(frobenius_dot<Scalar>(c, Wp.view(), Wp.view()))) rep.info = Info::numerical_issue;

  if (have_gram) {
    const DeviceBuffer<Scalar>& bp = has_b_out ? b_out : L.b0;
    DeviceMatrix<Scalar> WpG;
    if (geometry) {
      WpG = DeviceMatrix<Scalar>(d, k);
      gemm(c, CUBLAS_OP_N, CUBLAS_OP_N, d, k, k, Scalar(1), Wp.data(), d, L.GKK.data(), k, Scalar(0), WpG.data(), d);
    }
    rep.before = compare_device(L, L.WK, L.b0, L.b0_h, L.zz, geometry ? &L.P : nullptr);
    rep.after = compare_device(L, Wp, bp, bp_h, wgw, geometry ? &WpG : nullptr);
  }
  out.weight = Wnew.empty() ? std::move(L.WK) : std::move(Wnew);
  if (has_b_out) {
    out.bias = DeviceMatrix<Scalar>(d, 1);
    copy_2d(c, out.bias.data(), d, b_out.data(), d, d, 1, cudaMemcpyDeviceToDevice);
  }
  return out;
}

template <typename Scalar, typename Acc>
void check_layer(const Context& c, MatrixView<const Scalar> W, const DeviceStatistics<Acc>& stats, const std::string& fn) {
  check_view(W, fn + ": W");
  require(W.rows >= 1 && W.cols >= 1, fn + ": W is " + shape(W.rows, W.cols) + ", must be non-empty");
  require(stats.channels() == W.cols, fn + ": W is " + shape(W.rows, W.cols) + " but stats has " +
                                          std::to_string(stats.channels()) + " channels (need W.cols())");
  require(stats.tokens() > 0, fn + ": the statistics hold no tokens (channels = " + std::to_string(stats.channels()) + ")");
  require(&stats.context() == &c || stats.context().device() == c.device(),
          fn + ": the statistics live on device " + std::to_string(stats.context().device()) + ", the context on device " +
              std::to_string(c.device()));
  if (&stats.context() != &c) stats.context().synchronize();
  const ScopedDevice on(c.device());
  require_finite<Scalar>(c, W, fn + ": W");
}

template <typename Scalar>
void check_bias(const Context& c, MatrixView<const Scalar> W, MatrixView<const Scalar> b, const std::string& fn) {
  check_view(b, fn + ": bias");
  require(b.cols == 1 && b.rows == W.rows, fn + ": bias is " + shape(b.rows, b.cols) + " but W is " +
                                               shape(W.rows, W.cols) + " (need a " + shape(W.rows, 1) + " vector)");
  const ScopedDevice on(c.device());
  require_finite<Scalar>(c, b, fn + ": bias");
}

}  // namespace detail

/// Compensates a layer y = W x + b pruned to the input columns `kept`, on the GPU, from statistics alone.
/// \param ctx      device and stream
/// \param W        weights on the device, d_out x d_in (DeviceMatrix or MatrixView; float or double)
/// \param bias     bias on the device, d_out x 1 (same scalar as W)
/// \param stats    device statistics of the layer's input (full Gram unless the method is none or bias)
/// \param kept     kept input columns (any order; the result's columns follow it)
/// \param method   the compensation
/// \param options  the CPU's options (lambda, scale_epsilon, procrustes.method / proper_rotation, geometry)
/// \param solver   the GPU-only Procrustes knobs (route, precision)
/// \return weight (d_out x k), bias, Q and s where used (on the device), the report (host).
/// \throws rcpu::invalid_argument on bad shapes, NaN/Inf, an invalid kept set, empty statistics, or a
///         Gram-based method on diagonal-only statistics; rcpu::cuda::Error if a CUDA call fails.
///         Numerical trouble goes in report.info.
template <typename WMat, typename BVec, typename Acc>
Compensated<detail::scalar_of<WMat>> compensate(const Context& ctx, const WMat& W, const BVec& bias,
                                                const DeviceStatistics<Acc>& stats, const std::vector<Index>& kept,
                                                Compensation method, const CompensationOptions& options = {},
                                                const SolverOptions& solver = {}) {
  using Scalar = detail::scalar_of<WMat>;
  static_assert(std::is_same<Scalar, detail::scalar_of<BVec>>::value, "rcpu::cuda::compensate: W and bias must have the same scalar");
  const MatrixView<const Scalar> w = detail::as_view(W), b = detail::as_view(bias);
  detail::check_layer(ctx, w, stats, "cuda::compensate");
  detail::check_bias(ctx, w, b, "cuda::compensate");
  detail::require_kept_set(kept, w.cols, "cuda::compensate: kept");
  return detail::compensate_device<Scalar, Acc>(ctx, w, b, true, stats, kept, method, options, solver, "cuda::compensate");
}

/// As above, for a layer without bias (a bias appears in the result only for bias and rotation_bias).
template <typename WMat, typename Acc>
Compensated<detail::scalar_of<WMat>> compensate(const Context& ctx, const WMat& W, const DeviceStatistics<Acc>& stats,
                                                const std::vector<Index>& kept, Compensation method,
                                                const CompensationOptions& options = {}, const SolverOptions& solver = {}) {
  using Scalar = detail::scalar_of<WMat>;
  const MatrixView<const Scalar> w = detail::as_view(W);
  detail::check_layer(ctx, w, stats, "cuda::compensate");
  detail::require_kept_set(kept, w.cols, "cuda::compensate: kept");
  return detail::compensate_device<Scalar, Acc>(ctx, w, MatrixView<const Scalar>(), false, stats, kept, method, options,
                                                solver, "cuda::compensate");
}

}  // namespace cuda
}  // namespace rcpu

#endif  // RCPU_CUDA_COMPENSATION_HPP
