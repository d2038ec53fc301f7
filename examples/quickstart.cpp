// The smallest end-to-end use of rcpu: stream calibration tokens into statistics, prune 20% of a
// layer's input channels with the RCPU score, and compare compensations on held-out tokens.
#include <cstdio>
#include <random>

#include <rcpu/rcpu.hpp>

int main() {
  const Eigen::Index d_out = 256, d_in = 688, n_cal = 2048, n_test = 2048;
  std::mt19937 rng(7);
  std::normal_distribution<double> gauss;
  auto randn = [&](Eigen::Index r, Eigen::Index c) {
    return Eigen::MatrixXd(Eigen::MatrixXd::NullaryExpr(r, c, [&] { return gauss(rng); }));
  };

  // A layer and activations with structure: low-rank signal, per-channel scales and offsets.
  const Eigen::MatrixXd W = randn(d_out, d_in) / std::sqrt(double(d_in));
  const Eigen::MatrixXd mix = randn(64, d_in);
  const Eigen::VectorXd scale = (randn(d_in, 1).array() * 0.5).exp();
  const Eigen::RowVectorXd offset = randn(1, d_in) * 0.3;
  auto activations = [&](Eigen::Index n) {
    Eigen::MatrixXd X = randn(n, 64) * mix + 0.3 * randn(n, d_in);
    X = X * scale.asDiagonal();
    X.rowwise() += offset;
    return X;
  };
  const Eigen::MatrixXd X_cal = activations(n_cal), X_test = activations(n_test);

  rcpu::Statistics<double> stats(d_in);
  for (Eigen::Index r = 0; r < n_cal; r += 512) stats.update(X_cal.middleRows(r, 512));

  std::printf("%-16s %12s %12s %12s\n", "compensation", "cal. error", "test error", "test cosine");
  for (auto c : {rcpu::Compensation::none, rcpu::Compensation::bias, rcpu::Compensation::rotation,
                 rcpu::Compensation::rotation_scale, rcpu::Compensation::rotation_bias,
                 rcpu::Compensation::proximal_ridge}) {
    rcpu::PruneOptions opt = rcpu::PruneOptions::channels(0.2);
    opt.compensation = c;
    opt.compensation_options.lambda = 1.0;
    const auto pruned = rcpu::prune_layer(W, stats, opt);
    // Held-out tokens: compare the pruned layer's output with the dense one.
    Eigen::MatrixXd Y = W * X_test.transpose();
    Eigen::MatrixXd Yp = pruned.weight * X_test(Eigen::all, pruned.kept_columns).transpose();
    if (pruned.has_bias()) Yp.colwise() += pruned.bias;
    const auto test = rcpu::reference::compare_outputs(Y, Yp);
    std::printf("%-16s %12.5f %12.5f %12.5f\n", rcpu::to_string(c), pruned.report.after.relative_error,
                test.relative_error, test.cosine);
  }
  return 0;
}
