// The fast paths (issue 4): every Procrustes route against the ?gesdd route on full-rank,
// rank-deficient and ill-conditioned M, in float and double; the Gram's SYRK path and its float
// policy; the compensation's restructured products. Built twice (tests/CMakeLists.txt): with the
// BLAS/LAPACK macros of the rcpu target, and with RCPU_NO_BLAS (pure Eigen; the "gesdd route" is then
// Eigen's BDCSVD, lapack_gesdd's documented fallback).
#include <rcpu/compensation.hpp>
#include <rcpu/procrustes.hpp>
#include <rcpu/statistics.hpp>

#include <Eigen/QR>

#include "support.hpp"

using rcpu_test::Mat;
using rcpu_test::orthogonality;
using rcpu_test::rel_diff;
using rcpu_test::Rng;
using rcpu_test::tol;

namespace {

using PM = rcpu::ProcrustesMethod;

const PM routes[] = {PM::automatic, PM::polar_eig, PM::newton, PM::mixed, PM::lapack_gesdd, PM::bdc_svd};

// A Procrustes problem given by Y and Z (d x N), so that the objective ||Y - Q Z|| can be measured.
struct Problem {
  std::string name;
  Eigen::MatrixXd Y, Z;
};

// Y = [U S^1/2, E1], Z = [V S^1/2, E2] with E1 E2^T = 0: M = Y Z^T = U S V^T has exactly the singular
// values s, and the optimum keeps a residual ||E1||^2 + ||E2||^2, so relative errors are meaningful.
Problem with_spectrum(const std::string& name, const Eigen::VectorXd& s, std::uint32_t seed) {
  Rng rng(seed);
  const Eigen::Index d = s.size(), m = 6;
  const Eigen::MatrixXd U = rng.orthogonal(d), V = rng.orthogonal(d);
  const Eigen::MatrixXd sq = s.cwiseSqrt().asDiagonal();
  Problem p{name, Eigen::MatrixXd::Zero(d, d + 2 * m), Eigen::MatrixXd::Zero(d, d + 2 * m)};
  p.Y.leftCols(d) = U * sq;
  p.Z.leftCols(d) = V * sq;
  p.Y.middleCols(d, m) = 0.3 * rng.normal(d, m);
  p.Z.rightCols(m) = 0.3 * rng.normal(d, m);
  return p;
}

std::vector<Problem> problems(Eigen::Index d, bool single) {
  Rng rng(91 + std::uint32_t(d));
  std::vector<Problem> ps;
  // Full rank, generic.
  {
    const Eigen::Index n = 2 * d;
    Eigen::MatrixXd Y = rng.normal(d, n), Z = rng.normal(d, n);
    Z += 0.5 * Y;
    ps.push_back({"full rank", Y, Z});
  }
  // Rank-deficient as for o_proj: Z = W_K X_K of rank 0.8 d.
  {
    const Eigen::Index k = Eigen::Index(0.8 * double(d)), n = 2 * d;
    const Eigen::MatrixXd Z = rng.normal(d, k) * rng.normal(k, n);
    const Eigen::MatrixXd Y = rng.normal(d, d) * Z + 0.1 * rng.normal(d, n);
    ps.push_back({"rank-deficient", Y, Z});
  }
  // Ill-conditioned: singular values from 1 down to 1e-12 (1e-5 in float), geometrically.
  {
    Eigen::VectorXd s(d);
    const double lo = single ? 1e-5 : 1e-12;
    for (Eigen::Index i = 0; i < d; ++i) s(i) = std::pow(lo, double(i) / double(d - 1));
    ps.push_back(with_spectrum("ill-conditioned", s, 92));
  }
  // A few tiny singular values among unit ones (the recursive tail with few columns).
  {
    Eigen::VectorXd s = Eigen::VectorXd::Ones(d);
    s.tail(3) << 1e-7, 1e-9, 1e-11;
    ps.push_back(with_spectrum("three tiny singular values", s, 93));
  }
  // Exactly rank-deficient by a zero block.
  {
    Eigen::VectorXd s = Eigen::VectorXd::LinSpaced(d, 2.0, 1.0);
    s.tail(4).setZero();
    ps.push_back(with_spectrum("exact zeros", s, 94));
  }
  return ps;
}


template <typename S>
void check_routes(Eigen::Index d) {
  const bool single = std::is_same<S, float>::value;
  const double t = single ? 1e-4 : 1e-10;
  for (const Problem& p : problems(d, single)) {
    const Mat<S> M = (p.Y * p.Z.transpose()).cast<S>();
    rcpu::Procrustes<S> ref(M, {PM::lapack_gesdd, false});
    REQUIRE(ref.info() == rcpu::Info::success);
    const Eigen::MatrixXd Qr = ref.rotation().template cast<double>();
    const double f_ref = (p.Y - Qr * p.Z).norm(), orth_ref = orthogonality(Qr);
    for (PM m : routes) {
      INFO("d = " << d << ", " << p.name << ", route " << rcpu::to_string(m));
      rcpu::Procrustes<S> pr(M, {m, false});
      REQUIRE(pr.info() == rcpu::Info::success);
      const Eigen::MatrixXd Q = pr.rotation().template cast<double>();
      // Orthogonality and the objective within 1e-10 (1e-4 in float) of the gesdd answer.
      CHECK(orthogonality(Q) <= orth_ref + t * std::sqrt(double(d)));
      const double f = (p.Y - Q * p.Z).norm();
      CHECK(std::abs(f - f_ref) <= t * f_ref);
      // Q Z is unique even where Q is not (rank-deficient M, Z spanning M's row space): all routes
      // agree on it. (In the constructed problems Z also has parts in M's null or tiny directions,
      // where Q is not determined.)
      if (p.name == "full rank" || p.name == "rank-deficient")
        CHECK(rel_diff(Q * p.Z, Qr * p.Z) <= (single ? 2e-3 : 1e-9));
      // The singular values, the rank, and the trace identity.
      CHECK(rel_diff(pr.singular_values(), ref.singular_values()) <= (single ? 1e-4 : 1e-10));
      CHECK(pr.rank() == ref.rank());
      CHECK(std::abs(double(pr.trace()) - (Q.cwiseProduct(M.template cast<double>())).sum()) <=
            tol<S>(1e-12, 1e-5) * std::abs(double(pr.trace())));
    }
  }
}

}  // namespace

