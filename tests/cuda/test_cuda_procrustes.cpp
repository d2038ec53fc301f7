// rcpu::cuda::Procrustes against rcpu::Procrustes, for every cuSOLVER route, in float and double, on
// full-rank, rank-deficient, reflected and zero problems.
#include "cuda_support.hpp"

using namespace rcpu_cuda_test;
using rcpu::cuda::ProcrustesSolver;
using rcpu_test::rel_diff;
using rcpu_test::Rng;
using rcpu_test::tol;

namespace {

const ProcrustesSolver all_solvers[] = {ProcrustesSolver::syevd, ProcrustesSolver::gesvd, ProcrustesSolver::gesvdj,
                                        ProcrustesSolver::gesvdp};

// M = U diag(sigma) V^T with chosen singular values.
Eigen::MatrixXd with_spectrum(std::uint32_t seed, const Eigen::VectorXd& sigma) {
  Rng rng(seed);
  const Index d = sigma.size();
  return rng.orthogonal(d) * sigma.asDiagonal() * rng.orthogonal(d).transpose();
}

double det(const Eigen::MatrixXd& Q) { return Q.partialPivLu().determinant(); }

}  // namespace

TEMPLATE_TEST_CASE("every route gives the CPU's rotation on a full-rank problem", "[cuda][procrustes]", float, double) {
  const Index d = 40;
  const Eigen::VectorXd sigma = Eigen::VectorXd::LinSpaced(d, 10.0, 1.0);  // distinct: Q is unique
  const Eigen::MatrixXd M = with_spectrum(21, sigma);
  const rcpu::Procrustes<double> cpu(M);
  const auto dM = up<TestType>(M);
  for (ProcrustesSolver s : all_solvers) {
    for (bool in_double : {true, false}) {
      INFO("solver " << rcpu::cuda::to_string(s) << (in_double ? ", double" : ", working precision"));
      rcpu::cuda::SolverOptions so;
      so.solver = s;
      so.solve_in_double = in_double;
      rcpu::cuda::Procrustes<TestType> gpu(ctx());
      gpu.compute(dM.view(), {}, so);
      REQUIRE(gpu.info() == rcpu::Info::success);
      CHECK(gpu.solver() == s);
      const Eigen::MatrixXd Q = down(gpu.rotation());
      const double t = (in_double || s == ProcrustesSolver::syevd) ? tol<TestType>(1e-10, 2e-6) : tol<TestType>(1e-10, 1e-4);
      CHECK(rel_diff(Q, cpu.rotation()) <= t);
      CHECK((Q.transpose() * Q - Eigen::MatrixXd::Identity(d, d)).norm() <= 10 * t);
      CHECK(max_rel(gpu.singular_values().template cast<double>(), cpu.singular_values()) <= t);
      CHECK(std::abs(double(gpu.trace()) - cpu.trace()) <= t * cpu.trace());
      CHECK(gpu.rank() == d);
      CHECK(std::abs(double(gpu.condition()) - 10.0) <= 1e3 * t);
      CHECK_FALSE(gpu.reflection_fixed());
    }
  }
}

TEMPLATE_TEST_CASE("a known rotation is recovered from Y = R Z, through compute(Y, Z)", "[cuda][procrustes]", float,
                   double) {
  Rng rng(22);
  const Index d = 24, n = 200;
  const Eigen::MatrixXd R = rng.orthogonal(d);
  const Eigen::MatrixXd Z = rng.normal(d, n);
  const Eigen::MatrixXd Y = R * Z;
  const auto dY = up<TestType>(Y), dZ = up<TestType>(Z);
  for (ProcrustesSolver s : all_solvers) {
    INFO("solver " << rcpu::cuda::to_string(s));
    rcpu::cuda::SolverOptions so;
    so.solver = s;
    rcpu::cuda::Procrustes<TestType> gpu(ctx());
    gpu.compute(dY.view(), dZ.view(), {}, so);
    REQUIRE(gpu.info() == rcpu::Info::success);
    CHECK(rel_diff(down(gpu.rotation()), R) <= tol<TestType>(1e-10, 1e-5));
  }
}

