// The pieces of rcpu/model/pipeline.hpp and rcpu/model/block_rotation.hpp that need no model file:
// the block-diagonal rotation (oracles: the full rotation, per-block optimality, the raw-activation
// reference), the GQA head rules, FLAP's allocation and the calibration window sampler.
#include <rcpu/model/block_rotation.hpp>
#include <rcpu/model/pipeline.hpp>
#include <rcpu/reference.hpp>

#include <Eigen/LU>

#include <algorithm>
#include <set>
#include <sstream>
#include <string>

#include "support.hpp"

using rcpu::Index;
using rcpu_test::rel_diff;
using rcpu_test::Rng;

namespace {

// A small rotation exp(t * (A - A^T)) by its Cayley approximation: orthogonal for any t.
Eigen::MatrixXd small_rotation(Rng& rng, Index d, double t) {
  const Eigen::MatrixXd A = rng.normal(d, d);
  const Eigen::MatrixXd S = t * (A - A.transpose());
  const Eigen::MatrixXd I = Eigen::MatrixXd::Identity(d, d);
  return (I - S).partialPivLu().solve(I + S);
}

bool block_diagonal(const Eigen::MatrixXd& Q, Index block) {
  for (Index j = 0; j < Q.cols(); ++j)
    for (Index i = 0; i < Q.rows(); ++i)
      if (i / block != j / block && Q(i, j) != 0.0) return false;
  return true;
}

// Activations with a mean, unequal scales and correlations, like a real layer input.
Eigen::MatrixXd activations(Rng& rng, Index n, Index d) {
  Eigen::MatrixXd X = rng.normal(n, d) * (Eigen::MatrixXd::Identity(d, d) + 0.3 * rng.normal(d, d));
  for (Index j = 0; j < d; ++j) X.col(j).array() = X.col(j).array() * (0.5 + double(j % 5)) + 0.2 * double(j % 3);
  return X;
}

}  // namespace

TEST_CASE("block_procrustes with one block is the full rotation", "[block_rotation]") {
  Rng rng(11);
  const Eigen::MatrixXd M = rng.normal(12, 12);
  const rcpu::Procrustes<double> full(M);
  for (Index block : {12, 13, 100}) {
    const auto br = rcpu::model::block_procrustes(M, block);
    CHECK(br.blocks == 1);
    CHECK(rel_diff(br.q, full.rotation()) < 1e-10);
    CHECK(std::abs(br.trace - full.trace()) < 1e-10 * full.trace());
  }
}

TEST_CASE("each block of the block rotation is optimal and Q is orthogonal and block-diagonal", "[block_rotation]") {
  Rng rng(12);
  const Index d = 10, block = 4;  // blocks of 4, 4 and 2
  const Eigen::MatrixXd M = rng.normal(d, d) + 3.0 * Eigen::MatrixXd::Identity(d, d);
  const auto br = rcpu::model::block_procrustes(M, block);
  REQUIRE(br.info == rcpu::Info::success);
  CHECK(br.blocks == 3);
  CHECK(block_diagonal(br.q, block));
  CHECK((br.q.transpose() * br.q - Eigen::MatrixXd::Identity(d, d)).norm() < 1e-12);
  CHECK(std::abs((br.q.transpose() * M).trace() - br.trace) < 1e-10 * std::abs(br.trace));
  // Each block solves its own Procrustes problem: the trace equals the sum of M_bb's singular values.
  double sv = 0;
  for (Index b0 = 0; b0 < d; b0 += block) {
    const Index nb = std::min(block, d - b0);
    sv += rcpu::Procrustes<double>(M.block(b0, b0, nb, nb)).singular_values().sum();
  }
  CHECK(std::abs(sv - br.trace) < 1e-10 * sv);
  // No perturbation of one block by a small rotation improves tr(Q^T M).
  for (int trial = 0; trial < 20; ++trial) {
    const Index b0 = (trial % 3) * block, nb = std::min(block, d - b0);
    Eigen::MatrixXd Qp = br.q;
    Qp.block(b0, b0, nb, nb) = br.q.block(b0, b0, nb, nb) * small_rotation(rng, nb, 0.05);
    CHECK((Qp.transpose() * M).trace() <= br.trace + 1e-12);
  }
  // A restriction of the full rotation: never above its optimum.
  CHECK(br.trace <= rcpu::Procrustes<double>(M).trace() + 1e-10);
}