TEST_CASE("backend reports what the translation unit was compiled with", "[fast_paths]") {
  const std::string b = rcpu::backend();
#ifdef RCPU_NO_BLAS
  CHECK(b == "eigen");
#elif defined(RCPU_USE_BLAS) && defined(RCPU_USE_LAPACKE)
  CHECK(b == "cblas+lapacke");
#endif
  for (PM m : routes) CHECK(rcpu::procrustes_method_from_string(rcpu::to_string(m)) == m);
  CHECK_THROWS_AS(rcpu::procrustes_method_from_string("svd"), rcpu::invalid_argument);
}

TEMPLATE_TEST_CASE("every Procrustes route matches the gesdd route", "[fast_paths][procrustes]", float, double) {
  check_routes<TestType>(24);
  // 130: two blocks of 128 reflectors in the back-transformation, and both tail strategies.
  check_routes<TestType>(130);
}

TEMPLATE_TEST_CASE("the routes say which route ran", "[fast_paths][procrustes]", float, double) {
  Rng rng(95);
  const Mat<TestType> full = rng.normal<TestType>(20, 20);
  Mat<TestType> singular = full;
  singular.col(3).setZero();
  rcpu::Procrustes<TestType> p;
  CHECK(p.compute(full).method() == PM::polar_eig);  // automatic
  CHECK(p.compute(full, {PM::newton, false}).method() == PM::newton);
  CHECK(p.compute(singular, {PM::newton, false}).method() == PM::polar_eig);  // Newton needs an inverse
#ifdef RCPU_HAVE_LAPACKE
  CHECK(p.compute(full, {PM::mixed, false}).method() ==
        (std::is_same<TestType, double>::value ? PM::mixed : PM::polar_eig));
  CHECK(p.compute(full, {PM::lapack_gesdd, false}).method() == PM::lapack_gesdd);
#else
  CHECK(p.compute(full, {PM::mixed, false}).method() == PM::polar_eig);  // mixed needs LAPACK's float solver
  CHECK(p.compute(full, {PM::lapack_gesdd, false}).method() == PM::bdc_svd);
#endif
  CHECK_THROWS_AS(rcpu::Procrustes<TestType>().method(), rcpu::invalid_argument);
}

