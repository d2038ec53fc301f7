// A downstream program: prunes a small layer through the umbrella header and checks the result.
// Eigen's SVD routes are compiled out (the default Procrustes route does not use them): this keeps the
// three consumer builds quick and checks that the macro works for a project that sets it by hand.
#ifndef RCPU_NO_EIGEN_SVD
#define RCPU_NO_EIGEN_SVD
#endif
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