TEST_CASE("block size 1 keeps the sign of each diagonal entry", "[block_rotation]") {
  Eigen::MatrixXd M(3, 3);
  M << 2, 1, 0, 0, -3, 1, 1, 0, 0.5;
  const auto br = rcpu::model::block_procrustes(M, 1);
  CHECK(br.q.isApprox(Eigen::Vector3d(1, -1, 1).asDiagonal().toDenseMatrix()));
  CHECK(std::abs(br.trace - 5.5) < 1e-12);
}

TEST_CASE("the proper-rotation option makes every block a rotation", "[block_rotation]") {
  Rng rng(13);
  const Index d = 8;
  Eigen::MatrixXd M = rng.normal(d, d);
  M.row(0) *= -1;  // make det(U V^T) of some block negative, most likely
  rcpu::ProcrustesOptions po;
  po.proper_rotation = true;
  const auto br = rcpu::model::block_procrustes(M, 4, po);
  for (Index b0 = 0; b0 < d; b0 += 4) CHECK(br.q.block(b0, b0, 4, 4).determinant() > 0);
}

TEST_CASE("compensate_block_rotation from statistics equals the raw-activation computation", "[block_rotation]") {
  Rng rng(14);
  const Index n = 400, d_in = 16, d_out = 16, hd = 4;
  const Eigen::MatrixXd X = activations(rng, n, d_in);
  const Eigen::MatrixXd W = rng.normal(d_out, d_in);
  const Eigen::VectorXd b = rng.normal(d_out, 1);
  rcpu::Statistics<double> st(d_in);
  st.update(X);
  const std::vector<Index> kept = rcpu::expand_groups({0, 2, 3}, hd);  // head 1 removed
  const Eigen::MatrixXd WK = W(Eigen::all, kept), XK = X(Eigen::all, kept).transpose();
  const Eigen::MatrixXd Y = W * X.transpose(), Z = WK * XK;
  const auto ref = rcpu::model::block_procrustes(Y * Z.transpose(), hd);
  for (rcpu::Compensation m :
       {rcpu::Compensation::rotation, rcpu::Compensation::rotation_scale, rcpu::Compensation::rotation_bias}) {
    const auto c = rcpu::model::compensate_block_rotation(W, b, st, kept, hd, m);
    REQUIRE(c.report.info == rcpu::Info::success);
    Eigen::MatrixXd Wr = ref.q * WK;
    Eigen::VectorXd br = b;
    if (m == rcpu::Compensation::rotation_scale) Wr *= ref.trace / Z.squaredNorm();
    if (m == rcpu::Compensation::rotation_bias) br = b + W * X.colwise().mean().transpose() - Wr * X.colwise().mean()(kept).transpose();
    CHECK(rel_diff(c.weight, Wr) < 1e-9);
    CHECK(rel_diff(c.bias, br) < 1e-9);
    // The report from the Gram equals the explicit outputs.
    const Eigen::MatrixXd ones = Eigen::RowVectorXd::Ones(n);
    const auto before = rcpu::reference::compare_outputs(Y + b * ones, Z + b * ones);
    const auto after = rcpu::reference::compare_outputs(Y + b * ones, Wr * XK + br * ones);
    CHECK(std::abs(c.report.before.relative_error - before.relative_error) < 1e-8);
    CHECK(std::abs(c.report.after.relative_error - after.relative_error) < 1e-8);
    CHECK(std::abs(c.report.after.cosine - after.cosine) < 1e-8);
    CHECK(c.report.after.relative_error < c.report.before.relative_error);
  }
  // One block: the library's full rotation.
  const auto one = rcpu::model::compensate_block_rotation(W, b, st, kept, d_out, rcpu::Compensation::rotation);
  const auto full = rcpu::compensate(W, b, st, kept, rcpu::Compensation::rotation);
  CHECK(rel_diff(one.weight, full.weight) < 1e-8);
  CHECK(std::abs(one.report.after.relative_error - full.report.after.relative_error) < 1e-8);
}