TEMPLATE_TEST_CASE("proper_rotation works on every route", "[fast_paths][procrustes]", float, double) {
  Rng rng(96);
  const Eigen::Index d = 30, n = 90;
  Eigen::MatrixXd R = rng.orthogonal(d);
  R.col(0) *= -1;  // a reflection: the unconstrained optimum has det -1
  const Eigen::MatrixXd Z = rng.normal(d, n);
  const Eigen::MatrixXd Y = R * Z + 0.05 * rng.normal(d, n);
  const Mat<TestType> M = (Y * Z.transpose()).cast<TestType>();
  rcpu::Procrustes<TestType> ref(M, {PM::lapack_gesdd, true});
  for (PM m : routes) {
    INFO("route " << rcpu::to_string(m));
    rcpu::Procrustes<TestType> p(M, {m, true});
    REQUIRE(p.info() == rcpu::Info::success);
    CHECK(p.reflection_fixed());
    CHECK(std::abs(p.rotation().template cast<double>().determinant() - 1.0) <= tol<TestType>(1e-10, 1e-4));
    CHECK(rel_diff(p.rotation(), ref.rotation()) <= tol<TestType>(1e-9, 1e-3));
  }
}

TEMPLATE_TEST_CASE("zero and 1 x 1 M on every route", "[fast_paths][procrustes]", float, double) {
  for (PM m : routes) {
    INFO("route " << rcpu::to_string(m));
    rcpu::Procrustes<TestType> z(Mat<TestType>::Zero(7, 7), {m, false});
    CHECK(z.info() == rcpu::Info::success);
    CHECK(z.rank() == 0);
    CHECK(orthogonality(z.rotation().template cast<double>()) <= 1e-5);
    rcpu::Procrustes<TestType> one(Mat<TestType>::Constant(1, 1, TestType(-2)), {m, false});
    CHECK(one.rotation()(0, 0) == TestType(-1));
    CHECK(one.singular_values()(0) == TestType(2));
  }
}

TEMPLATE_TEST_CASE("the compensation gives the same W' on every route", "[fast_paths][compensation]", float, double) {
  Rng rng(97);
  const Eigen::Index d_out = 24, d_in = 24, n = 400;
  const Eigen::MatrixXd X = rng.normal(n, 6) * rng.normal(6, d_in) + 0.5 * rng.normal(n, d_in);
  const Mat<TestType> W = rng.normal<TestType>(d_out, d_in);
  rcpu::Statistics<TestType> st(d_in);
  st.update(X.cast<TestType>());
  // o_proj-like (M rank-deficient: k < d_out) and down_proj-like (k >= d_out through d_in > d_out).
  const std::vector<rcpu::Index> heads = {0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23};
  // The reference forms the full Q (d_out x d_out) by ?gesdd; the routes solve the reduced k x k
  // problem by default (k < d_out) and the full one with full_rotation.
  rcpu::CompensationOptions ref_opt;
  ref_opt.procrustes.method = PM::lapack_gesdd;
  ref_opt.full_rotation = true;
  for (auto c : {rcpu::Compensation::rotation, rcpu::Compensation::rotation_scale}) {
    const auto ref = rcpu::compensate(W, st, heads, c, ref_opt);
    REQUIRE(ref.rotation.rows() == d_out);
    for (PM m : routes)
      for (bool full : {false, true}) {
        INFO("route " << rcpu::to_string(m) << (full ? ", full Q" : ", reduced"));
        rcpu::CompensationOptions opt;
        opt.procrustes.method = m;
        opt.full_rotation = full;
        const auto r = rcpu::compensate(W, st, heads, c, opt);
        CHECK(r.report.info == rcpu::Info::success);
        CHECK(r.rotation.rows() == (full ? d_out : 0));
        CHECK(r.singular_values.size() == d_out);
        CHECK(rel_diff(r.weight, ref.weight) <= tol<TestType>(1e-9, 1e-4));
        CHECK(std::abs(r.report.after.relative_error - ref.report.after.relative_error) <= 1e-9);
        CHECK(r.report.rank_m == ref.report.rank_m);
        CHECK(std::abs(r.scale - ref.scale) <= 1e-9 * ref.scale);
      }
  }
}

