// Oracles for the orthogonal Procrustes solver (METHOD.md section 4).
#include <rcpu/procrustes.hpp>

#include <Eigen/LU>

#include <string>

#include "support.hpp"

// Every member of every public instantiation compiles.
template class rcpu::Procrustes<float>;
template class rcpu::Procrustes<double>;

using rcpu_test::Mat;
using rcpu_test::orthogonality;
using rcpu_test::rel_diff;
using rcpu_test::Rng;
using rcpu_test::tol;

namespace {



const rcpu::ProcrustesMethod methods[] = {rcpu::ProcrustesMethod::automatic, rcpu::ProcrustesMethod::bdc_svd,
                                          rcpu::ProcrustesMethod::jacobi_svd};

}  // namespace

TEMPLATE_TEST_CASE("an exact rotation is recovered", "[procrustes]", float, double) {
  Rng rng(21);
  const Eigen::Index d = 24, n = 80;
  const Eigen::MatrixXd R = rng.orthogonal(d);
  const Eigen::MatrixXd Z = rng.normal(d, n);
  const Mat<TestType> Y = (R * Z).cast<TestType>();
  for (auto m : methods) {
    rcpu::Procrustes<TestType> p;
    p.compute(Y, Z.cast<TestType>(), {m, false});
    REQUIRE(p.info() == rcpu::Info::success);
    INFO("method " << rcpu::to_string(m));
    CHECK(rel_diff(p.rotation(), R) <= tol<TestType>(1e-12, 2e-5));
    CHECK(orthogonality(p.rotation().template cast<double>()) <= tol<TestType>(1e-13, 1e-4));  // Frobenius over d^2 entries
    CHECK(p.rank() == d);
  }
}

TEMPLATE_TEST_CASE("both residual identities hold", "[procrustes]", float, double) {
  Rng rng(22);
  const Eigen::Index d = 16, n = 50;
  const Eigen::MatrixXd Y = rng.normal(d, n), Z = rng.normal(d, n) + 0.5 * Y;
  rcpu::Procrustes<TestType> p;
  p.compute(Y.cast<TestType>(), Z.cast<TestType>());
  const Eigen::MatrixXd Q = p.rotation().template cast<double>();
  const double trS = p.singular_values().template cast<double>().sum();
  CHECK(std::abs(double(p.trace()) - trS) <= tol<TestType>(1e-13, 1e-6) * trS);
  // ||Y - QZ||^2 = ||Y||^2 + ||Z||^2 - 2 tr(S)
  const double lhs = (Y - Q * Z).squaredNorm();
  const double rhs = Y.squaredNorm() + Z.squaredNorm() - 2 * trS;
  CHECK(std::abs(lhs - rhs) <= tol<TestType>(1e-11, 2e-4) * Y.squaredNorm());
  // With s = tr(S)/||Z||^2: ||Y - sQZ||^2 = ||Y||^2 - tr(S)^2 / ||Z||^2
  const double s = double(p.scale(TestType(Z.squaredNorm())));
  CHECK(std::abs(s - trS / Z.squaredNorm()) <= tol<TestType>(1e-14, 1e-6) * s);
  const double lhs_s = (Y - s * Q * Z).squaredNorm();
  const double rhs_s = Y.squaredNorm() - trS * trS / Z.squaredNorm();
  CHECK(std::abs(lhs_s - rhs_s) <= tol<TestType>(1e-11, 2e-4) * Y.squaredNorm());
}

TEMPLATE_TEST_CASE("the optimum beats random orthogonal perturbations", "[procrustes]", float, double) {
  Rng rng(23);
  const Eigen::Index d = 12, n = 40;
  const Eigen::MatrixXd Y = rng.normal(d, n), Z = rng.normal(d, n) + Y;
  rcpu::Procrustes<TestType> p(Mat<TestType>((Y * Z.transpose()).cast<TestType>()));
  const Eigen::MatrixXd Q = p.rotation().template cast<double>();
  const double best = (Y - Q * Z).norm();
  for (int trial = 0; trial < 50; ++trial) {
    // Small rotation exp(eps A) with A skew, plus fully random orthogonal matrices.
    const Eigen::MatrixXd B = rng.normal(d, d);
    const Eigen::MatrixXd A = 0.5 * (B - B.transpose());
    const Eigen::MatrixXd E = (Eigen::MatrixXd::Identity(d, d) + 0.01 * A) *
                              (Eigen::MatrixXd::Identity(d, d) - 0.01 * A).inverse();  // Cayley: orthogonal
    CHECK((Y - Q * E * Z).norm() >= best * (1 - tol<TestType>(1e-12, 1e-6)));
    CHECK((Y - rng.orthogonal(d) * Z).norm() >= best);
  }
}