TEST_CASE("compensate_block_rotation refuses bad input", "[block_rotation]") {
  Rng rng(15);
  const Eigen::MatrixXd W = rng.normal(8, 8);
  rcpu::Statistics<double> st(8), diag(8, rcpu::GramMode::diagonal);
  st.update(rng.normal(50, 8));
  diag.update(rng.normal(50, 8));
  const std::vector<Index> kept{0, 1, 2, 3};
  using rcpu::model::compensate_block_rotation;
  CHECK_THROWS_AS(compensate_block_rotation(W, Eigen::VectorXd(), st, kept, 4, rcpu::Compensation::proximal_ridge),
                  rcpu::invalid_argument);
  CHECK_THROWS_AS(compensate_block_rotation(W, Eigen::VectorXd(), st, kept, 0, rcpu::Compensation::rotation),
                  rcpu::invalid_argument);
  CHECK_THROWS_AS(compensate_block_rotation(W, Eigen::VectorXd(), diag, kept, 4, rcpu::Compensation::rotation),
                  rcpu::invalid_argument);
  CHECK_THROWS_AS(compensate_block_rotation(W, Eigen::VectorXd(3), st, kept, 4, rcpu::Compensation::rotation),
                  rcpu::invalid_argument);
  CHECK_THROWS_AS(compensate_block_rotation(W, Eigen::VectorXd(), st, {0, 9}, 4, rcpu::Compensation::rotation),
                  rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::model::block_procrustes(Eigen::MatrixXd(3, 4), 2), rcpu::invalid_argument);
}

TEST_CASE("GQA rules choose query heads as documented", "[pipeline]") {
  using rcpu::model::GqaRule;
  using rcpu::model::detail::choose_heads;
  // 9 query heads in 3 KV groups of 3 (SmolLM2's shape).
  const std::vector<Index> kv{0, 0, 0, 1, 1, 1, 2, 2, 2};
  Eigen::VectorXd s(9);
  s << 5, 1, 2, 9, 8, 7, 0.5, 0.6, 3;
  const auto q = [&](GqaRule r, double ratio) { return choose_heads(s, kv, 3, r, ratio, -1, rcpu::Score::rcpu); };
  CHECK(q(GqaRule::query_heads, 0.1).size() == 9);  // floor(0.9) = 0 heads
  CHECK(q(GqaRule::query_heads, 0.2) == std::vector<Index>{0, 1, 2, 3, 4, 5, 7, 8});
  CHECK(q(GqaRule::query_heads, 1.0 / 3) == std::vector<Index>{0, 2, 3, 4, 5, 8});
  // Groups score the sum of their heads: 8, 24, 4.1 -> group 2 goes first.
  CHECK(q(GqaRule::kv_groups, 0.2).size() == 9);  // floor(0.6) = 0 groups
  CHECK(q(GqaRule::kv_groups, 1.0 / 3) == std::vector<Index>{0, 1, 2, 3, 4, 5});
  CHECK(q(GqaRule::kv_groups, 0.7) == std::vector<Index>{3, 4, 5});
  // Balanced: the lowest head of each group.
  CHECK(q(GqaRule::balanced, 1.0 / 3) == std::vector<Index>{0, 2, 3, 4, 7, 8});
  CHECK(q(GqaRule::balanced, 0.2).size() == 9);  // floor(0.6) = 0 per group
  // An explicit count (adaptive allocation) wins over the ratio, and never removes every head.
  CHECK(choose_heads(s, kv, 3, GqaRule::query_heads, 0.0, 4, rcpu::Score::rcpu).size() == 5);
  CHECK(choose_heads(s, kv, 3, GqaRule::query_heads, 0.0, 20, rcpu::Score::rcpu).size() == 1);
}

