// Shared helpers of rcpu's tests: Catch2 v2/v3 compatibility, seeded random matrices, and
// near-equality with per-scalar tolerances.
#ifndef RCPU_TESTS_SUPPORT_HPP
#define RCPU_TESTS_SUPPORT_HPP

#ifdef RCPU_CATCH2_V3
#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include <Eigen/Core>

#include "eigen_instances.hpp"

namespace rcpu_test {

/// Dynamic column-major matrix of a scalar.
template <typename Scalar>
using Mat = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic>;

/// ||Q^T Q - I||_F: how far Q is from orthogonal.
inline double orthogonality(const Eigen::MatrixXd& Q) {
  return (Q.transpose() * Q - Eigen::MatrixXd::Identity(Q.cols(), Q.cols())).norm();
}

/// Tolerance that scales with the scalar's precision: `t_double` for double, `t_float` for float.
template <typename Scalar>
double tol(double t_double, double t_float) {
  return std::is_same<Scalar, float>::value ? t_float : t_double;
}

/// ||A - B||_F / max(||B||_F, tiny): the relative difference used throughout the tests.
template <typename DA, typename DB>
double rel_diff(const Eigen::MatrixBase<DA>& A, const Eigen::MatrixBase<DB>& B) {
  const Eigen::MatrixXd a = A.template cast<double>(), b = B.template cast<double>();
  REQUIRE(a.rows() == b.rows());
  REQUIRE(a.cols() == b.cols());
  return (a - b).norm() / std::max(b.norm(), std::numeric_limits<double>::min());
}

/// Seeded Gaussian matrices.
class Rng {
 public:
  explicit Rng(std::uint32_t seed) : m_gen(seed) {}
  template <typename Scalar = double>
  Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic> normal(Eigen::Index r, Eigen::Index c, double sd = 1.0) {
    std::normal_distribution<double> g(0.0, sd);
    Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic> m(r, c);
    for (Eigen::Index j = 0; j < c; ++j)
      for (Eigen::Index i = 0; i < r; ++i) m(i, j) = Scalar(g(m_gen));
    return m;
  }
  /// A random orthogonal d x d matrix (QR of a Gaussian matrix, signs fixed: Haar-distributed).
  Eigen::MatrixXd orthogonal(Eigen::Index d);
  std::mt19937& engine() { return m_gen; }

 private:
  std::mt19937 m_gen;
};

}  // namespace rcpu_test

#include <Eigen/QR>

inline Eigen::MatrixXd rcpu_test::Rng::orthogonal(Eigen::Index d) {
  const Eigen::MatrixXd g = normal(d, d);
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
  Eigen::MatrixXd q = qr.householderQ();
  const Eigen::VectorXd s = qr.matrixQR().diagonal().array().sign();
  return q * s.asDiagonal();
}

#endif  // RCPU_TESTS_SUPPORT_HPP
