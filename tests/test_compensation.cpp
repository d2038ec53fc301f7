// Oracles for the compensations computed from statistics: each agrees with the raw-activation
// reference path, and each satisfies the property that defines it.
#include <rcpu/compensation.hpp>
#include <rcpu/reference.hpp>

#include <sstream>

#include <Eigen/LU>
#include <Eigen/SVD>

#include "support.hpp"

// Every member of every public instantiation compiles.
template struct rcpu::Compensated<float>;
template struct rcpu::Compensated<double>;

using rcpu_test::Mat;
using rcpu_test::rel_diff;
using rcpu_test::Rng;
using rcpu_test::tol;

namespace {

const rcpu::Compensation all_methods[] = {
    rcpu::Compensation::none,          rcpu::Compensation::bias,          rcpu::Compensation::rotation,
    rcpu::Compensation::rotation_scale, rcpu::Compensation::rotation_bias, rcpu::Compensation::least_squares,
    rcpu::Compensation::proximal_ridge, rcpu::Compensation::rotation_ridge};

// A layer whose activations have structure: low rank, offsets, one loud channel.
struct Layer {
  Eigen::MatrixXd W, X;
  Eigen::VectorXd b;
};

Layer make_layer(std::uint32_t seed, Eigen::Index d_out, Eigen::Index d_in, Eigen::Index n) {
  Rng rng(seed);
  Layer L;
  L.W = rng.normal(d_out, d_in) / std::sqrt(double(d_in));
  L.X = rng.normal(n, 5) * rng.normal(5, d_in) + 0.3 * rng.normal(n, d_in);
  L.X.rowwise() += rng.normal(1, d_in).row(0);
  L.X.col(1) *= 8.0;
  L.b = rng.normal(d_out, 1);
  return L;
}

template <typename Scalar>
using Vec = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;

void check_comparison(const rcpu::OutputComparison& a, const rcpu::OutputComparison& ref, double t, bool geometry) {
  CHECK(std::abs(a.relative_error - ref.relative_error) <= t);
  CHECK(std::abs(a.norm_ratio - ref.norm_ratio) <= t);
  CHECK(std::abs(a.cosine - ref.cosine) <= t);
  if (geometry) CHECK(std::abs(a.inner_product_distortion - ref.inner_product_distortion) <= t);
}

}  // namespace

TEMPLATE_TEST_CASE("the Gram path equals the raw-X path for every compensation", "[compensation]", float, double) {
  const Layer L = make_layer(31, 10, 16, 400);
  const std::vector<rcpu::Index> kept = {0, 2, 3, 5, 8, 9, 11, 12, 15};
  const Mat<TestType> W = L.W.cast<TestType>();
  const Vec<TestType> b = L.b.cast<TestType>();
  const Eigen::MatrixXd Wd = W.template cast<double>();  // what the library sees
  const Eigen::VectorXd bd = b.template cast<double>();
  rcpu::Statistics<double> st(16);
  for (Eigen::Index r = 0; r < 400; r += 64) st.update(L.X.middleRows(r, std::min<Eigen::Index>(64, 400 - r)));
  rcpu::CompensationOptions opt;
  opt.lambda = 0.5;
  opt.geometry = true;
  const double tw = tol<TestType>(1e-9, 2e-6);  // float rounds the output weights
  for (auto method : all_methods) {
    for (bool with_bias : {true, false}) {
      INFO("method " << rcpu::to_string(method) << (with_bias ? " with bias" : " without bias"));
      const auto got = with_bias ? rcpu::compensate(W, b, st, kept, method, opt) : rcpu::compensate(W, st, kept, method, opt);
      const auto ref = rcpu::reference::compensate(Wd, with_bias ? bd : Eigen::VectorXd(), L.X, kept, method, opt);
      REQUIRE(got.report.info == rcpu::Info::success);
      CHECK(rel_diff(got.weight, ref.weight) <= tw);
      REQUIRE(got.bias.size() == ref.bias.size());
      if (ref.bias.size()) CHECK(rel_diff(got.bias, ref.bias) <= tw);
      CHECK(std::abs(got.scale - ref.scale) <= 1e-10);
      check_comparison(got.report.before, ref.report.before, 1e-8, true);
      check_comparison(got.report.after, ref.report.after, 1e-8, true);
      CHECK(got.report.kept_columns == 9);
      CHECK(got.report.tokens == 400);
    }
  }
}