TEMPLATE_TEST_CASE("rank-deficient M: Q is not unique but Q Z is, across SVD routines", "[procrustes]", float, double) {
  Rng rng(24);
  const Eigen::Index d = 20, k = 12, n = 60;
  // Z = W_K X_K has rank k < d, as for o_proj with heads removed.
  const Eigen::MatrixXd WK = rng.normal(d, k), XK = rng.normal(k, n);
  const Eigen::MatrixXd Z = WK * XK;
  const Eigen::MatrixXd Y = rng.normal(d, d) * Z + 0.1 * rng.normal(d, n);
  rcpu::Procrustes<TestType> a, b;
  a.compute(Y.cast<TestType>(), Z.cast<TestType>(), {rcpu::ProcrustesMethod::bdc_svd, false});
  b.compute(Y.cast<TestType>(), Z.cast<TestType>(), {rcpu::ProcrustesMethod::jacobi_svd, false});
  CHECK(a.rank() == k);
  CHECK(b.rank() == k);
  CHECK(orthogonality(a.rotation().template cast<double>()) <= tol<TestType>(1e-12, 1e-5));
  const Eigen::MatrixXd QaW = a.rotation().template cast<double>() * WK;
  const Eigen::MatrixXd QbW = b.rotation().template cast<double>() * WK;
  CHECK(rel_diff(QaW, QbW) <= tol<TestType>(1e-10, 1e-3));
  const double cond = double(a.condition());
  CHECK((std::isinf(cond) || cond > 1e5));
}

TEMPLATE_TEST_CASE("proper_rotation returns det +1 and the best rotation", "[procrustes]", float, double) {
  Rng rng(25);
  const Eigen::Index d = 8, n = 30;
  Eigen::MatrixXd R = rng.orthogonal(d);
  R.col(0) *= -1;  // a reflection: the unconstrained optimum has det -1
  const Eigen::MatrixXd Z = rng.normal(d, n);
  const Eigen::MatrixXd Y = R * Z + 0.05 * rng.normal(d, n);
  rcpu::Procrustes<TestType> free_q, proper;
  free_q.compute(Y.cast<TestType>(), Z.cast<TestType>());
  proper.compute(Y.cast<TestType>(), Z.cast<TestType>(), {rcpu::ProcrustesMethod::automatic, true});
  CHECK_FALSE(free_q.reflection_fixed());
  CHECK(proper.reflection_fixed());
  const Eigen::MatrixXd Qp = proper.rotation().template cast<double>();
  CHECK(std::abs(Qp.determinant() - 1.0) <= tol<TestType>(1e-12, 1e-5));
  CHECK(free_q.rotation().template cast<double>().determinant() < 0);
  // The trace accessor accounts for the flip, so the residual identity still holds.
  const double lhs = (Y - Qp * Z).squaredNorm();
  const double rhs = Y.squaredNorm() + Z.squaredNorm() - 2 * double(proper.trace());
  CHECK(std::abs(lhs - rhs) <= tol<TestType>(1e-11, 1e-4) * Y.squaredNorm());
  // Optimal among rotations: no perturbation inside SO(d) does better.
  const double best = std::sqrt(lhs);
  for (int trial = 0; trial < 30; ++trial) {
    const Eigen::MatrixXd B = rng.normal(d, d);
    const Eigen::MatrixXd A = 0.5 * (B - B.transpose());
    const Eigen::MatrixXd E =
        (Eigen::MatrixXd::Identity(d, d) + 0.02 * A) * (Eigen::MatrixXd::Identity(d, d) - 0.02 * A).inverse();
    CHECK((Y - Qp * E * Z).norm() >= best * (1 - tol<TestType>(1e-12, 1e-6)));
  }
  // With det(U V^T) > 0 already, the option changes nothing.
  rcpu::Procrustes<TestType> same;
  same.compute((rng.orthogonal(d) * Z).cast<TestType>(), Z.cast<TestType>());
  if (same.rotation().template cast<double>().determinant() > 0) {
    rcpu::Procrustes<TestType> fixed;
    const Eigen::MatrixXd Yr = same.rotation().template cast<double>() * Z;
    fixed.compute(Yr.cast<TestType>(), Z.cast<TestType>(),
                  {rcpu::ProcrustesMethod::automatic, true});
    CHECK_FALSE(fixed.reflection_fixed());
  }
}

