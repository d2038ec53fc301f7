// SPDX-License-Identifier: MIT
#ifndef RCPU_CUDA_PROCRUSTES_HPP
#define RCPU_CUDA_PROCRUSTES_HPP

/// \file cuda/procrustes.hpp
/// The orthogonal Procrustes problem on the GPU: max_Q tr(Q^T M) over orthogonal Q, Q = U V^T for
/// M = U S V^T (as rcpu::Procrustes, procrustes.hpp), with four cuSOLVER routes:
///   syevd   eigendecomposition of M^T M in double (cusolverDnXsyevd), U = M V S^-1 re-orthonormalised
///           by a Householder QR that also completes the null space (the default)
///   gesvd   QR-iteration SVD (cusolverDnXgesvd)
///   gesvdj  Jacobi SVD (cusolverDn<t>gesvdj)
///   gesvdp  SVD through a polar decomposition (cusolverDnXgesvdp)

#include "../detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "../error.hpp"
#include "../procrustes.hpp"
#include "config.hpp"
#include "context.hpp"
#include "detail/checks.hpp"
#include "detail/linalg.hpp"
#include "error.hpp"
#include "kernels.hpp"
#include "memory.hpp"

namespace rcpu {
namespace cuda {

/// Which cuSOLVER route computes the rotation.
enum class ProcrustesSolver {
  automatic,  ///< gesvdj when the CPU options ask for ProcrustesMethod::jacobi_svd, else syevd
  syevd,      ///< eigendecomposition of M^T M (always in double), then U = M V S^-1 via QR
  gesvd,      ///< cusolverDnXgesvd (QR iteration)
  gesvdj,     ///< cusolverDn<t>gesvdj (one-sided Jacobi)
  gesvdp      ///< cusolverDnXgesvdp (polar decomposition + syevd)
};

inline const char* to_string(ProcrustesSolver s) {
  switch (s) {
    case ProcrustesSolver::automatic: return "automatic";
    case ProcrustesSolver::syevd: return "syevd";
    case ProcrustesSolver::gesvd: return "gesvd";
    case ProcrustesSolver::gesvdj: return "gesvdj";
    case ProcrustesSolver::gesvdp: return "gesvdp";
  }
  return "unknown";
}

/// Parses the names printed by to_string(ProcrustesSolver). \throws rcpu::invalid_argument if unknown.
inline ProcrustesSolver procrustes_solver_from_string(const std::string& name) {
  for (ProcrustesSolver s : {ProcrustesSolver::automatic, ProcrustesSolver::syevd, ProcrustesSolver::gesvd,
                             ProcrustesSolver::gesvdj, ProcrustesSolver::gesvdp})
    if (name == to_string(s)) return s;
  detail::fail("unknown Procrustes solver '" + name + "' (automatic, syevd, gesvd, gesvdj, gesvdp)");
}

/// GPU-only knobs of the Procrustes solve. The CPU options (rcpu::ProcrustesOptions: method and
/// proper_rotation) keep their meaning; these add the cuSOLVER route and its precision.
struct SolverOptions {
  ProcrustesSolver solver = ProcrustesSolver::automatic;
  /// Solve in double even for float matrices (gesvd, gesvdj and gesvdp; syevd always runs in double,
  /// since it squares M's condition number). On Hopper and Ampere data-centre GPUs double costs little.
  bool solve_in_double = true;
  /// gesvdj's tolerance; 0: cuSOLVER's default (machine precision).
  double gesvdj_tolerance = 0.0;
  /// gesvdj's maximum number of sweeps; 0: cuSOLVER's default (100).
  int gesvdj_max_sweeps = 0;
};

/// The route a (CPU options, GPU options) pair selects.
inline ProcrustesSolver resolve(const rcpu::ProcrustesOptions& options, const SolverOptions& solver) {
  if (solver.solver != ProcrustesSolver::automatic) return solver.solver;
  return options.method == rcpu::ProcrustesMethod::jacobi_svd ? ProcrustesSolver::gesvdj : ProcrustesSolver::syevd;
}

namespace detail {

/// A solved Procrustes problem in the solve precision S.
template <typename S>
struct ProcrustesSolution {
  DeviceMatrix<S> q;           ///< d x d rotation (empty unless info == success)
  Eigen::VectorXd sigma;       ///< singular values of M, decreasing
  double trace = 0;            ///< tr(Q^T M)
  bool flipped = false;        ///< Kabsch's sign fix applied
  Info info = Info::not_computed;
  double error_estimate = 0;   ///< gesvdp's h_err_sigma (0 for the other routes)
  ProcrustesSolver solver = ProcrustesSolver::automatic;
};

struct GesvdjInfoDeleter {
  void operator()(gesvdjInfo* p) const noexcept { (void)cusolverDnDestroyGesvdjInfo(p); }
};

// Factors of one route: q = U V^T, and where the singular pair of the smallest singular value lives
// (for Kabsch's fix), inside buffers the struct owns.
template <typename S>
struct Factors {
  DeviceMatrix<S> q, u, v;
  const S* u_min = nullptr;
  Index u_inc = 1;
  const S* v_min = nullptr;
  Index v_inc = 1;
  Eigen::VectorXd sigma;
  Info info = Info::success;
  double error_estimate = 0;
};

inline int to_int(Index n, const char* what) {
  require(n <= Index(std::numeric_limits<int>::max()), std::string(what) + " is too large for cuSOLVER's 32-bit API");
  return int(n);
}

// gesvd: M = U S VT (cusolverDnXgesvd, jobu = jobvt = 'A'); M is destroyed.
template <typename S>
Factors<S> route_gesvd(const Context& c, DeviceMatrix<S>& M) {
  const Index d = M.rows();
  Factors<S> f;
  f.u = DeviceMatrix<S>(d, d);
  f.v = DeviceMatrix<S>(d, d);  // holds VT
  DeviceBuffer<S> sig(static_cast<std::size_t>(d));
  const cudaDataType t = cuda_type<S>();
  SolverWorkspace ws;
  std::size_t dev = 0, host = 0;
  RCPU_CUDA_CHECK(cusolverDnXgesvd_bufferSize(c.cusolver(), c.cusolver_params(), 'A', 'A', d, d, t, M.data(), d, t,
                                              sig.data(), t, f.u.data(), d, t, f.v.data(), d, t, &dev, &host));
  ws.reserve(dev, host);
  RCPU_CUDA_CHECK(cusolverDnXgesvd(c.cusolver(), c.cusolver_params(), 'A', 'A', d, d, t, M.data(), d, t, sig.data(), t,
                                   f.u.data(), d, t, f.v.data(), d, t, ws.device_ptr(), dev, ws.host_ptr(), host,
                                   ws.info.data()));
  if (read_info(c, ws.info.data(), "cusolverDnXgesvd") > 0) {
    f.info = Info::no_convergence;
    return f;
  }
  f.sigma = download_vector(c, sig.data(), d);
  f.q = DeviceMatrix<S>(d, d);
  gemm(c, CUBLAS_OP_N, CUBLAS_OP_N, d, d, d, S(1), f.u.data(), d, f.v.data(), d, S(0), f.q.data(), d);
  f.u_min = f.u.data() + (d - 1) * d;  // column d-1 of U
  f.v_min = f.v.data() + (d - 1);      // row d-1 of VT
  f.v_inc = d;
  return f;
}

// gesvdj: M = U S V^T (one-sided Jacobi; V, not VT); M is destroyed.
template <typename S>
Factors<S> route_gesvdj(const Context& c, DeviceMatrix<S>& M, const SolverOptions& o) {
  const int d = to_int(M.rows(), "M");
  Factors<S> f;
  f.u = DeviceMatrix<S>(d, d);
  f.v = DeviceMatrix<S>(d, d);
  DeviceBuffer<S> sig(static_cast<std::size_t>(d));
  gesvdjInfo_t raw = nullptr;
  RCPU_CUDA_CHECK(cusolverDnCreateGesvdjInfo(&raw));
  const std::unique_ptr<gesvdjInfo, GesvdjInfoDeleter> params(raw);
  if (o.gesvdj_tolerance > 0) RCPU_CUDA_CHECK(cusolverDnXgesvdjSetTolerance(raw, o.gesvdj_tolerance));
  if (o.gesvdj_max_sweeps > 0) RCPU_CUDA_CHECK(cusolverDnXgesvdjSetMaxSweeps(raw, o.gesvdj_max_sweeps));
  RCPU_CUDA_CHECK(cusolverDnXgesvdjSetSortEig(raw, 1));
  int lwork = 0;
  DeviceBuffer<int> info(1);
  if constexpr (std::is_same<S, float>::value) {
    RCPU_CUDA_CHECK(cusolverDnSgesvdj_bufferSize(c.cusolver(), CUSOLVER_EIG_MODE_VECTOR, 0, d, d, M.data(), d,
                                                 sig.data(), f.u.data(), d, f.v.data(), d, &lwork, raw));
    DeviceBuffer<S> work(static_cast<std::size_t>(std::max(lwork, 1)));
    RCPU_CUDA_CHECK(cusolverDnSgesvdj(c.cusolver(), CUSOLVER_EIG_MODE_VECTOR, 0, d, d, M.data(), d, sig.data(),
                                      f.u.data(), d, f.v.data(), d, work.data(), lwork, info.data(), raw));
    if (read_info(c, info.data(), "cusolverDnSgesvdj") > 0) f.info = Info::no_convergence;
  } else {
    RCPU_CUDA_CHECK(cusolverDnDgesvdj_bufferSize(c.cusolver(), CUSOLVER_EIG_MODE_VECTOR, 0, d, d, M.data(), d,
                                                 sig.data(), f.u.data(), d, f.v.data(), d, &lwork, raw));
    DeviceBuffer<S> work(static_cast<std::size_t>(std::max(lwork, 1)));
    RCPU_CUDA_CHECK(cusolverDnDgesvdj(c.cusolver(), CUSOLVER_EIG_MODE_VECTOR, 0, d, d, M.data(), d, sig.data(),
                                      f.u.data(), d, f.v.data(), d, work.data(), lwork, info.data(), raw));
    if (read_info(c, info.data(), "cusolverDnDgesvdj") > 0) f.info = Info::no_convergence;
  }
  if (f.info != Info::success) return f;
  f.sigma = download_vector(c, sig.data(), d);
  f.q = DeviceMatrix<S>(d, d);
  gemm(c, CUBLAS_OP_N, CUBLAS_OP_T, d, d, d, S(1), f.u.data(), d, f.v.data(), d, S(0), f.q.data(), d);
  f.u_min = f.u.data() + Index(d - 1) * d;
  f.v_min = f.v.data() + Index(d - 1) * d;
  return f;
}

// gesvdp: M = U S V^T through a polar decomposition (V, not VT); M is destroyed.
template <typename S>
Factors<S> route_gesvdp(const Context& c, DeviceMatrix<S>& M) {
  const Index d = M.rows();
  Factors<S> f;
  f.u = DeviceMatrix<S>(d, d);
  f.v = DeviceMatrix<S>(d, d);
  DeviceBuffer<S> sig(static_cast<std::size_t>(d));
  const cudaDataType t = cuda_type<S>();
  SolverWorkspace ws;
  std::size_t dev = 0, host = 0;
  RCPU_CUDA_CHECK(cusolverDnXgesvdp_bufferSize(c.cusolver(), c.cusolver_params(), CUSOLVER_EIG_MODE_VECTOR, 0, d, d, t,
                                               M.data(), d, t, sig.data(), t, f.u.data(), d, t, f.v.data(), d, t, &dev,
                                               &host));
  ws.reserve(dev, host);
  double err_sigma = 0;
  RCPU_CUDA_CHECK(cusolverDnXgesvdp(c.cusolver(), c.cusolver_params(), CUSOLVER_EIG_MODE_VECTOR, 0, d, d, t, M.data(), d,
                                    t, sig.data(), t, f.u.data(), d, t, f.v.data(), d, t, ws.device_ptr(), dev,
                                    ws.host_ptr(), host, ws.info.data(), &err_sigma));
  if (read_info(c, ws.info.data(), "cusolverDnXgesvdp") > 0) {
    f.info = Info::no_convergence;
    return f;
  }
  f.error_estimate = err_sigma;
  f.sigma = download_vector(c, sig.data(), d);
  f.q = DeviceMatrix<S>(d, d);
  gemm(c, CUBLAS_OP_N, CUBLAS_OP_T, d, d, d, S(1), f.u.data(), d, f.v.data(), d, S(0), f.q.data(), d);
  f.u_min = f.u.data() + (d - 1) * d;
  f.v_min = f.v.data() + (d - 1) * d;
  return f;
}

// syevd (double): B = M^T M = V diag(lambda) V^T. With V's columns in decreasing order of lambda,
// the range of M is the first r, those with lambda > d * eps * lambda_max (singular values resolved
// down to about sqrt(d * eps) * sigma_max; the ones below change tr(Q^T M), hence the Procrustes
// error, by at most twice their sum). U_r = M V_r S_r^-1; a Householder QR of U_r (largest singular
// value first, so that the most accurate columns are kept) gives U_r = Q_qr[:, :r] D with D =
// sign(diag R), and Q_qr[:, r:] is an orthonormal basis of the complement, paired with the null
// eigenvectors. Then Q = Q_qr (V D')^T with D' = D on the first r columns and 1 elsewhere.
inline Factors<double> route_syevd(const Context& c, const DeviceMatrix<double>& M) {
  const Index d = M.rows();
  const int di = to_int(d, "M");
  Factors<double> f;
  DeviceBuffer<double> lam(static_cast<std::size_t>(d));
  DeviceMatrix<double> B(d, d);  // M^T M, then its eigenvectors (increasing eigenvalues)
  syrk(c, CUBLAS_OP_T, d, d, 1.0, M.data(), d, 0.0, B.data(), d);
  {
    SolverWorkspace ws;
    std::size_t dev = 0, host = 0;
    RCPU_CUDA_CHECK(cusolverDnXsyevd_bufferSize(c.cusolver(), c.cusolver_params(), CUSOLVER_EIG_MODE_VECTOR,
                                                CUBLAS_FILL_MODE_LOWER, d, CUDA_R_64F, B.data(), d, CUDA_R_64F,
                                                lam.data(), CUDA_R_64F, &dev, &host));
    ws.reserve(dev, host);
    RCPU_CUDA_CHECK(cusolverDnXsyevd(c.cusolver(), c.cusolver_params(), CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_LOWER,
                                     d, CUDA_R_64F, B.data(), d, CUDA_R_64F, lam.data(), CUDA_R_64F, ws.device_ptr(),
                                     dev, ws.host_ptr(), host, ws.info.data()));
    if (read_info(c, ws.info.data(), "cusolverDnXsyevd") > 0) {
      f.info = Info::no_convergence;
      return f;
    }
  }
  const Eigen::VectorXd lambda = download_vector(c, lam.data(), d);  // increasing
  const double lmax = std::max(lambda(d - 1), 0.0);
  const double tau = double(d) * std::numeric_limits<double>::epsilon() * lmax;
  Index r = 0;
  while (r < d && lambda(d - 1 - r) > tau && lambda(d - 1 - r) > 0) ++r;
  f.sigma = Eigen::VectorXd::Zero(d);
  for (Index i = 0; i < r; ++i) f.sigma(i) = std::sqrt(lambda(d - 1 - i));
  {
    std::vector<Index> reversed(static_cast<std::size_t>(d));
    for (Index j = 0; j < d; ++j) reversed[std::size_t(j)] = d - 1 - j;
    const DeviceBuffer<std::int64_t> idx = upload_indices(c, reversed);
    f.v = gather<double, double>(c, B.view(), nullptr, d, idx.data(), d);  // V, decreasing eigenvalues
  }
  f.q = DeviceMatrix<double>(d, d);
  f.u = DeviceMatrix<double>(d, d);
  if (r == 0) {  // M = 0: every orthogonal Q is optimal; take Q = V V^T = I
    detail::copy_2d(c, f.u.data(), d, f.v.data(), d, d, d, cudaMemcpyDeviceToDevice);
  } else {
    gemm(c, CUBLAS_OP_N, CUBLAS_OP_N, d, r, d, 1.0, M.data(), d, f.v.data(), d, 0.0, f.u.data(), d);  // M V_r
    {
      Eigen::VectorXd inv_sigma(r);
      for (Index j = 0; j < r; ++j) inv_sigma(j) = 1.0 / f.sigma(j);
      const DeviceBuffer<double> is = upload_vector<double>(c, inv_sigma);
      RCPU_CUDA_LAUNCH(kernels::scale(f.u.data(), d, d, r, nullptr, is.data(), c.stream()));  // U_r = M V_r S_r^-1
    }
    const int ri = to_int(r, "rank");
    DeviceBuffer<double> tau_qr(static_cast<std::size_t>(r));
    DeviceBuffer<int> info(1);
    int lwork = 0;
    RCPU_CUDA_CHECK(cusolverDnDgeqrf_bufferSize(c.cusolver(), di, ri, f.u.data(), di, &lwork));
    {
      DeviceBuffer<double> work(static_cast<std::size_t>(std::max(lwork, 1)));
      RCPU_CUDA_CHECK(
          cusolverDnDgeqrf(c.cusolver(), di, ri, f.u.data(), di, tau_qr.data(), work.data(), lwork, info.data()));
      read_info(c, info.data(), "cusolverDnDgeqrf");
    }
    DeviceBuffer<double> signs(static_cast<std::size_t>(r));
    RCPU_CUDA_LAUNCH(kernels::diagonal_signs(f.u.data(), d, r, signs.data(), c.stream()));  // D = sign(diag R)
    RCPU_CUDA_CHECK(cusolverDnDorgqr_bufferSize(c.cusolver(), di, di, ri, f.u.data(), di, tau_qr.data(), &lwork));
    {
      DeviceBuffer<double> work(static_cast<std::size_t>(std::max(lwork, 1)));
      RCPU_CUDA_CHECK(cusolverDnDorgqr(c.cusolver(), di, di, ri, f.u.data(), di, tau_qr.data(), work.data(), lwork,
                                       info.data()));
      read_info(c, info.data(), "cusolverDnDorgqr");
    }
    RCPU_CUDA_LAUNCH(kernels::scale(f.v.data(), d, d, r, nullptr, signs.data(), c.stream()));  // V_r D
  }
  gemm(c, CUBLAS_OP_N, CUBLAS_OP_T, d, d, d, 1.0, f.u.data(), d, f.v.data(), d, 0.0, f.q.data(), d);  // Q = U V^T
  f.u_min = f.u.data() + (d - 1) * d;
  f.v_min = f.v.data() + (d - 1) * d;
  return f;
}

// Sign of det(Q) from an LU factorisation (cusolverDnXgetrf): product of the signs of U's diagonal
// and of the row swaps.
template <typename S>
int determinant_sign(const Context& c, const DeviceMatrix<S>& q) {
  const Index d = q.rows();
  DeviceMatrix<S> lu = DeviceMatrix<S>::copy_of(c, q.view());
  DeviceBuffer<std::int64_t> ipiv(static_cast<std::size_t>(d));
  const cudaDataType t = cuda_type<S>();
  SolverWorkspace ws;
  std::size_t dev = 0, host = 0;
  RCPU_CUDA_CHECK(
      cusolverDnXgetrf_bufferSize(c.cusolver(), c.cusolver_params(), d, d, t, lu.data(), d, t, &dev, &host));
  ws.reserve(dev, host);
  RCPU_CUDA_CHECK(cusolverDnXgetrf(c.cusolver(), c.cusolver_params(), d, d, t, lu.data(), d, ipiv.data(), t,
                                   ws.device_ptr(), dev, ws.host_ptr(), host, ws.info.data()));
  if (read_info(c, ws.info.data(), "cusolverDnXgetrf") > 0) return 0;  // exactly singular
  const Eigen::VectorXd diag = download_diagonal(c, lu.data(), d, d);
  std::vector<std::int64_t> piv(static_cast<std::size_t>(d));
  download_bytes(c, piv.data(), ipiv.data(), piv.size() * sizeof(std::int64_t));
  // LAPACK's pivots are 1-based, so the last one is d; accept 0-based ones (last one d - 1) too.
  const std::int64_t base = piv.back() == std::int64_t(d) ? 1 : 0;
  int sign = 1;
  for (Index i = 0; i < d; ++i) {
    if (diag(i) < 0) sign = -sign;
    if (piv[std::size_t(i)] != std::int64_t(i) + base) sign = -sign;
  }
  return sign;
}

/// Solves max tr(Q^T M) for a square device matrix M in precision S (M is not modified).
template <typename S, typename In>
ProcrustesSolution<S> solve_procrustes(const Context& c, MatrixView<const In> M, const rcpu::ProcrustesOptions& options,
                                       const SolverOptions& solver) {
  ProcrustesSolution<S> out;
  out.solver = resolve(options, solver);
  const Index d = M.rows;
  Factors<S> f;
  if (out.solver == ProcrustesSolver::syevd) {
    const DeviceMatrix<double> Md = convert_copy<double, In>(c, M);
    Factors<double> fd = route_syevd(c, Md);
    if constexpr (std::is_same<S, double>::value) {
      f = std::move(fd);
    } else {
      f.info = fd.info;
      f.sigma = std::move(fd.sigma);
      if (fd.info == Info::success) {  // back to S, with the smallest pair's vectors
        f.q = convert_copy<S, double>(c, fd.q.view());
        f.u = DeviceMatrix<S>(d, 1);
        f.v = DeviceMatrix<S>(d, 1);
        RCPU_CUDA_LAUNCH(kernels::convert(fd.u_min, DataType::f64, d, 1, d, f.u.data(), data_type_of<S>(), d, c.stream()));
        RCPU_CUDA_LAUNCH(kernels::convert(fd.v_min, DataType::f64, d, 1, d, f.v.data(), data_type_of<S>(), d, c.stream()));
        f.u_min = f.u.data();
        f.v_min = f.v.data();
      }
    }
  } else {
    DeviceMatrix<S> Ms = convert_copy<S, In>(c, M);
    switch (out.solver) {
      case ProcrustesSolver::gesvd: f = route_gesvd(c, Ms); break;
      case ProcrustesSolver::gesvdj: f = route_gesvdj(c, Ms, solver); break;
      case ProcrustesSolver::gesvdp: f = route_gesvdp(c, Ms); break;
      case ProcrustesSolver::automatic:
      case ProcrustesSolver::syevd: break;
    }
  }
  out.info = f.info;
  out.error_estimate = f.error_estimate;
  out.sigma = std::move(f.sigma);
  if (out.info != Info::success) return out;
  out.trace = out.sigma.sum();
  if (options.proper_rotation && determinant_sign(c, f.q) < 0) {
    // Kabsch: Q = U diag(1, ..., 1, -1) V^T = U V^T - 2 u_min v_min^T.
    ger(c, d, d, S(-2), f.u_min, f.u_inc, f.v_min, f.v_inc, f.q.data(), d);
    out.trace -= 2.0 * out.sigma(d - 1);
    out.flipped = true;
  }
  out.q = std::move(f.q);
  return out;
}

/// Numerical rank of M from its singular values, as rcpu::Procrustes::rank: sigma > d eps sigma_max.
template <typename Scalar>
Index numerical_rank(const Eigen::VectorXd& sigma) {
  if (sigma.size() == 0) return 0;
  const double tol = double(sigma.size()) * double(std::numeric_limits<Scalar>::epsilon()) * sigma(0);
  return (sigma.array() > tol).count();
}

inline double condition_number(const Eigen::VectorXd& sigma) {
  if (sigma.size() == 0) return std::numeric_limits<double>::quiet_NaN();
  const double smin = sigma(sigma.size() - 1);
  return smin > 0 ? sigma(0) / smin : std::numeric_limits<double>::infinity();
}

/// Throws rcpu::invalid_argument unless the device matrix has only finite entries (one read of it).
template <typename T>
void require_finite(const Context& c, MatrixView<const T> m, const std::string& name) {
  if (m.empty()) return;
  const double s = frobenius_dot<T>(c, m, m);
  require(std::isfinite(s), name + " (" + shape(m.rows, m.cols) + ") has a NaN or Inf entry");
}

}  // namespace detail

/// Solver of the orthogonal Procrustes problem on the GPU, in the style of rcpu::Procrustes:
/// construct, compute(), check info(), read rotation() (on the device), singular_values(), trace(),
/// scale(), rank(), condition().
///
/// Rank-deficient M (o_proj with k < d_out kept columns) is fine: Q is not unique there, but Q W_K is.
template <typename Scalar>
class Procrustes {
  static_assert(std::is_same<Scalar, float>::value || std::is_same<Scalar, double>::value,
                "rcpu::cuda::Procrustes works in float or double");