TEMPLATE_TEST_CASE("rank-deficient M: Q is not unique, Q on M's row space is", "[cuda][procrustes]", float, double) {
  const Index d = 32, r = 25;
  Eigen::VectorXd sigma = Eigen::VectorXd::Zero(d);
  sigma.head(r) = Eigen::VectorXd::LinSpaced(r, 5.0, 0.5);
  Rng rng(23);
  const Eigen::MatrixXd U = rng.orthogonal(d), V = rng.orthogonal(d);
  const Eigen::MatrixXd M = U * sigma.asDiagonal() * V.transpose();
  const Eigen::MatrixXd Z = V.leftCols(r) * rng.normal(r, 50);  // in M's row space
  const rcpu::Procrustes<double> cpu(M);
  const auto dM = up<TestType>(M);
  for (ProcrustesSolver s : all_solvers) {
    INFO("solver " << rcpu::cuda::to_string(s));
    rcpu::cuda::SolverOptions so;
    so.solver = s;
    rcpu::cuda::Procrustes<TestType> gpu(ctx());
    gpu.compute(dM.view(), {}, so);
    REQUIRE(gpu.info() == rcpu::Info::success);
    const Eigen::MatrixXd Q = down(gpu.rotation());
    CHECK((Q.transpose() * Q - Eigen::MatrixXd::Identity(d, d)).norm() <= tol<TestType>(1e-9, 1e-5));
    CHECK(rel_diff(Q * Z, cpu.rotation() * Z) <= tol<TestType>(1e-9, 2e-5));
    CHECK(rel_diff(Q * V.leftCols(r), U.leftCols(r)) <= tol<TestType>(1e-9, 2e-5));
    // gesvdp shifts singular values near zero by a small perturbation (its error_estimate()).
    const double shift = s == ProcrustesSolver::gesvdp ? double(d) * gpu.error_estimate() : 0.0;
    if (s == ProcrustesSolver::gesvdp)
      CHECK(gpu.rank() >= r);
    else
      CHECK(gpu.rank() == r);
    CHECK(std::abs(double(gpu.trace()) - sigma.sum()) <= tol<TestType>(1e-10, 1e-5) * sigma.sum() + shift);
  }
}

TEMPLATE_TEST_CASE("proper_rotation fixes a reflection as Kabsch does", "[cuda][procrustes]", float, double) {
  const Index d = 20;
  const Eigen::VectorXd sigma = Eigen::VectorXd::LinSpaced(d, 4.0, 0.2);
  Rng rng(24);
  Eigen::MatrixXd U = rng.orthogonal(d), V = rng.orthogonal(d);
  if (det(U) * det(V) > 0) U.col(0) *= -1.0;  // det(U V^T) = -1
  const Eigen::MatrixXd M = U * sigma.asDiagonal() * V.transpose();
  rcpu::ProcrustesOptions po;
  po.proper_rotation = true;
  const rcpu::Procrustes<double> cpu(M, po);
  REQUIRE(cpu.reflection_fixed());
  const auto dM = up<TestType>(M);
  for (ProcrustesSolver s : all_solvers) {
    for (bool in_double : {true, false}) {
      INFO("solver " << rcpu::cuda::to_string(s) << (in_double ? ", double" : ", working precision"));
      rcpu::cuda::SolverOptions so;
      so.solver = s;
      so.solve_in_double = in_double;
      rcpu::cuda::Procrustes<TestType> gpu(ctx());
      gpu.compute(dM.view(), po, so);
      REQUIRE(gpu.info() == rcpu::Info::success);
      CHECK(gpu.reflection_fixed());
      const Eigen::MatrixXd Q = down(gpu.rotation());
      CHECK(det(Q) == Approx(1.0).margin(tol<TestType>(1e-9, 1e-4)));
      CHECK(rel_diff(Q, cpu.rotation()) <= tol<TestType>(1e-9, 5e-4));
      CHECK(std::abs(double(gpu.trace()) - cpu.trace()) <= tol<TestType>(1e-10, 1e-5) * sigma.sum());
      // Without the option, the reflection stays.
      gpu.compute(dM.view(), {}, so);
      CHECK_FALSE(gpu.reflection_fixed());
      CHECK(det(down(gpu.rotation())) == Approx(-1.0).margin(tol<TestType>(1e-9, 1e-4)));
    }
  }
}