TEMPLATE_TEST_CASE("FLAP's bias and rotation + bias make the mean output exact", "[compensation]", float, double) {
  const Layer L = make_layer(32, 8, 12, 300);
  rcpu::Statistics<TestType> st(12);
  st.update(L.X.cast<TestType>());
  const Eigen::MatrixXd X = L.X.cast<TestType>().template cast<double>();
  const std::vector<rcpu::Index> kept = {1, 2, 4, 7, 10};
  const Eigen::VectorXd mean_dense = L.W * X.colwise().mean().transpose() + L.b;
  for (auto method : {rcpu::Compensation::bias, rcpu::Compensation::rotation_bias}) {
    const auto r = rcpu::compensate(L.W, L.b, st, kept, method);
    const Eigen::VectorXd mean_pruned = r.weight * X(Eigen::all, kept).colwise().mean().transpose() + r.bias;
    CHECK(rel_diff(mean_pruned, mean_dense) <= 1e-12);
  }
  // Without a bias in the layer, FLAP creates one.
  const auto r = rcpu::compensate(L.W, st, kept, rcpu::Compensation::bias);
  CHECK(r.has_bias());
  CHECK(rel_diff(r.weight, L.W(Eigen::all, kept)) == 0.0);
}

TEMPLATE_TEST_CASE("least squares over all columns with lambda = 0 reproduces W with zero error", "[compensation]",
                   float, double) {
  const Layer L = make_layer(33, 6, 9, 200);
  const Mat<TestType> W = L.W.cast<TestType>();
  rcpu::Statistics<double> st(9);
  st.update(L.X);
  std::vector<rcpu::Index> all(9);
  for (int j = 0; j < 9; ++j) all[j] = j;
  rcpu::CompensationOptions opt;
  opt.lambda = 0.0;
  for (auto m : {rcpu::Compensation::least_squares, rcpu::Compensation::proximal_ridge,
                 rcpu::Compensation::rotation_ridge}) {
    const auto r = rcpu::compensate(W, st, all, m, opt);
    CHECK(rel_diff(r.weight, W) <= tol<TestType>(1e-11, 1e-6));
    CHECK(r.report.after.relative_error <= tol<TestType>(1e-6, 1e-3));  // a difference of energies: sqrt(eps)
    CHECK(r.report.before.relative_error <= 1e-6);
  }
}

TEMPLATE_TEST_CASE("rho = 0: the rotation is the identity and W comes back", "[compensation]", float, double) {
  const Layer L = make_layer(34, 6, 10, 300);  // d_in >= d_out and N >= d_out: Y has full row rank
  const Mat<TestType> W = L.W.cast<TestType>();
  rcpu::Statistics<double> st(10);
  st.update(L.X);
  std::vector<rcpu::Index> all(10);
  for (int j = 0; j < 10; ++j) all[j] = j;
  // rotation_ridge too: its prior Q W_K is then W itself, and (W G + lambda W)(G + lambda I)^-1 = W.
  for (auto m : {rcpu::Compensation::rotation, rcpu::Compensation::rotation_scale, rcpu::Compensation::rotation_bias,
                 rcpu::Compensation::rotation_ridge}) {
    const auto r = rcpu::compensate(W, st, all, m);
    CHECK(rel_diff(r.rotation, Eigen::MatrixXd::Identity(6, 6)) <= tol<TestType>(1e-12, 1e-6));
    CHECK(rel_diff(r.weight, W) <= tol<TestType>(1e-12, 1e-6));
    CHECK(std::abs(r.scale - 1.0) <= 1e-12);
  }
}

