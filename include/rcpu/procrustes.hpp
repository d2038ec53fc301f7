// SPDX-License-Identifier: MIT
#ifndef RCPU_PROCRUSTES_HPP
#define RCPU_PROCRUSTES_HPP

/// \file procrustes.hpp
/// The orthogonal Procrustes problem: max_Q tr(Q^T M) over orthogonal Q, i.e. min_Q ||Y - Q Z||_F
/// for M = Y Z^T. Solution (Schönemann 1966): M = U S V^T, Q = U V^T.

#include <cmath>
#include <limits>
#include <string>

#include <Eigen/Core>
#include <Eigen/LU>
#include <Eigen/SVD>

#include "config.hpp"
#include "detail/checks.hpp"
#include "error.hpp"

namespace rcpu {

/// Which SVD computes the Procrustes rotation.
enum class ProcrustesMethod {
  automatic,   ///< the fastest accurate route available (currently Eigen's BDCSVD)
  bdc_svd,     ///< Eigen's divide-and-conquer SVD
  jacobi_svd   ///< Eigen's two-sided Jacobi SVD: slow, most accurate; for checks on small problems
};

inline const char* to_string(ProcrustesMethod m) {
  switch (m) {
    case ProcrustesMethod::automatic: return "automatic";
    case ProcrustesMethod::bdc_svd: return "bdc_svd";
    case ProcrustesMethod::jacobi_svd: return "jacobi_svd";
  }
  return "unknown";
}

struct ProcrustesOptions {
  ProcrustesMethod method = ProcrustesMethod::automatic;
  /// Return a proper rotation (det Q = +1) by flipping the singular pair of the smallest singular
  /// value when det(U V^T) < 0 (Kabsch). Off by default, as in the RCPU authors' code. Meaningless
  /// (but harmless) when M is rank-deficient: Q is then not unique, only Q restricted to M's row space.
  bool proper_rotation = false;
};

/// Solver of the orthogonal Procrustes problem, in the style of Eigen's decompositions:
/// construct or compute(), check info(), read rotation(), singular_values(), trace(), scale().
///
/// Rank-deficient M (e.g. o_proj with k kept columns < d_out) is fine: Q is then not unique, but Q
/// applied to any vector in M's row space is, which is all the compensation W_K <- Q W_K uses.
template <typename Scalar>
class Procrustes {
  RCPU_STATIC_ASSERT_SCALAR(Scalar);

 public:
  using Matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;
  using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

  Procrustes() = default;

  template <typename Derived>
  explicit Procrustes(const Eigen::MatrixBase<Derived>& M, const ProcrustesOptions& options = {}) {
    compute(M, options);
  }

  /// Solves max tr(Q^T M) for a square M (d x d).
  /// \throws rcpu::invalid_argument if M is empty, not square, or has NaN/Inf.
  template <typename Derived>
  Procrustes& compute(const Eigen::MatrixBase<Derived>& M, const ProcrustesOptions& options = {}) {
    detail::require(M.rows() >= 1 && M.rows() == M.cols(),
                    "Procrustes: M is " + detail::shape(M) + ", expected a non-empty square matrix");
    detail::require_finite(M, "Procrustes: M");
    const Matrix Ms = M.template cast<Scalar>();
    switch (options.method) {
      case ProcrustesMethod::jacobi_svd: {
        Eigen::JacobiSVD<Matrix> svd(Ms, Eigen::ComputeFullU | Eigen::ComputeFullV);
        finish(svd.matrixU(), svd.singularValues(), svd.matrixV(), options, svd.info());
        break;
      }
      case ProcrustesMethod::automatic:
      case ProcrustesMethod::bdc_svd: {
        Eigen::BDCSVD<Matrix> svd(Ms, Eigen::ComputeFullU | Eigen::ComputeFullV);
        finish(svd.matrixU(), svd.singularValues(), svd.matrixV(), options, svd.info());
        break;
      }
    }
    return *this;
  }