TEMPLATE_TEST_CASE("M = 0 and M = I; the CPU method maps to a route", "[cuda][procrustes]", float, double) {
  const Index d = 8;
  const auto zero = up<TestType>(Eigen::MatrixXd::Zero(d, d));
  const auto eye = up<TestType>(Eigen::MatrixXd::Identity(d, d));
  for (ProcrustesSolver s : all_solvers) {
    INFO("solver " << rcpu::cuda::to_string(s));
    rcpu::cuda::SolverOptions so;
    so.solver = s;
    rcpu::cuda::Procrustes<TestType> gpu(ctx());
    gpu.compute(eye.view(), {}, so);
    REQUIRE(gpu.info() == rcpu::Info::success);
    CHECK(rel_diff(down(gpu.rotation()), Eigen::MatrixXd::Identity(d, d)) <= tol<TestType>(1e-12, 1e-6));
    gpu.compute(zero.view(), {}, so);
    if (gpu.info() == rcpu::Info::success) {  // any orthogonal Q is optimal; it must still be orthogonal
      const Eigen::MatrixXd Q = down(gpu.rotation());
      CHECK((Q.transpose() * Q - Eigen::MatrixXd::Identity(d, d)).norm() <= tol<TestType>(1e-10, 1e-5));
      if (s != ProcrustesSolver::gesvdp) {  // gesvdp perturbs a singular matrix on purpose
        CHECK(gpu.trace() == TestType(0));
        CHECK(gpu.rank() == 0);
      }
    }
  }
  rcpu::ProcrustesOptions jacobi;
  jacobi.method = rcpu::ProcrustesMethod::jacobi_svd;
  rcpu::cuda::Procrustes<TestType> gpu(ctx());
  gpu.compute(eye.view(), jacobi);
  CHECK(gpu.solver() == ProcrustesSolver::gesvdj);
  gpu.compute(eye.view());
  CHECK(gpu.solver() == ProcrustesSolver::syevd);
  const auto q = rcpu::cuda::procrustes_rotation<TestType>(ctx(), eye.view());
  CHECK(q.rows() == d);
}

TEST_CASE("bad M throws rcpu::invalid_argument; accessors refuse before compute", "[cuda][procrustes]") {
  rcpu::cuda::Procrustes<double> gpu(ctx());
  CHECK_THROWS_AS(gpu.rotation(), rcpu::invalid_argument);
  CHECK_THROWS_AS(gpu.trace(), rcpu::invalid_argument);
  const auto rect = up<double>(Eigen::MatrixXd::Ones(3, 4));
  CHECK_THROWS_AS(gpu.compute(rect.view()), rcpu::invalid_argument);
  Eigen::MatrixXd bad = Eigen::MatrixXd::Identity(4, 4);
  bad(1, 2) = std::numeric_limits<double>::infinity();
  const auto dbad = up<double>(bad);
  CHECK_THROWS_AS(gpu.compute(dbad.view()), rcpu::invalid_argument);
  CHECK(gpu.info() == rcpu::Info::not_computed);
  const auto eye = up<double>(Eigen::MatrixXd::Identity(4, 4));
  gpu.compute(eye.view());
  CHECK_THROWS_AS(gpu.scale(0.0), rcpu::invalid_argument);
  CHECK(gpu.scale(2.0) == Approx(2.0));
}