TEMPLATE_TEST_CASE("o_proj-like rank-deficient M: two SVD routines give the same Q W_K", "[compensation]", float,
                   double) {
  const Layer L = make_layer(35, 16, 16, 500);  // d_in = d_out, heads of 4 columns
  const Mat<TestType> W = L.W.cast<TestType>();
  rcpu::Statistics<double> st(16);
  st.update(L.X);
  const std::vector<rcpu::Index> kept = {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15};  // one head of four removed
  rcpu::CompensationOptions a, b;
  a.procrustes.method = rcpu::ProcrustesMethod::bdc_svd;
  b.procrustes.method = rcpu::ProcrustesMethod::jacobi_svd;
  const auto ra = rcpu::compensate(W, st, kept, rcpu::Compensation::rotation, a);
  const auto rb = rcpu::compensate(W, st, kept, rcpu::Compensation::rotation, b);
  CHECK(ra.report.rank_m == 12);
  CHECK(rel_diff(ra.weight, rb.weight) <= tol<TestType>(1e-10, 1e-6));
  CHECK(std::abs(ra.report.after.relative_error - rb.report.after.relative_error) <= 1e-10);
}

TEMPLATE_TEST_CASE("compensations rank as the maths says on the calibration set", "[compensation]", float, double) {
  const Layer L = make_layer(36, 12, 20, 600);
  const Mat<TestType> W = L.W.cast<TestType>();
  rcpu::Statistics<TestType> st(20);
  st.update(L.X.cast<TestType>());
  const std::vector<rcpu::Index> kept = {0, 1, 3, 4, 6, 7, 9, 11, 13, 14, 16, 18, 19};
  rcpu::CompensationOptions opt;
  opt.lambda = 1e-8;
  auto err = [&](rcpu::Compensation m) { return rcpu::compensate(W, st, kept, m, opt).report.after.relative_error; };
  const double none = err(rcpu::Compensation::none), rot = err(rcpu::Compensation::rotation),
               rot_s = err(rcpu::Compensation::rotation_scale), ls = err(rcpu::Compensation::least_squares);
  CHECK(rot <= none);     // Q = I is feasible for the rotation
  CHECK(rot_s <= rot);    // s = 1 is feasible for the scale
  CHECK(ls <= rot_s);     // least squares is the unconstrained optimum
  // The rotation preserves the pruned output's energy exactly; the scale changes it by s.
  const auto r = rcpu::compensate(W, st, kept, rcpu::Compensation::rotation, opt);
  CHECK(std::abs(r.report.after.norm_ratio - r.report.before.norm_ratio) <= 1e-10);
  const auto rs = rcpu::compensate(W, st, kept, rcpu::Compensation::rotation_scale, opt);
  CHECK(std::abs(rs.report.after.norm_ratio - rs.scale * r.report.before.norm_ratio) <= 1e-10);
}

TEST_CASE("proximal ridge is the minimiser of its objective", "[compensation]") {
  const Layer L = make_layer(37, 7, 11, 250);
  rcpu::Statistics<double> st(11);
  st.update(L.X);
  const std::vector<rcpu::Index> kept = {0, 2, 3, 5, 6, 9};
  rcpu::CompensationOptions opt;
  opt.lambda = 40.0;
  const auto r = rcpu::compensate(L.W, st, kept, rcpu::Compensation::proximal_ridge, opt);
  const Eigen::MatrixXd WK = L.W(Eigen::all, kept), XK = L.X(Eigen::all, kept).transpose();
  const Eigen::MatrixXd Y = L.W * L.X.transpose();
  auto objective = [&](const Eigen::MatrixXd& Wp) {
    return (Y - Wp * XK).squaredNorm() + opt.lambda * (Wp - WK).squaredNorm();
  };
  const double best = objective(r.weight);
  Rng rng(38);
  for (int t = 0; t < 30; ++t) CHECK(objective(r.weight + 1e-3 * rng.normal(7, 6)) > best);
  CHECK(objective(WK) > best);
}