 public:
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  /// \param ctx  device and stream (must outlive this object)
  explicit Procrustes(const Context& ctx) : m_ctx(&ctx) {}

  /// Solves max tr(Q^T M) for a square device matrix M (d x d), which is not modified.
  /// \throws rcpu::invalid_argument if M is empty, not square, or has NaN/Inf; rcpu::cuda::Error if a
  ///         CUDA call fails. Numerical failure (cuSOLVER's info > 0) is info() == Info::no_convergence.
  Procrustes& compute(MatrixView<const Scalar> M, const rcpu::ProcrustesOptions& options = {},
                      const SolverOptions& solver = {}) {
    detail::check_view(M, "cuda::Procrustes: M");
    detail::require(M.rows >= 1 && M.rows == M.cols,
                    "cuda::Procrustes: M is " + detail::shape(M.rows, M.cols) + ", expected a non-empty square matrix");
    const ScopedDevice on(m_ctx->device());
    detail::require_finite<Scalar>(*m_ctx, M, "cuda::Procrustes: M");
    m_info = Info::not_computed;
    if (resolve(options, solver) == ProcrustesSolver::syevd || solver.solve_in_double)
      take(detail::solve_procrustes<double, Scalar>(*m_ctx, M, options, solver));
    else
      take(detail::solve_procrustes<Scalar, Scalar>(*m_ctx, M, options, solver));
    return *this;
  }