TEST_CASE("the compensation on fewer tokens than columns takes the low-rank route and matches the full one",
          "[fast_paths][compensation]") {
  Rng rng(98);
  const Eigen::Index n = 12;  // tokens: M = A W_K^T has rank <= 12
  for (auto dims : {std::pair<Eigen::Index, Eigen::Index>{90, 90}, {60, 150}}) {  // o_proj-like, down_proj-like
    const Eigen::Index d_out = dims.first, d_in = dims.second;
    INFO("d_out " << d_out << ", d_in " << d_in);
    const Eigen::MatrixXd X = rng.normal(n, d_in), W = rng.normal(d_out, d_in);
    rcpu::Statistics<double> st(d_in);
    st.update(X);
    std::vector<rcpu::Index> kept;
    for (rcpu::Index j = 0; j < d_in; ++j)
      if (j % 5 != 2) kept.push_back(j);
    rcpu::CompensationOptions full;
    full.full_rotation = true;
    for (auto c : {rcpu::Compensation::rotation, rcpu::Compensation::rotation_scale}) {
      const auto ref = rcpu::compensate(W, st, kept, c, full);
      const auto r = rcpu::compensate(W, st, kept, c);
      REQUIRE(r.report.info == rcpu::Info::success);
      CHECK(ref.rotation.rows() == d_out);
#ifdef RCPU_HAVE_LAPACKE
      CHECK(r.rotation.size() == 0);  // the low-rank route: no Q formed
#else
      CHECK(r.rotation.size() == (Eigen::Index(kept.size()) < d_out ? 0 : d_out * d_out));  // no low-rank route
#endif
      // Q W_K is not unique (rank 12 < k): the same objective, and W' = s Q W_K for an orthogonal Q.
      CHECK(std::abs(r.report.after.relative_error - ref.report.after.relative_error) <= 1e-9);
      CHECK(std::abs(r.scale - ref.scale) <= 1e-10 * ref.scale);
      const Eigen::MatrixXd WK = W(Eigen::all, kept), Wp = r.weight / r.scale;
      CHECK(rel_diff(Eigen::MatrixXd(Wp.transpose() * Wp), Eigen::MatrixXd(WK.transpose() * WK)) <= 1e-12);
      CHECK(r.report.rank_m == n);
      CHECK(rel_diff(r.singular_values, ref.singular_values) <= 1e-10);
    }
  }
}

TEMPLATE_TEST_CASE("every rotation-based compensation on the product routes equals its full-Q route",
                   "[fast_paths][compensation]", float, double) {
  using S = TestType;
  // With more tokens than kept columns Q W_K is unique, so the product routes and full_rotation must give
  // the same weight, bias, scale and report, geometry included, for every compensation built on Q W_K:
  // the bias correction and the ridge toward the rotation too. 90 x 90 (k = 72 < d_out) takes the
  // reduced k x k problem; 60 x 150 (k = 120 >= d_out) forms M and Q on both routes.
  Rng rng(99);
  const Eigen::Index n = 400;
  for (auto dims : {std::pair<Eigen::Index, Eigen::Index>{90, 90}, {60, 150}}) {
    const Eigen::Index d_out = dims.first, d_in = dims.second;
    INFO("d_out " << d_out << ", d_in " << d_in);
    const Mat<S> X = (rng.normal<S>(n, d_in).array() + S(0.3)).matrix(), W = rng.normal<S>(d_out, d_in);
    const Eigen::Matrix<S, Eigen::Dynamic, 1> b = rng.normal<S>(d_out, 1);
    rcpu::Statistics<S> st(d_in);
    st.update(X);
    std::vector<rcpu::Index> kept;
    for (rcpu::Index j = 0; j < d_in; ++j)
      if (j % 5 != 2) kept.push_back(j);
    for (auto c : {rcpu::Compensation::rotation, rcpu::Compensation::rotation_scale, rcpu::Compensation::rotation_bias,
                   rcpu::Compensation::rotation_ridge}) {
      INFO(rcpu::to_string(c));
      rcpu::CompensationOptions opt;
      opt.geometry = true;
      opt.lambda = 0.05 * double(n);  // rotation_ridge: about 5% of G_KK's diagonal (n E[x^2], about 1.1 n)
      rcpu::CompensationOptions full = opt;
      full.full_rotation = true;
      const auto ref = rcpu::compensate(W, b, st, kept, c, full);
      const auto r = rcpu::compensate(W, b, st, kept, c, opt);
      REQUIRE(ref.report.info == rcpu::Info::success);
      REQUIRE(r.report.info == rcpu::Info::success);
      CHECK(ref.rotation.rows() == d_out);
      // The product routes ran: no Q formed where k < d_out (the reduced k x k problem); where k >= d_out
      // Q is formed on either route.
      CHECK(r.rotation.size() == (Eigen::Index(kept.size()) < d_out ? 0 : d_out * d_out));
      // The solve runs in double for both scalars; a float result is its rounding.
      const double t = tol<S>(1e-9, 1e-6);
      CHECK(rel_diff(r.weight, ref.weight) <= t);
      CHECK(rel_diff(r.bias, ref.bias) <= t);
      CHECK(std::abs(r.scale - ref.scale) <= 1e-10 * ref.scale);
      CHECK(rel_diff(r.singular_values, ref.singular_values) <= 1e-9);
      CHECK(std::abs(r.report.after.relative_error - ref.report.after.relative_error) <= 1e-9);
      CHECK(std::abs(r.report.after.cosine - ref.report.after.cosine) <= 1e-9);
      CHECK(std::abs(r.report.after.inner_product_distortion - ref.report.after.inner_product_distortion) <= 1e-9);
      CHECK(std::isfinite(r.report.after.inner_product_distortion));
      CHECK(r.report.reflection_fixed == ref.report.reflection_fixed);
      CHECK(r.report.after.relative_error < r.report.before.relative_error);
    }
  }
}