TEMPLATE_TEST_CASE("a singular G_KK with lambda = 0 falls back to LDLT and says so", "[compensation]", float, double) {
  Layer L = make_layer(39, 5, 8, 100);
  L.X.col(3).setZero();  // a dead channel: G_KK singular
  rcpu::Statistics<TestType> st(8);
  st.update(L.X.cast<TestType>());
  rcpu::CompensationOptions opt;
  opt.lambda = 0.0;
  const auto r = rcpu::compensate(L.W, st, {0, 1, 2, 3, 5}, rcpu::Compensation::least_squares, opt);
  CHECK(r.report.info == rcpu::Info::numerical_issue);
  CHECK(r.weight.allFinite());
}

TEST_CASE("float accumulators feed the double maths", "[compensation]") {
  const Layer L = make_layer(40, 8, 12, 300);
  rcpu::Statistics<float, float> sf(12);
  rcpu::Statistics<double> sd(12);
  sf.update(L.X.cast<float>());
  sd.update(L.X.cast<float>().cast<double>());
  const std::vector<rcpu::Index> kept = {0, 1, 2, 5, 6, 7, 9, 11};
  const auto a = rcpu::compensate(L.W, sf, kept, rcpu::Compensation::rotation);
  const auto b = rcpu::compensate(L.W, sd, kept, rcpu::Compensation::rotation);
  CHECK(rel_diff(a.weight, b.weight) <= 1e-4);
}

TEMPLATE_TEST_CASE("compensate rejects bad input", "[compensation][errors]", float, double) {
  const Layer L = make_layer(41, 6, 8, 50);
  Mat<TestType> W = L.W.cast<TestType>();
  rcpu::Statistics<double> st(8), diag(8, rcpu::GramMode::diagonal), empty(8), other(7);
  st.update(L.X);
  diag.update(L.X);
  const std::vector<rcpu::Index> kept = {0, 2, 4};
  using C = rcpu::Compensation;
  CHECK_THROWS_AS(rcpu::compensate(W, diag, kept, C::rotation), rcpu::invalid_argument);
  CHECK_NOTHROW(rcpu::compensate(W, diag, kept, C::bias));
  CHECK_THROWS_AS(rcpu::compensate(W, empty, kept, C::rotation), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::compensate(W, other, kept, C::rotation), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::compensate(W, st, {}, C::rotation), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::compensate(W, st, {0, 8}, C::rotation), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::compensate(W, st, {1, 1}, C::rotation), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::compensate(W, Vec<TestType>::Zero(5), st, kept, C::bias), rcpu::invalid_argument);
  rcpu::CompensationOptions bad;
  bad.lambda = -1;
  CHECK_THROWS_AS(rcpu::compensate(W, st, kept, C::proximal_ridge, bad), rcpu::invalid_argument);
  bad.lambda = 1;
  bad.scale_epsilon = std::nan("");
  CHECK_THROWS_AS(rcpu::compensate(W, st, kept, C::rotation_scale, bad), rcpu::invalid_argument);
  W(0, 0) = std::numeric_limits<TestType>::quiet_NaN();
  CHECK_THROWS_AS(rcpu::compensate(W, st, kept, C::rotation), rcpu::invalid_argument);
  for (auto m : all_methods) CHECK(rcpu::compensation_from_string(rcpu::to_string(m)) == m);
  CHECK_THROWS_AS(rcpu::compensation_from_string("rot"), rcpu::invalid_argument);
}