  /// Solves min ||Y - Q Z||_F for two d x N device matrices, via M = Y Z^T.
  Procrustes& compute(MatrixView<const Scalar> Y, MatrixView<const Scalar> Z, const rcpu::ProcrustesOptions& options = {},
                      const SolverOptions& solver = {}) {
    detail::check_view(Y, "cuda::Procrustes: Y");
    detail::check_view(Z, "cuda::Procrustes: Z");
    detail::require(Y.rows == Z.rows && Y.cols == Z.cols, "cuda::Procrustes: Y is " + detail::shape(Y.rows, Y.cols) +
                                                              " and Z is " + detail::shape(Z.rows, Z.cols) + ", must match");
    detail::require(Y.rows >= 1 && Y.cols >= 1, "cuda::Procrustes: Y and Z are empty");
    const ScopedDevice on(m_ctx->device());
    DeviceMatrix<Scalar> M(Y.rows, Y.rows);
    detail::gemm(*m_ctx, CUBLAS_OP_N, CUBLAS_OP_T, Y.rows, Y.rows, Y.cols, Scalar(1), Y.data, Y.ld, Z.data, Z.ld,
                 Scalar(0), M.data(), M.ld());
    return compute(M.view(), options, solver);
  }

  Info info() const { return m_info; }

  /// The orthogonal (or, with proper_rotation, special orthogonal) Q, d x d, on the device.
  const DeviceMatrix<Scalar>& rotation() const {
    require_success("rotation");
    return m_q;
  }
  /// Singular values of M, decreasing (on the host).
  const Vector& singular_values() const {
    require_computed("singular_values");
    return m_sigma;
  }
  /// tr(Q^T M): the sum of the singular values, minus twice the smallest when the reflection was fixed.
  Scalar trace() const {
    require_computed("trace");
    return m_trace;
  }
  bool reflection_fixed() const {
    require_computed("reflection_fixed");
    return m_flipped;
  }
  /// s = tr(Q^T M) / (||Z||_F^2 + epsilon). \throws rcpu::invalid_argument unless the denominator is
  /// positive and finite.
  Scalar scale(Scalar z_squared_norm, Scalar epsilon = Scalar(0)) const {
    require_computed("scale");
    const Scalar den = z_squared_norm + epsilon;
    detail::require(std::isfinite(den) && den > 0, "cuda::Procrustes::scale: ||Z||^2 + epsilon = " +
                                                       std::to_string(den) + " must be positive and finite");
    return m_trace / den;
  }
  /// Numerical rank of M: singular values above d * eps(Scalar) * sigma_max.
  Index rank() const {
    require_computed("rank");
    return detail::numerical_rank<Scalar>(m_sigma_d);
  }
  /// sigma_max / sigma_min (infinity when M is singular).
  Scalar condition() const {
    require_computed("condition");
    return Scalar(detail::condition_number(m_sigma_d));
  }
  /// The cuSOLVER route that ran.
  ProcrustesSolver solver() const { return m_solver; }
  /// gesvdp's estimate of the perturbation of the singular values (h_err_sigma); 0 for other routes.
  double error_estimate() const { return m_error; }

