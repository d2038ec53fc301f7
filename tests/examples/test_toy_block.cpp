// Oracles for the toy transformer of the demo (examples/toy_transformer): with nothing pruned every
// compensation gives the dense block back; the evaluation's shortcut equals a full forward pass of the
// pruned block (grouped-query attention included); held-out errors are finite and every compensation
// beats "none" when calibration is plentiful, while least squares overfits when it is not; the
// synthetic data has the structure the docs claim; the SVG writer writes what it is given.
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <Eigen/Eigenvalues>

#include "support.hpp"
#include "svg_plot.hpp"
#include "toy_block.hpp"

using rcpu_test::rel_diff;
using rcpu_test::tol;

namespace {

const std::vector<rcpu::Compensation> all_compensations = {
    rcpu::Compensation::none,          rcpu::Compensation::bias,     rcpu::Compensation::least_squares,
    rcpu::Compensation::proximal_ridge, rcpu::Compensation::rotation, rcpu::Compensation::rotation_scale,
    rcpu::Compensation::rotation_bias, rcpu::Compensation::rotation_ridge};

rcpu_toy::BlockConfig small_config(rcpu::Index kv_heads) {
  rcpu_toy::BlockConfig c;
  c.d_model = 32;
  c.n_heads = 4;
  c.n_kv_heads = kv_heads;
  c.d_mlp = 48;
  c.seq_len = 16;
  return c;
}

// A block, its calibration statistics (from one dense pass) and held-out tokens.
template <typename S>
struct Setup {
  using Matrix = typename rcpu_toy::Block<S>::Matrix;
  rcpu_toy::BlockConfig cfg;
  rcpu_toy::Block<S> dense;
  rcpu::Statistics<S> o_stats, down_stats;
  Matrix X_test;

  Setup(const rcpu_toy::BlockConfig& c, std::uint32_t seed, rcpu::Index n_cal, rcpu::Index n_test = 256)
      : cfg(c), dense(rcpu_toy::make_block<S>(c, seed)), o_stats(c.d_model), down_stats(c.d_mlp) {
    const rcpu_toy::HiddenStates hs(c, seed + 1);
    Matrix ctx, dn;
    rcpu_toy::forward(dense, hs.sample<S>(n_cal, seed + 2), c.seq_len, &ctx, &dn);
    o_stats.update(ctx);
    down_stats.update(dn);
    X_test = hs.sample<S>(n_test, seed + 3);
  }
};

}  // namespace

TEMPLATE_TEST_CASE("ratio 0: every compensation gives the dense block back", "[toy]", float, double) {
  for (rcpu::Index kv : {4, 2}) {
    const Setup<TestType> s(small_config(kv), 41, 1024);
    const auto dense_out = rcpu_toy::forward(s.dense, s.X_test, s.cfg.seq_len);
    for (rcpu::Compensation c : all_compensations) {
      INFO("kv heads " << kv << ", " << rcpu::to_string(c));
      rcpu_toy::BlockPruneOptions o;
      o.ratio = 0.0;
      o.compensation = c;
      o.skip_unpruned = false;  // compensate even though nothing was removed
      const auto p = rcpu_toy::prune_block(s.dense, s.o_stats, s.down_stats, o);
      REQUIRE(p.attention_pruned);
      REQUIRE(p.mlp_pruned);
      CHECK(p.kept_heads.size() == 4);
      CHECK(p.kept_channels.size() == 48);
      const auto out = rcpu_toy::forward(p.block, s.X_test, s.cfg.seq_len);
      if (c == rcpu::Compensation::least_squares) {
        // Its ridge to zero (1e-4 pseudo-tokens) moves W along the input's near-null directions (the
        // toy's inputs have low effective rank), which the outputs barely see: check the outputs.
        CHECK(rel_diff(out, dense_out) <= 1e-4);
        CHECK(p.down_report.after.relative_error <= 1e-4);
        CHECK(p.o_report.after.relative_error <= 1e-4);
        continue;
      }
      const double t = tol<TestType>(1e-10, 2e-5);
      CHECK(rel_diff(p.block.wo, s.dense.wo) <= t);
      CHECK(rel_diff(p.block.w_down, s.dense.w_down) <= t);
      CHECK(rel_diff(p.block.wq, s.dense.wq) == 0);
      CHECK(rel_diff(p.block.w_gate, s.dense.w_gate) == 0);
      if (p.block.bo.size()) CHECK(p.block.bo.norm() <= t * s.dense.wo.norm());
      if (p.block.b_down.size()) CHECK(p.block.b_down.norm() <= t * s.dense.w_down.norm());
      CHECK(rel_diff(out, dense_out) <= t);
      CHECK(p.down_report.after.relative_error <= 1e-5);
    }
  }
}