namespace {

// Q W for M = A W^T by the full route: ?gesdd's Q (d x d) times W.
template <typename S>
Eigen::MatrixXd full_route(const Mat<S>& A, const Mat<S>& W, rcpu::Procrustes<S>& ref) {
  ref.compute(Mat<S>(A * W.transpose()), {PM::lapack_gesdd, false});
  REQUIRE(ref.info() == rcpu::Info::success);
  return (ref.rotation() * W).template cast<double>();
}

template <typename S>
void check_product(Eigen::Index d, Eigen::Index k) {
  const bool single = std::is_same<S, float>::value;
  const double t = single ? 1e-4 : 1e-10;
  Rng rng(120 + std::uint32_t(d + k));
  const Mat<S> W = rng.normal<S>(d, k);
  struct Case {
    const char* name;
    Mat<S> A;
    bool unique;  // M of rank k: Q W is unique
  };
  const Eigen::Index h = std::max<Eigen::Index>(1, k / 2);
  const std::vector<Case> cases = {
      {"generic", Mat<S>((rng.normal(d, k) + 0.5 * W.template cast<double>()).template cast<S>()), k <= d},
      {"A of rank k/2", Mat<S>((rng.normal(d, h) * rng.normal(h, k)).template cast<S>()), false},
  };
  for (const Case& c : cases) {
    rcpu::Procrustes<S> ref;
    const Eigen::MatrixXd QWr = full_route<S>(c.A, W, ref);
    for (PM m : routes) {
      INFO("d = " << d << ", k = " << k << ", " << c.name << ", route " << rcpu::to_string(m));
      rcpu::ProcrustesProduct<S> p(c.A, W, {m, false});
      REQUIRE(p.info() == rcpu::Info::success);
      const Eigen::MatrixXd QW = p.rotated().template cast<double>();
      REQUIRE(QW.rows() == d);
      REQUIRE(QW.cols() == k);
      // Q W for an orthogonal Q: the same Gram as W (an isometry of range(W)).
      const Eigen::MatrixXd Wd = W.template cast<double>();
      CHECK(rel_diff(Eigen::MatrixXd(QW.transpose() * QW), Eigen::MatrixXd(Wd.transpose() * Wd)) <= 10 * t);
      // Optimal: the same objective as the full route, and tr((Q W)^T A) is the reported trace.
      const double tr = QW.cwiseProduct(c.A.template cast<double>()).sum();
      CHECK(std::abs(tr - double(ref.trace())) <= t * std::abs(double(ref.trace())));
      CHECK(std::abs(double(p.trace()) - tr) <= t * std::abs(tr));
      CHECK(p.singular_values().size() == d);
      CHECK(rel_diff(p.singular_values(), ref.singular_values()) <= 10 * t);
      CHECK(p.rank() == ref.rank());
      if (c.unique) CHECK(rel_diff(QW, QWr) <= (single ? 2e-3 : 1e-9));
    }
  }
}

}  // namespace