TEST_CASE("FLAP's allocation keeps about (1 - ratio) of the cost and one unit per module", "[pipeline]") {
  Rng rng(16);
  rcpu::model::FlapScores fs;
  for (int l = 0; l < 6; ++l) {
    Eigen::VectorXd h = rng.normal(4, 1), c = rng.normal(40, 1);
    if (l == 2) h.array() -= 10;  // a layer whose heads all score badly
    fs.heads.push_back(h);
    fs.channels.push_back(c);
  }
  const double head_cost = 5.0;
  for (double ratio : {0.0, 0.1, 0.3, 0.5}) {
    const auto b = rcpu::model::flap_allocation(fs, ratio, head_cost);
    REQUIRE(b.heads_removed.size() == 6);
    double kept = 0;
    for (int l = 0; l < 6; ++l) {
      CHECK(b.heads_removed[std::size_t(l)] <= 3);
      CHECK(b.channels_removed[std::size_t(l)] <= 39);
      kept += double(4 - b.heads_removed[std::size_t(l)]) * head_cost + double(40 - b.channels_removed[std::size_t(l)]);
    }
    CHECK(std::abs(kept / (6 * (4 * head_cost + 40)) - b.retained_cost_fraction) < 1e-12);
    CHECK(std::abs(b.retained_cost_fraction - (1 - ratio)) < 0.03);
  }
  CHECK(rcpu::model::flap_allocation(fs, 0.0, head_cost).retained_cost_fraction == 1.0);
  CHECK(rcpu::model::flap_allocation(fs, 0.5, head_cost).heads_removed[2] == 3);  // one head stays
  rcpu::model::LlamaConfig llama7b;
  llama7b.n_heads = llama7b.n_kv_heads = 32;
  llama7b.head_dim = 128;
  CHECK(std::abs(rcpu::model::flap_head_cost(llama7b) - 512.0 / 3.0) < 1e-12);
  CHECK_THROWS_AS(rcpu::model::flap_allocation(fs, 1.0, head_cost), rcpu::invalid_argument);
}

TEST_CASE("calibration windows are deterministic, in range, and depend on the seed", "[pipeline]") {
  const auto a = rcpu::model::random_windows(100, 1000, 128, 50, 7);
  const auto b = rcpu::model::random_windows(100, 1000, 128, 50, 7);
  const auto c = rcpu::model::random_windows(100, 1000, 128, 50, 8);
  CHECK(a == b);
  CHECK(a != c);
  for (Index s : a) {
    CHECK(s >= 100);
    CHECK(s + 128 <= 1000);
  }
  CHECK(std::set<Index>(a.begin(), a.end()).size() > 40);
  // The first draws do not depend on how many are drawn (nested calibration sets).
  const auto d = rcpu::model::random_windows(100, 1000, 128, 10, 7);
  CHECK(std::equal(d.begin(), d.end(), a.begin()));
  std::vector<std::int32_t> toks(1000);
  for (int i = 0; i < 1000; ++i) toks[std::size_t(i)] = i;
  const auto ids = rcpu::model::gather_windows(toks, {3, 500}, 4);
  CHECK(ids == std::vector<std::int32_t>{3, 4, 5, 6, 500, 501, 502, 503});
  CHECK_THROWS_AS(rcpu::model::gather_windows(toks, {998}, 4), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::model::random_windows(0, 100, 128, 1, 1), rcpu::invalid_argument);
}

TEST_CASE("the pipeline log warns about an underdetermined module", "[pipeline]") {
  rcpu::model::PipelineOptions o;
  o.label = "t";
  rcpu::model::LayerOutcome r;
  r.layer = 2;
  r.mlp_pruned = true;
  r.mlp.tokens = 64;
  r.mlp.kept_columns = 100;
  r.mlp.underdetermined = true;
  std::ostringstream os;
  rcpu::model::detail::log_layer(os, o, r, 4, 8, 8, 128);
  CHECK(os.str().find("warning: layer 3 down_proj: 64 calibration tokens < 100 kept columns") != std::string::npos);
  CHECK(os.str().find("o_proj:") == std::string::npos);
  r.mlp.underdetermined = false;
  std::ostringstream quiet;
  rcpu::model::detail::log_layer(quiet, o, r, 4, 8, 8, 128);
  CHECK(quiet.str().find("warning") == std::string::npos);
}