TEST_CASE("fewer calibration tokens than kept columns is reported as underdetermined", "[compensation]") {
  // N < k: G_KK is singular, and two SVD routes give weights that differ although both fit the
  // calibration tokens equally well. The report must say so; with N >= k it must not.
  const Layer few = make_layer(42, 10, 24, 12);  // 12 tokens, 18 kept columns
  rcpu::Statistics<double> st(24);
  st.update(few.X);
  std::vector<rcpu::Index> kept;
  for (rcpu::Index j = 0; j < 18; ++j) kept.push_back(j);
  rcpu::CompensationOptions gesdd, eig;
  gesdd.procrustes.method = rcpu::ProcrustesMethod::lapack_gesdd;
  eig.procrustes.method = rcpu::ProcrustesMethod::polar_eig;
  for (auto m : {rcpu::Compensation::rotation, rcpu::Compensation::least_squares, rcpu::Compensation::proximal_ridge,
                 rcpu::Compensation::rotation_ridge}) {
    INFO(rcpu::to_string(m));
    CHECK(rcpu::compensate(few.W, st, kept, m).report.underdetermined);
  }
  for (auto m : {rcpu::Compensation::none, rcpu::Compensation::bias})
    CHECK_FALSE(rcpu::compensate(few.W, st, kept, m).report.underdetermined);
  const auto a = rcpu::compensate(few.W, st, kept, rcpu::Compensation::rotation, gesdd);
  const auto b = rcpu::compensate(few.W, st, kept, rcpu::Compensation::rotation, eig);
  CHECK(std::abs(a.report.after.relative_error - b.report.after.relative_error) <= 1e-10);
  std::ostringstream os;
  os << a.report;
  CHECK(os.str().find("underdetermined") != std::string::npos);

  const Layer enough = make_layer(43, 10, 24, 200);
  rcpu::Statistics<double> st2(24);
  st2.update(enough.X);
  for (auto m : all_methods) CHECK_FALSE(rcpu::compensate(enough.W, st2, kept, m).report.underdetermined);
}

// ---- rotation_ridge: the ridge pulled toward the rotated weight Q W_K ------------------------------

namespace {

// Q = U V^T of M = W G[:,K] W_K^T from Eigen's JacobiSVD, independently of rcpu's Procrustes routes;
// with `proper`, the Kabsch sign fix (det Q = +1).
Eigen::MatrixXd rotation_ridge_oracle_q(const Eigen::MatrixXd& W, const Eigen::MatrixXd& G,
                                        const std::vector<rcpu::Index>& kept, bool proper) {
  const Eigen::MatrixXd M = W * G(Eigen::all, kept) * W(Eigen::all, kept).transpose();
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(M, Eigen::ComputeFullU | Eigen::ComputeFullV);
  Eigen::MatrixXd U = svd.matrixU();
  if (proper && (U * svd.matrixV().transpose()).determinant() < 0) U.col(U.cols() - 1) *= -1.0;
  return U * svd.matrixV().transpose();
}

}  // namespace