TEMPLATE_TEST_CASE("ProcrustesProduct: the reduced k x k route equals the full route", "[fast_paths][procrustes]",
                   float, double) {
  // k < d (the reduced route; 130 x 104 crosses a block of 128 reflectors), k = d and k > d (M formed).
  for (auto dk : {std::pair<Eigen::Index, Eigen::Index>{24, 19}, {130, 104}, {20, 20}, {12, 17}})
    check_product<TestType>(dk.first, dk.second);
}

TEMPLATE_TEST_CASE("ProcrustesProduct: the low-rank route (a rank bound) equals the full route",
                   "[fast_paths][procrustes]", float, double) {
  const bool single = std::is_same<TestType, float>::value;
  const double t = single ? 1e-4 : 1e-10;
  // (d, k, true rank, bound): k < d and k > d with the bound held; a bound below the true rank
  // (the check refuses it, another route runs); a bound too large to pay (not tried).
  struct Case {
    Eigen::Index d, k, rank, bound;
    bool lowrank;
  };
#ifdef RCPU_HAVE_LAPACKE
  const bool lapack = true;
#else
  const bool lapack = false;  // the route needs LAPACK's reflector storage
#endif
  for (const Case c : {Case{120, 100, 10, 10, lapack}, Case{60, 90, 7, 8, lapack}, Case{120, 100, 20, 10, false},
                       Case{60, 40, 10, 15, false}}) {
    INFO("d = " << c.d << ", k = " << c.k << ", rank " << c.rank << ", bound " << c.bound);
    Rng rng(140 + std::uint32_t(c.d + c.k + c.rank));
    const Mat<TestType> W = rng.normal<TestType>(c.d, c.k);
    // A = (W G) with G of rank `rank`, as in the compensation: spread singular values.
    Eigen::MatrixXd F = rng.normal(c.k, c.rank);
    for (Eigen::Index j = 0; j < c.rank; ++j) F.col(j) *= std::pow(10.0, -2.0 * double(j) / double(c.rank));
    const Mat<TestType> A = (W.template cast<double>() * (F * F.transpose())).template cast<TestType>();
    rcpu::Procrustes<TestType> ref;
    (void)full_route<TestType>(A, W, ref);
    for (PM m : routes) {
      INFO("route " << rcpu::to_string(m));
      rcpu::ProcrustesProduct<TestType> p(A, W, {m, false}, c.bound);
      REQUIRE(p.info() == rcpu::Info::success);
      CHECK(p.order() == (c.lowrank ? c.bound + 8 : std::min(c.d, c.k)));
      const Eigen::MatrixXd QW = p.rotated().template cast<double>(), Wd = W.template cast<double>();
      CHECK(rel_diff(Eigen::MatrixXd(QW.transpose() * QW), Eigen::MatrixXd(Wd.transpose() * Wd)) <= 10 * t);
      const double tr = QW.cwiseProduct(A.template cast<double>()).sum();
      CHECK(std::abs(tr - double(ref.trace())) <= t * std::abs(double(ref.trace())));
      CHECK(std::abs(double(p.trace()) - tr) <= t * std::abs(tr));
      CHECK(p.singular_values().size() == c.d);
      CHECK(rel_diff(p.singular_values(), ref.singular_values()) <= 10 * t);
      CHECK(p.rank() == ref.rank());
    }
  }
}

