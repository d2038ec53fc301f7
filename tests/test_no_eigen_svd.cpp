// RCPU_NO_EIGEN_SVD: the Procrustes routes that need Eigen's SVDs are compiled out (faster builds),
// the default route still works, and asking for a compiled-out route throws.
#define RCPU_NO_EIGEN_SVD
#include <rcpu/procrustes.hpp>

#include "support.hpp"

TEMPLATE_TEST_CASE("RCPU_NO_EIGEN_SVD keeps the default route and refuses Eigen's SVDs", "[fast_paths]", float, double) {
  rcpu_test::Rng rng(101);
  const Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic> M = rng.normal<TestType>(12, 12);
  rcpu::Procrustes<TestType> p(M);
  CHECK(p.info() == rcpu::Info::success);
  CHECK(p.method() == rcpu::ProcrustesMethod::polar_eig);
  const Eigen::MatrixXd Q = p.rotation().template cast<double>();
  CHECK((Q.transpose() * Q - Eigen::MatrixXd::Identity(12, 12)).norm() <= rcpu_test::tol<TestType>(1e-13, 1e-5));
  CHECK_THROWS_AS(p.compute(M, {rcpu::ProcrustesMethod::bdc_svd, false}), rcpu::invalid_argument);
  CHECK_THROWS_AS(p.compute(M, {rcpu::ProcrustesMethod::jacobi_svd, false}), rcpu::invalid_argument);
}