TEMPLATE_TEST_CASE("rotation_ridge minimises ||W X - W' X_K||^2 + lambda ||W' - Q W_K||^2", "[compensation]", float,
                   double) {
  // k = 8 > d_out = 7: M has full rank and Q is unique. The layer is drawn so that det M < 0: Q is
  // then a reflection, far from I (so that W_K as the prior would fail the test), and the det fix
  // changes it.
  const std::vector<rcpu::Index> kept = {0, 2, 3, 5, 6, 8, 9, 10};
  Layer L;
  Mat<TestType> W;
  Eigen::MatrixXd Wd, Xd, G;
  bool found = false;
  for (std::uint32_t seed = 50; seed < 90 && !found; ++seed) {
    L = make_layer(seed, 7, 11, 250);
    W = L.W.cast<TestType>();
    Wd = W.template cast<double>();  // what the library sees
    Xd = L.X.cast<TestType>().template cast<double>();
    G = Xd.transpose() * Xd;
    found = (Wd * G(Eigen::all, kept) * Wd(Eigen::all, kept).transpose()).determinant() < 0;
  }
  REQUIRE(found);
  rcpu::Statistics<TestType> st(11);
  st.update(L.X.cast<TestType>());
  const Eigen::MatrixXd WK = Wd(Eigen::all, kept), XK = Xd(Eigen::all, kept).transpose();
  const Eigen::MatrixXd Y = Wd * Xd.transpose(), A = Wd * G(Eigen::all, kept), GKK = G(kept, kept);
  for (bool proper : {false, true}) {
    INFO((proper ? "proper rotation" : "rotation as the authors compute it"));
    rcpu::CompensationOptions opt;
    opt.lambda = 40.0;
    opt.procrustes.proper_rotation = proper;
    const auto r = rcpu::compensate(W, st, kept, rcpu::Compensation::rotation_ridge, opt);
    REQUIRE(r.report.info == rcpu::Info::success);
    const Eigen::MatrixXd Q = rotation_ridge_oracle_q(Wd, G, kept, proper);
    CHECK(r.report.reflection_fixed == proper);
    CHECK(rel_diff(r.rotation, Q) <= tol<TestType>(1e-9, 1e-5));
    const Eigen::MatrixXd Wp = r.weight.template cast<double>(), QWK = Q * WK;
    // The gradient (W' G_KK - W G[:,K]) + lambda (W' - Q W_K) vanishes; that of the proximal ridge
    // (prior W_K) does not.
    const double scale = A.norm() + opt.lambda * WK.norm();
    const Eigen::MatrixXd grad = (Wp * GKK - A) + opt.lambda * (Wp - QWK);
    CHECK(grad.norm() / scale <= tol<TestType>(1e-10, 1e-5));
    CHECK(((Wp * GKK - A) + opt.lambda * (Wp - WK)).norm() / scale >= 1e-3);
    // Random perturbations never lower the objective, and neither end of the path beats it.
    auto objective = [&](const Eigen::MatrixXd& V) {
      return (Y - V * XK).squaredNorm() + opt.lambda * (V - QWK).squaredNorm();
    };
    const double best = objective(Wp);
    Rng rng(51);
    const double eps = 1e-3 * Wp.norm();
    for (int t = 0; t < 30; ++t) CHECK(objective(Wp + eps * rng.normal(7, 8).normalized()) > best);
    CHECK(objective(QWK) > best);
    CHECK(objective(rcpu::compensate(W, st, kept, rcpu::Compensation::least_squares, opt).weight.template cast<double>()) >
          best);
  }
}

TEMPLATE_TEST_CASE("rotation_ridge tends to the rotation as lambda grows and to least squares as it vanishes",
                   "[compensation]", float, double) {
  const Layer L = make_layer(44, 8, 14, 300);
  const Mat<TestType> W = L.W.cast<TestType>();
  rcpu::Statistics<TestType> st(14);
  st.update(L.X.cast<TestType>());
  const std::vector<rcpu::Index> kept = {0, 1, 3, 4, 5, 7, 8, 10, 11, 13};  // k = 10 > d_out = 8
  using C = rcpu::Compensation;
  for (bool proper : {false, true}) {
    INFO((proper ? "proper rotation" : "rotation as the authors compute it"));
    rcpu::CompensationOptions opt;
    opt.procrustes.proper_rotation = proper;
    const auto rot = rcpu::compensate(W, st, kept, C::rotation, opt);
    // lambda -> infinity: W' -> Q W_K, with the rotation's Q (same options).
    opt.lambda = 1e12;
    const auto huge = rcpu::compensate(W, st, kept, C::rotation_ridge, opt);
    CHECK(rel_diff(huge.weight, rot.weight) <= tol<TestType>(1e-7, 1e-5));
    CHECK(rel_diff(huge.rotation, rot.rotation) <= tol<TestType>(1e-12, 1e-6));
    CHECK(rel_diff(huge.singular_values, rot.singular_values) <= 1e-12);
    CHECK(huge.report.reflection_fixed == rot.report.reflection_fixed);
    // The report reads tr(W' G_KK W'^T) as <W', B> - lambda ||W'||^2, a difference of terms ~lambda: at
    // lambda = 1e12 it keeps about 8 digits of the energy.
    CHECK(std::abs(huge.report.after.relative_error - rot.report.after.relative_error) <= 1e-6);
    // lambda -> 0: least squares.
    opt.lambda = 0.0;
    const auto ls = rcpu::compensate(W, st, kept, C::least_squares, opt);
    CHECK(rel_diff(rcpu::compensate(W, st, kept, C::rotation_ridge, opt).weight, ls.weight) <= 1e-14);
    opt.lambda = 1e-9;
    const auto tiny = rcpu::compensate(W, st, kept, C::rotation_ridge, opt);
    CHECK(rel_diff(tiny.weight, ls.weight) <= tol<TestType>(1e-8, 1e-5));
    // In between, the calibration error grows with lambda from least squares' to the rotation's
    // (the data-fit term of a ridge path is nondecreasing in lambda; W' = Q W_K is feasible).
    double prev = ls.report.after.relative_error;
    for (double lam : {1.0, 10.0, 100.0, 1e3, 1e4, 1e5}) {
      opt.lambda = lam;
      const double e = rcpu::compensate(W, st, kept, C::rotation_ridge, opt).report.after.relative_error;
      CHECK(e >= prev - 1e-9);
      CHECK(e <= rot.report.after.relative_error + 1e-9);
      prev = e;
    }
  }
}