TEMPLATE_TEST_CASE("ProcrustesProduct: zero A, a zero column, bad input", "[fast_paths][procrustes]", float, double) {
  Rng rng(130);
  Mat<TestType> W = rng.normal<TestType>(16, 10);
  for (PM m : routes) {
    INFO("route " << rcpu::to_string(m));
    // M = 0: every Q is optimal; W is kept (Q = I).
    rcpu::ProcrustesProduct<TestType> z(Mat<TestType>::Zero(16, 10), W, {m, false});
    REQUIRE(z.info() == rcpu::Info::success);
    CHECK(z.rotated() == W);
    CHECK(z.rank() == 0);
    CHECK(z.trace() == TestType(0));
  }
  // A dead kept column (W and A zero there): still an isometry, and optimal.
  W.col(4).setZero();
  Mat<TestType> A = rng.normal<TestType>(16, 10);
  A.col(4).setZero();
  rcpu::ProcrustesProduct<TestType> p(A, W, {PM::automatic, true});
  REQUIRE(p.info() == rcpu::Info::success);
  CHECK(p.rotated().col(4).norm() == TestType(0));
  rcpu::Procrustes<TestType> ref;
  (void)full_route<TestType>(A, W, ref);
  CHECK(std::abs(double(p.trace()) - double(ref.trace())) <= tol<TestType>(1e-10, 1e-4) * double(ref.trace()));
  // Shapes and values.
  CHECK_THROWS_AS(rcpu::ProcrustesProduct<TestType>(A, Mat<TestType>(W.leftCols(9))), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::ProcrustesProduct<TestType>(Mat<TestType>(0, 0), Mat<TestType>(0, 0)), rcpu::invalid_argument);
  A(2, 3) = std::numeric_limits<TestType>::quiet_NaN();
  CHECK_THROWS_AS(rcpu::ProcrustesProduct<TestType>(A, W), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::ProcrustesProduct<TestType>().rotated(), rcpu::invalid_argument);
}

TEMPLATE_TEST_CASE("the SYRK path reads every block layout in place and agrees", "[fast_paths][statistics]", float,
                   double) {
  Rng rng(98);
  using Col = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic>;
  using Row = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Index d = 37, n = 700;
  Col X = rng.normal<TestType>(n, d);
  X.col(5).array() += TestType(40);  // |mean| >> std
  const Row Xr = X;
  rcpu::Statistics<TestType> a(d), b(d), c(d), e(d);
  for (Eigen::Index r = 0; r < n; r += 100) {
    a.update(X.middleRows(r, 100));   // column-major block with an outer stride
    b.update(Xr.middleRows(r, 100));  // row-major block
  }
  // A strided Map (inner stride 2): not BLAS-compatible, evaluated first.
  Eigen::Matrix<TestType, Eigen::Dynamic, 1> buf(2 * n * d);
  for (Eigen::Index j = 0; j < d; ++j)
    for (Eigen::Index i = 0; i < n; ++i) buf(2 * (j * n + i)) = X(i, j);
  c.update(Eigen::Map<const Col, 0, Eigen::Stride<Eigen::Dynamic, 2>>(buf.data(), n, d,
                                                                      Eigen::Stride<Eigen::Dynamic, 2>(2 * n, 2)));
  e.update(X.cwiseProduct(Col::Ones(n, d)));  // an expression
  const Eigen::MatrixXd G = (X.template cast<double>().transpose() * X.template cast<double>());
  for (const auto* s : {&a, &b, &c, &e}) {
    CHECK(rel_diff(s->gram(), G) <= 1e-13);
    CHECK(rel_diff(s->sq_sum(), G.diagonal()) <= 1e-13);
    CHECK(rel_diff(s->variance(), a.variance()) <= 1e-13);
    CHECK(rel_diff(s->sum(), a.sum()) <= 1e-13);
    CHECK(rel_diff(s->abs_sum(), a.abs_sum()) <= 1e-13);
  }
}

