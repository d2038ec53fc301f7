// A downstream program: prunes a small layer through the umbrella header and checks the result.
#include <rcpu/rcpu.hpp>

#include <cstdio>

int main() {
  const Eigen::MatrixXd W = Eigen::MatrixXd::Random(6, 12);
  const Eigen::MatrixXd X = Eigen::MatrixXd::Random(200, 12);
  rcpu::Statistics<double> stats(12);
  stats.update(X);
  const auto pruned = rcpu::prune_layer(W, stats, rcpu::PruneOptions::heads(3, 0.25));
  const bool ok = pruned.weight.rows() == 6 && pruned.weight.cols() == 9 &&
                  pruned.report.after.relative_error <= pruned.report.before.relative_error;
  std::printf("consumer: kept %zu columns, error %.4f -> %.4f: %s\n", pruned.kept_columns.size(),
              pruned.report.before.relative_error, pruned.report.after.relative_error, ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
