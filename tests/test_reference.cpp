// rcpu against an outside reference: tests/reference/make_reference.py computes every score, the
// kept set, scipy.linalg.orthogonal_procrustes and every compensation with numpy/scipy from raw
// activations; this test recomputes them with rcpu from streamed statistics.
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <rcpu/rcpu.hpp>

#include "support.hpp"

using rcpu_test::rel_diff;
using rcpu_test::tol;

namespace {

std::map<std::string, Eigen::MatrixXd> load_reference() {
  const std::string path = std::string(RCPU_SOURCE_DIR) + "/tests/reference/reference.txt";
  std::ifstream in(path);
  REQUIRE(in.good());
  std::map<std::string, Eigen::MatrixXd> m;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream head(line);
    std::string kind, name;
    Eigen::Index rows = 0, cols = 0;
    head >> kind >> name >> rows >> cols;
    REQUIRE(kind == "matrix");
    Eigen::MatrixXd a(rows, cols);
    for (Eigen::Index i = 0; i < rows; ++i)
      for (Eigen::Index j = 0; j < cols; ++j) REQUIRE(in >> a(i, j));
    m[name] = a;
  }
  return m;
}

std::vector<rcpu::Index> as_indices(const Eigen::MatrixXd& v) {
  std::vector<rcpu::Index> out;
  for (Eigen::Index i = 0; i < v.rows(); ++i) out.push_back(rcpu::Index(v(i, 0)));
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("rcpu matches numpy/scipy on the reference problem", "[reference]", float, double) {
  auto ref = load_reference();
  using Mat = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic>;
  const Mat W = ref["W"].cast<TestType>();
  const Eigen::Matrix<TestType, Eigen::Dynamic, 1> b = ref["b"].col(0).cast<TestType>();
  const Mat X = ref["X"].cast<TestType>();
  const double ratio = ref["params"](0, 0), lambda_ls = ref["params"](0, 1), lambda_prox = ref["params"](0, 2);
  const rcpu::Index head = rcpu::Index(ref["params"](0, 3));
  rcpu::Statistics<TestType> st(X.cols());
  for (Eigen::Index r = 0; r < X.rows(); r += 32) st.update(X.middleRows(r, 32));

  // Float inputs are rounded once, so they carry ~1e-7 relative noise into everything.
  const double t = tol<TestType>(1e-11, 1e-5);
  const double t_weights = tol<TestType>(1e-9, 1e-4);

  SECTION("scores") {
    using rcpu::Score;
    CHECK(rel_diff(rcpu::column_scores(W, st, Score::magnitude), ref["score_magnitude"]) <= t);
    CHECK(rel_diff(rcpu::column_scores(W, st, Score::wanda_sp), ref["score_wanda_sp"]) <= t);
    CHECK(rel_diff(rcpu::column_scores(W, st, Score::wanda_sp_rcpu), ref["score_wanda_sp_rcpu"]) <= t);
    CHECK(rel_diff(rcpu::column_scores(W, st, Score::flap), ref["score_flap"]) <= t);
    CHECK(rel_diff(rcpu::column_scores(W, st, Score::flap, rcpu::Module::attention), ref["score_flap_attention"]) <= t);
    CHECK(rel_diff(rcpu::column_scores(W, st, Score::rcpu), ref["score_rcpu"]) <= t);
    CHECK(rel_diff(rcpu::column_scores(W, st, Score::rcpu_paper), ref["score_rcpu_paper"]) <= t);
    CHECK(rel_diff(rcpu::unit_scores(W, st, Score::rcpu, head), ref["heads_rcpu"]) <= t);
    CHECK(rel_diff(rcpu::unit_scores(W, st, Score::flap, head, rcpu::GroupReduce::automatic, rcpu::Module::attention),
                   ref["heads_flap"]) <= tol<TestType>(1e-11, 1e-4));
    CHECK(rcpu::select_kept(rcpu::column_scores(W, st, Score::rcpu), ratio) == as_indices(ref["kept"]));
    CHECK(rcpu::select_kept(rcpu::unit_scores(W, st, Score::rcpu, head), ratio) == as_indices(ref["kept_heads_rcpu"]));
  }

  SECTION("procrustes against scipy.linalg.orthogonal_procrustes") {
    const auto kept = as_indices(ref["kept"]);
    const auto r = rcpu::compensate(W, b, st, kept, rcpu::Compensation::rotation);
    CHECK(rel_diff(r.rotation, ref["procrustes_Q"]) <= t_weights);
    CHECK(std::abs(r.singular_values.sum() - ref["procrustes_trace"](0, 0)) <= t * ref["procrustes_trace"](0, 0));
    CHECK(rel_diff(r.singular_values, ref["procrustes_singular_values"]) <= t);
  }

  SECTION("every compensation, with its report") {
    const auto kept = as_indices(ref["kept"]);
    for (auto method : {rcpu::Compensation::none, rcpu::Compensation::bias, rcpu::Compensation::rotation,
                        rcpu::Compensation::rotation_scale, rcpu::Compensation::rotation_bias,
                        rcpu::Compensation::least_squares, rcpu::Compensation::proximal_ridge,
                        rcpu::Compensation::rotation_ridge}) {
      const std::string name = rcpu::to_string(method);
      INFO("method " << name);
      rcpu::CompensationOptions opt;
      const bool prox = method == rcpu::Compensation::proximal_ridge || method == rcpu::Compensation::rotation_ridge;
      opt.lambda = prox ? lambda_prox : lambda_ls;
      opt.geometry = true;
      const auto r = rcpu::compensate(W, b, st, kept, method, opt);
      CHECK(rel_diff(r.weight, ref["weight_" + name]) <= t_weights);
      CHECK(rel_diff(r.bias, ref["bias_" + name]) <= t_weights);
      const Eigen::MatrixXd& rep = ref["report_" + name];
      const double tr = tol<TestType>(1e-9, 1e-4);
      CHECK(std::abs(r.report.after.relative_error - rep(0, 0)) <= tr);
      CHECK(std::abs(r.report.after.norm_ratio - rep(0, 1)) <= tr);
      CHECK(std::abs(r.report.after.cosine - rep(0, 2)) <= tr);
      CHECK(std::abs(r.report.after.inner_product_distortion - rep(0, 3)) <= tr);
      CHECK(std::abs(r.report.before.relative_error - ref["report_before"](0, 0)) <= tr);
      if (method == rcpu::Compensation::rotation_scale) CHECK(std::abs(r.scale - ref["scale"](0, 0)) <= t);
    }
  }
}