TEST_CASE("GramPrecision::input_blocks: float partial Grams summed in double", "[fast_paths][statistics]") {
  Rng rng(99);
  const Eigen::Index d = 48, n = 10000;  // crosses the 4096-token flush twice, then a partial block
  Eigen::MatrixXf X = rng.normal<float>(n, d);
  X.col(2).array() += 30.0f;
  rcpu::Statistics<float> exact(d), fast(d, rcpu::GramMode::full, rcpu::GramPrecision::input_blocks);
  CHECK(fast.gram_precision() == rcpu::GramPrecision::input_blocks);
  for (Eigen::Index r = 0; r < n; r += 512) {
    const Eigen::Index len = std::min<Eigen::Index>(512, n - r);
    exact.update(X.middleRows(r, len));
    fast.update(X.middleRows(r, len));
  }
  // Every per-channel statistic is still exact; the Gram carries float sums over <= 4096 tokens.
  CHECK(rel_diff(fast.sum(), exact.sum()) == 0.0);
  CHECK(rel_diff(fast.sq_sum(), exact.sq_sum()) == 0.0);
  CHECK(rel_diff(fast.variance(), exact.variance()) == 0.0);
  const double err = rel_diff(fast.gram(), exact.gram());
  CHECK(err > 0.0);
  CHECK(err <= 1e-5);
  // Entry-wise against sum |x_i x_j|, the scale of the rounding.
  const Eigen::MatrixXd A = X.cast<double>().cwiseAbs();
  const Eigen::MatrixXd scale = A.transpose() * A;
  CHECK(((fast.gram() - exact.gram()).cwiseAbs().array() / scale.array()).maxCoeff() <= 1e-5);
  // merge() takes the other side's pending partial Gram without changing it.
  rcpu::Statistics<float> part1(d, rcpu::GramMode::full, rcpu::GramPrecision::input_blocks),
      part2(d, rcpu::GramMode::full, rcpu::GramPrecision::input_blocks);
  part1.update(X.topRows(3000));
  part2.update(X.bottomRows(n - 3000));
  part1.merge(part2);
  CHECK(rel_diff(part1.gram(), exact.gram()) <= 1e-5);
  CHECK(rel_diff(part2.gram(), (X.bottomRows(n - 3000).cast<double>().transpose() * X.bottomRows(n - 3000).cast<double>())) <= 1e-5);
  // reset() forgets the pending block too.
  fast.reset();
  fast.update(X.topRows(10));
  CHECK(rel_diff(fast.gram(), (X.topRows(10).cast<double>().transpose() * X.topRows(10).cast<double>())) <= 1e-6);
  // Double input ignores the option (nothing narrower to sum in).
  rcpu::Statistics<double> dd(d, rcpu::GramMode::full, rcpu::GramPrecision::input_blocks);
  dd.update(X.cast<double>());
  CHECK(rel_diff(dd.gram(), exact.gram()) <= 1e-13);
}

TEST_CASE("the ridges' Cholesky path equals the normal equations", "[fast_paths][compensation]") {
  // proximal_ridge pulls toward W_K, rotation_ridge toward Q W_K; both solve (A + lambda P)(G_KK + lambda I)^-1.
  for (const auto method : {rcpu::Compensation::proximal_ridge, rcpu::Compensation::rotation_ridge}) {
    INFO(rcpu::to_string(method));
    Rng rng(100);
    const Eigen::Index d_out = 9, d_in = 300, n = 800;  // d_in > 256: two panels of kept columns
    const Eigen::MatrixXd X = rng.normal(n, d_in);
    const Eigen::MatrixXd W = rng.normal(d_out, d_in);
    rcpu::Statistics<double> st(d_in);
    st.update(X);
    std::vector<rcpu::Index> kept;
    for (rcpu::Index j = d_in - 1; j >= 0; j -= 1)
      if (j % 7 != 3) kept.push_back(j);  // unsorted, gaps
    rcpu::CompensationOptions opt;
    opt.lambda = 3.0;
    const auto r = rcpu::compensate(W, st, kept, method, opt);
    const Eigen::MatrixXd G = st.gram(), WK = W(Eigen::all, kept);
    const Eigen::MatrixXd A = W * G(Eigen::all, kept);
    Eigen::MatrixXd prior = WK;
    if (method == rcpu::Compensation::rotation_ridge) {
      // Q = U V^T of M = W G[:,K] W_K^T by an independent SVD (M has full rank: Q is unique).
      Eigen::JacobiSVD<Eigen::MatrixXd> svd(A * WK.transpose(), Eigen::ComputeFullU | Eigen::ComputeFullV);
      const Eigen::MatrixXd Q = svd.matrixU() * svd.matrixV().transpose();
      CHECK(rel_diff(r.rotation, Q) <= 1e-10);
      prior = Q * WK;
    }
    Eigen::MatrixXd H = G(kept, kept);
    H.diagonal().array() += opt.lambda;
    const Eigen::MatrixXd expect = H.ldlt().solve((A + opt.lambda * prior).transpose()).transpose();
    CHECK(rel_diff(r.weight, expect) <= 1e-10);
    CHECK(r.report.info == rcpu::Info::success);
  }
}