TEMPLATE_TEST_CASE("rotation_ridge keeps the bias as the proximal ridge does", "[compensation]", float, double) {
  const Layer L = make_layer(45, 6, 10, 200);
  const Mat<TestType> W = L.W.cast<TestType>();
  const Vec<TestType> b = L.b.cast<TestType>();
  rcpu::Statistics<double> st(10);
  st.update(L.X);
  const std::vector<rcpu::Index> kept = {0, 1, 2, 4, 5, 7, 9};
  rcpu::CompensationOptions opt;
  opt.lambda = 3.0;
  const auto with = rcpu::compensate(W, b, st, kept, rcpu::Compensation::rotation_ridge, opt);
  const auto without = rcpu::compensate(W, st, kept, rcpu::Compensation::rotation_ridge, opt);
  const auto prox = rcpu::compensate(W, b, st, kept, rcpu::Compensation::proximal_ridge, opt);
  CHECK(rel_diff(with.bias, b) == 0.0);
  CHECK(rel_diff(prox.bias, b) == 0.0);
  CHECK_FALSE(without.has_bias());
  CHECK(rel_diff(with.weight, without.weight) == 0.0);
}

TEMPLATE_TEST_CASE("rotation_ridge refuses a bad lambda and names it", "[compensation][errors]", float, double) {
  const Layer L = make_layer(46, 6, 8, 50);
  const Mat<TestType> W = L.W.cast<TestType>();
  rcpu::Statistics<double> st(8), diag(8, rcpu::GramMode::diagonal);
  st.update(L.X);
  diag.update(L.X);
  const std::vector<rcpu::Index> kept = {0, 2, 4, 5};
  for (double lam : {-1.0, -1e-300, std::nan(""), std::numeric_limits<double>::infinity()}) {
    INFO("lambda " << lam);
    rcpu::CompensationOptions bad;
    bad.lambda = lam;
    std::string what;
    try {
      rcpu::compensate(W, st, kept, rcpu::Compensation::rotation_ridge, bad);
    } catch (const rcpu::invalid_argument& e) {
      what = e.what();
    }
    CHECK(what.find("lambda") != std::string::npos);
  }
  CHECK_THROWS_AS(rcpu::compensate(W, diag, kept, rcpu::Compensation::rotation_ridge), rcpu::invalid_argument);
  CHECK(rcpu::compensation_from_string("rotation_ridge") == rcpu::Compensation::rotation_ridge);
  std::string what;
  try {
    rcpu::compensation_from_string("rotation-ridge");
  } catch (const rcpu::invalid_argument& e) {
    what = e.what();
  }
  CHECK(what.find("rotation_ridge") != std::string::npos);  // the list of methods names it
}