TEMPLATE_TEST_CASE("the evaluation's shortcut equals a forward pass of the pruned block", "[toy]", float, double) {
  // With grouped-query attention a KV head goes only with its whole group; find seeds where it does.
  int kv_dropped = 0;
  for (std::uint32_t seed = 50; seed < 58; ++seed) {
    const Setup<TestType> s(small_config(2), seed, 512, 64);
    typename Setup<TestType>::Matrix ctx;
    rcpu_toy::forward(s.dense, s.X_test, s.cfg.seq_len, &ctx);
    for (double ratio : {0.25, 0.5}) {
      for (rcpu::Compensation c : {rcpu::Compensation::rotation_bias, rcpu::Compensation::proximal_ridge}) {
        rcpu_toy::BlockPruneOptions o;
        o.ratio = ratio;
        o.compensation = c;
        const auto p = rcpu_toy::prune_block(s.dense, s.o_stats, s.down_stats, o);
        INFO("seed " << seed << ", ratio " << ratio);
        REQUIRE(p.kept_heads.size() == std::size_t(4 - (ratio == 0.25 ? 1 : 2)));
        // The GQA rule: exactly the KV heads some kept query head reads.
        std::set<rcpu::Index> used;
        for (rcpu::Index h : p.kept_heads) used.insert(s.dense.head_kv[std::size_t(h)]);
        CHECK(std::vector<rcpu::Index>(used.begin(), used.end()) == p.kept_kv_heads);
        CHECK(p.block.n_kv_heads() == rcpu::Index(used.size()));
        for (std::size_t i = 0; i < p.kept_heads.size(); ++i)
          CHECK(p.kept_kv_heads[std::size_t(p.block.head_kv[i])] == s.dense.head_kv[std::size_t(p.kept_heads[i])]);
        if (used.size() < 2) ++kv_dropped;
        const auto full = rcpu_toy::forward(p.block, s.X_test, s.cfg.seq_len);
        const typename Setup<TestType>::Matrix kept_ctx = ctx(Eigen::all, p.kept_o_columns);
        const auto shortcut = rcpu_toy::finish_forward(p.block, s.X_test, kept_ctx);
        CHECK(rel_diff(full, shortcut) <= tol<TestType>(1e-13, 1e-5));
      }
    }
  }
  CHECK(kv_dropped > 0);
}

TEST_CASE("held-out errors: finite, all compensations beat none with enough tokens, least squares overfits "
          "with too few",
          "[toy]") {
  const rcpu_toy::BlockConfig cfg = small_config(4);
  for (double ratio : {0.25, 0.5}) {
    const Setup<double> s(cfg, 61, 4096);
    const rcpu_toy::HeldOut<double> held(s.dense, s.X_test, cfg.seq_len);
    std::vector<rcpu_toy::Evaluation> ev;
    for (rcpu::Compensation c : all_compensations) {
      rcpu_toy::BlockPruneOptions o;
      o.ratio = ratio;
      o.compensation = c;
      ev.push_back(rcpu_toy::evaluate(rcpu_toy::prune_block(s.dense, s.o_stats, s.down_stats, o), held));
    }
    const double none = ev[0].update.relative_error;
    INFO("ratio " << ratio << ", none " << none);
    CHECK(std::isfinite(none));
    CHECK(none > 0.01);
    for (std::size_t i = 0; i < ev.size(); ++i) {
      INFO(rcpu::to_string(all_compensations[i]) << ": " << ev[i].update.relative_error);
      CHECK(std::isfinite(ev[i].update.relative_error));
      CHECK(std::isfinite(ev[i].update.inner_product_distortion));
      CHECK(std::isfinite(ev[i].output_error));
      CHECK(ev[i].output_error <= ev[i].update.relative_error);  // the residual only dilutes the error
      if (i > 0) CHECK(ev[i].update.relative_error < none);
      if (i > 0) CHECK(ev[i].update.cosine > ev[0].update.cosine);
    }
  }
  // 24 calibration tokens for 36 kept MLP channels: least squares fits them exactly, and the held-out
  // error shows it; the proximal ridge does not collapse.
  const Setup<double> few(cfg, 62, 24);
  const rcpu_toy::HeldOut<double> held(few.dense, few.X_test, cfg.seq_len);
  rcpu_toy::BlockPruneOptions o;
  o.ratio = 0.25;
  o.compensation = rcpu::Compensation::least_squares;
  const auto ls = rcpu_toy::prune_block(few.dense, few.o_stats, few.down_stats, o);
  const auto e_ls = rcpu_toy::evaluate(ls, held);
  o.compensation = rcpu::Compensation::none;
  const auto e_none = rcpu_toy::evaluate(rcpu_toy::prune_block(few.dense, few.o_stats, few.down_stats, o), held);
  o.compensation = rcpu::Compensation::proximal_ridge;
  const auto e_ridge = rcpu_toy::evaluate(rcpu_toy::prune_block(few.dense, few.o_stats, few.down_stats, o), held);
  CHECK(ls.down_report.after.relative_error < 1e-3);
  CHECK(e_ls.down_error > 10 * ls.down_report.after.relative_error);
  CHECK(e_ls.down_error > e_none.down_error);
  CHECK(e_ridge.down_error < e_ls.down_error);
}