  /// Solves min ||Y - Q Z||_F from the two d x N matrices, via M = Y Z^T.
  template <typename DerivedY, typename DerivedZ>
  Procrustes& compute(const Eigen::MatrixBase<DerivedY>& Y, const Eigen::MatrixBase<DerivedZ>& Z,
                      const ProcrustesOptions& options = {}) {
    detail::require(Y.rows() == Z.rows() && Y.cols() == Z.cols(),
                    "Procrustes: Y is " + detail::shape(Y) + " and Z is " + detail::shape(Z) + ", must match");
    detail::require_finite(Y, "Procrustes: Y");
    detail::require_finite(Z, "Procrustes: Z");
    const Matrix M = Y.template cast<Scalar>() * Z.template cast<Scalar>().transpose();
    return compute(M, options);
  }

  Info info() const { return m_info; }

  /// The orthogonal (or, with proper_rotation, special orthogonal) Q, d x d.
  const Matrix& rotation() const {
    require_computed("rotation");
    return m_q;
  }
  /// Singular values of M, decreasing.
  const Vector& singular_values() const {
    require_computed("singular_values");
    return m_sigma;
  }
  /// The optimum tr(Q^T M): sum of the singular values, minus twice the smallest when the
  /// reflection was fixed.
  Scalar trace() const {
    require_computed("trace");
    return m_trace;
  }
  /// Whether proper_rotation flipped the last singular pair.
  bool reflection_fixed() const {
    require_computed("reflection_fixed");
    return m_flipped;
  }
  /// The isotropic scale s = tr(Q^T M) / (||Z||_F^2 + epsilon) minimising ||Y - s Q Z||_F.
  /// \throws rcpu::invalid_argument if ||Z||^2 + epsilon is not positive and finite.
  Scalar scale(Scalar z_squared_norm, Scalar epsilon = Scalar(0)) const {
    require_computed("scale");
    const Scalar den = z_squared_norm + epsilon;
    detail::require(std::isfinite(den) && den > 0, "Procrustes::scale: ||Z||^2 + epsilon = " + std::to_string(den) +
                                                       " must be positive and finite");
    return m_trace / den;
  }
  /// Numerical rank of M: singular values above max(d * eps * sigma_max, tiny).
  Index rank() const {
    require_computed("rank");
    const Scalar tol = m_sigma.size() * std::numeric_limits<Scalar>::epsilon() * (m_sigma.size() ? m_sigma(0) : 0);
    return (m_sigma.array() > tol).count();
  }
  /// sigma_max / sigma_min of M (infinity when M is singular).
  Scalar condition() const {
    require_computed("condition");
    const Scalar smin = m_sigma(m_sigma.size() - 1);
    return smin > 0 ? m_sigma(0) / smin : std::numeric_limits<Scalar>::infinity();
  }

 private:
  template <typename U, typename S, typename V>
  void finish(const U& u, const S& s, const V& v, const ProcrustesOptions& options, Eigen::ComputationInfo info) {
    m_sigma = s;
    m_flipped = false;
    m_trace = m_sigma.sum();
    if (info != Eigen::Success) {
      m_info = Info::no_convergence;
      m_q.resize(0, 0);
      return;
    }
    m_q.noalias() = u * v.transpose();
    if (options.proper_rotation && m_q.partialPivLu().determinant() < 0) {
      // Kabsch: Q = U diag(1, ..., 1, -1) V^T = U V^T - 2 u_last v_last^T.
      const Index last = m_sigma.size() - 1;
      m_q.noalias() -= Scalar(2) * u.col(last) * v.col(last).transpose();
      m_trace -= Scalar(2) * m_sigma(last);
      m_flipped = true;
    }
    m_info = Info::success;
  }

  void require_computed(const char* what) const {
    detail::require(m_info != Info::not_computed,
                    std::string("Procrustes::") + what + ": compute() has not been called");
  }

  Matrix m_q;
  Vector m_sigma;
  Scalar m_trace = 0;
  bool m_flipped = false;
  Info m_info = Info::not_computed;
};

/// Convenience: the Procrustes rotation Q of M. \throws rcpu::invalid_argument as Procrustes::compute,
/// rcpu::numerical_error if the SVD did not converge.
template <typename Derived>
Eigen::Matrix<typename Derived::Scalar, Eigen::Dynamic, Eigen::Dynamic> procrustes_rotation(
    const Eigen::MatrixBase<Derived>& M, const ProcrustesOptions& options = {}) {
  Procrustes<typename Derived::Scalar> p(M, options);
  if (p.info() != Info::success) throw numerical_error("procrustes_rotation: the SVD did not converge");
  return p.rotation();
}

}  // namespace rcpu

#endif  // RCPU_PROCRUSTES_HPP