 private:
  template <typename S>
  void take(detail::ProcrustesSolution<S>&& s) {
    m_info = s.info;
    m_solver = s.solver;
    m_error = s.error_estimate;
    m_sigma_d = s.sigma;
    m_sigma = s.sigma.template cast<Scalar>();
    m_trace = Scalar(s.trace);
    m_flipped = s.flipped;
    if (s.info == Info::success)
      m_q = detail::convert_copy<Scalar, S>(*m_ctx, s.q.view());
    else
      m_q = DeviceMatrix<Scalar>();
  }
  void require_computed(const char* what) const {
    detail::require(m_info != Info::not_computed, std::string("cuda::Procrustes::") + what + ": compute() has not been called");
  }
  void require_success(const char* what) const {
    require_computed(what);
    detail::require(m_info == Info::success, std::string("cuda::Procrustes::") + what + ": the solve failed (info " +
                                                 rcpu::to_string(m_info) + ")");
  }

  const Context* m_ctx;
  DeviceMatrix<Scalar> m_q;
  Vector m_sigma;
  Eigen::VectorXd m_sigma_d;
  Scalar m_trace = 0;
  bool m_flipped = false;
  Info m_info = Info::not_computed;
  ProcrustesSolver m_solver = ProcrustesSolver::automatic;
  double m_error = 0;
};

/// Convenience: the rotation Q of a device matrix M, on the device.
/// \throws rcpu::invalid_argument as Procrustes::compute, rcpu::numerical_error if the solve failed.
template <typename Scalar>
DeviceMatrix<Scalar> procrustes_rotation(const Context& ctx, MatrixView<const Scalar> M,
                                         const rcpu::ProcrustesOptions& options = {}, const SolverOptions& solver = {}) {
  Procrustes<Scalar> p(ctx);
  p.compute(M, options, solver);
  if (p.info() != Info::success)
    throw rcpu::numerical_error(std::string("cuda::procrustes_rotation: the ") + to_string(p.solver()) +
                                " solve did not converge");
  const ScopedDevice on(ctx.device());
  return DeviceMatrix<Scalar>::copy_of(ctx, p.rotation().view());
}

}  // namespace cuda
}  // namespace rcpu

#endif  // RCPU_CUDA_PROCRUSTES_HPP