TEMPLATE_TEST_CASE("compare_rows agrees with rcpu::reference::compare_outputs", "[toy]", float, double) {
  rcpu_test::Rng rng(71);
  using Mat = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic>;
  const Mat Y = rng.normal<TestType>(40, 12), Yp = Y + Mat(rng.normal<TestType>(40, 12) * TestType(0.2));
  const rcpu::OutputComparison a = rcpu_toy::compare_rows<TestType>(Y, Yp);
  const rcpu::OutputComparison b =
      rcpu::reference::compare_outputs(Y.template cast<double>().transpose(), Yp.template cast<double>().transpose());
  const double t = tol<TestType>(1e-12, 1e-5);
  CHECK(std::abs(a.relative_error - b.relative_error) <= t);
  CHECK(std::abs(a.norm_ratio - b.norm_ratio) <= t);
  CHECK(std::abs(a.cosine - b.cosine) <= t);
  CHECK(std::abs(a.inner_product_distortion - b.inner_product_distortion) <= t);
}

TEST_CASE("the synthetic hidden states are structured, not white noise", "[toy]") {
  rcpu_toy::BlockConfig cfg;  // the demo's sizes
  const rcpu_toy::HiddenStates hs(cfg, 81);
  const Eigen::MatrixXd X = hs.sample<double>(4096, 82);
  const Eigen::RowVectorXd mu = X.colwise().mean();
  const Eigen::MatrixXd C = X.rowwise() - mu;
  const Eigen::VectorXd sd = (C.cwiseAbs2().colwise().sum() / double(X.rows())).cwiseSqrt().transpose();
  // A few outlier channels with huge means.
  const double typical = sd.mean();
  for (rcpu::Index j : hs.outlier_channels()) CHECK(std::abs(mu(j)) > 5 * typical);
  CHECK(hs.outlier_channels().size() == 4);
  // Channel means far from zero: |mean| > std / 2 for a good share of the channels.
  CHECK((mu.transpose().cwiseAbs().array() > 0.5 * sd.array()).count() > X.cols() / 4);
  // Low effective rank: the participation ratio of the covariance spectrum is far below d.
  const Eigen::MatrixXd cov = C.transpose() * C / double(X.rows());
  const Eigen::VectorXd ev = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(cov).eigenvalues();
  const double pr = ev.sum() * ev.sum() / ev.squaredNorm();
  CHECK(pr < X.cols() / 8.0);
  // Heavy tails: positive excess kurtosis in most channels.
  int heavy = 0;
  for (rcpu::Index j = 0; j < X.cols(); ++j) {
    const double m4 = C.col(j).array().pow(4).mean(), m2 = C.col(j).squaredNorm() / double(X.rows());
    heavy += m4 / (m2 * m2) > 3.2;
  }
  CHECK(heavy > X.cols() / 2);
}

TEST_CASE("the SVG writer draws every series and escapes text", "[toy]") {
  rcpu_toy::Panel p;
  p.title = "a < b & c";
  p.log_x = p.log_y = true;
  p.series.push_back({"one", "#123456", false, {1, 10, 100}, {0.5, 0.05, 0.005}});
  p.series.push_back({"", "red", true, {1, 10, 100}, {0.1, -1, 0.2}});  // the negative point is skipped
  const std::string svg = rcpu_toy::render_svg({p, p}, "title");
  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
  CHECK(svg.size() > 7);
  CHECK(svg.substr(svg.size() - 7) == "</svg>\n");
  std::size_t lines = 0;
  for (std::size_t p0 = svg.find("<polyline"); p0 != std::string::npos; p0 = svg.find("<polyline", p0 + 1)) ++lines;
  CHECK(lines == 4);
  CHECK(svg.find("a &lt; b &amp; c") != std::string::npos);
  CHECK(svg.find("a < b") == std::string::npos);
  CHECK(svg.find("stroke-dasharray") != std::string::npos);
}