TEMPLATE_TEST_CASE("zero M gives an orthogonal Q and rank 0", "[procrustes]", float, double) {
  rcpu::Procrustes<TestType> p(Mat<TestType>::Zero(5, 5));
  CHECK(p.info() == rcpu::Info::success);
  CHECK(p.rank() == 0);
  CHECK(orthogonality(p.rotation().template cast<double>()) <= 1e-6);
  CHECK_THROWS_AS(p.scale(TestType(0)), rcpu::invalid_argument);
}

TEMPLATE_TEST_CASE("Procrustes rejects bad input and use before compute", "[procrustes][errors]", float, double) {
  rcpu::Procrustes<TestType> p;
  CHECK(p.info() == rcpu::Info::not_computed);
  CHECK_THROWS_AS(p.rotation(), rcpu::invalid_argument);
  CHECK_THROWS_AS(p.trace(), rcpu::invalid_argument);
  CHECK_THROWS_AS(p.compute(Mat<TestType>::Zero(3, 4)), rcpu::invalid_argument);
  CHECK_THROWS_AS(p.compute(Mat<TestType>::Zero(0, 0)), rcpu::invalid_argument);
  Mat<TestType> M = Mat<TestType>::Identity(3, 3);
  M(1, 2) = std::numeric_limits<TestType>::quiet_NaN();
  CHECK_THROWS_AS(p.compute(M), rcpu::invalid_argument);
  CHECK(p.info() == rcpu::Info::not_computed);
  CHECK_THROWS_AS(p.compute(Mat<TestType>::Zero(3, 4), Mat<TestType>::Zero(3, 5)), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::procrustes_rotation(Mat<TestType>::Zero(2, 3)), rcpu::invalid_argument);
  CHECK(rel_diff(rcpu::procrustes_rotation(Mat<TestType>(Mat<TestType>::Identity(4, 4) * TestType(3))),
                 Eigen::MatrixXd::Identity(4, 4)) <= 1e-6);
}

TEST_CASE("past 32-bit LAPACK's size limit a route is refused clearly or falls back to Eigen", "[procrustes][errors]") {
  using PM = rcpu::ProcrustesMethod;
  CHECK(rcpu::detail::procrustes_route(PM::automatic, 4096) == PM::polar_eig);
  CHECK(rcpu::detail::procrustes_route(PM::bdc_svd, 60000) == PM::bdc_svd);  // Eigen: no limit
#ifdef RCPU_HAVE_LAPACKE
  const rcpu::Index big = 46341, gesdd_max = rcpu::detail::lapack::max_order(true);
  CHECK(gesdd_max >= 23000);  // 4 n^2 workspace entries in an int
  CHECK(rcpu::detail::lapack::max_order(false) >= 32000);  // 2 n^2 (?syevd)
  CHECK(rcpu::detail::procrustes_route(PM::automatic, big) == PM::bdc_svd);
  CHECK(rcpu::detail::procrustes_route(PM::lapack_gesdd, gesdd_max) == PM::lapack_gesdd);
  CHECK_THROWS_AS(rcpu::detail::procrustes_route(PM::lapack_gesdd, gesdd_max + 1), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::detail::procrustes_route(PM::newton, big), rcpu::invalid_argument);
  // Refused before M is read or copied: an expression of 46341^2 entries costs nothing here.
  try {
    rcpu::Procrustes<double> p(Eigen::MatrixXd::Identity(big, big), {PM::polar_eig, false});
    FAIL("accepted a 46341 x 46341 M on a 32-bit LAPACK route");
  } catch (const rcpu::invalid_argument& e) {
    const std::string what = e.what();
    CHECK(what.find("46341x46341") != std::string::npos);
    CHECK(what.find("32-bit") != std::string::npos);
    CHECK(what.find("bdc_svd") != std::string::npos);
  }
#endif
}
