// rcpu/mpi.hpp under mpirun (CTest runs this executable with 1, 2 and 3 ranks). Every rank runs every
// test case in the same order; each check is agreed across ranks (all_true) before Catch2 sees it, so
// a failure on one rank fails the case on every rank instead of leaving the others in a collective.
#define CATCH_CONFIG_RUNNER
#ifdef RCPU_CATCH2_V3
#include <catch2/catch_session.hpp>
#include <catch2/catch_test_macros.hpp>
#else
#include <catch2/catch.hpp>
#endif

#include <rcpu/mpi.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

MPI_Comm world() { return MPI_COMM_WORLD; }

// Whether `ok` holds on every rank.
bool all_true(bool ok) {
  int v = ok ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MIN, world());
  return v == 1;
}

// Tokens x channels, deterministic and the same on every rank; far-from-zero means in some channels
// (Chan's rule matters there), a few exact zeros.
template <typename T>
Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> tokens(rcpu::Index n, rcpu::Index d, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<double> z(0.0, 1.0);
  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> X(n, d);
  for (rcpu::Index j = 0; j < d; ++j) {
    const double mean = (j % 3 == 0) ? 1e3 : 0.1 * double(j), scale = 1.0 + double(j % 5);
    for (rcpu::Index i = 0; i < n; ++i) X(i, j) = T((i + j) % 17 == 0 ? 0.0 : mean + scale * z(g));
  }
  return X;
}

// The rows of rank r's shard: contiguous, uneven, and empty for some rank counts (n = 7 p + 1 rows
// split 0, then the rest), so that a rank with no tokens is exercised.
std::pair<rcpu::Index, rcpu::Index> shard(rcpu::Index n, int r, int p) {
  if (p >= 3 && r == 1) return {0, 0};
  const int busy = p >= 3 ? p - 1 : p;
  const int k = (p >= 3 && r > 1) ? r - 1 : r;
  const rcpu::Index lo = n * k / busy, hi = n * (k + 1) / busy;
  return {lo, hi - lo};
}

template <typename S>
bool same_bits(const S& a, const S& b) {
  const auto eq = [](const auto& x, const auto& y) {
    return x.size() == y.size() && std::memcmp(x.data(), y.data(), sizeof(*x.data()) * std::size_t(x.size())) == 0;
  };
  bool ok = a.tokens() == b.tokens() && eq(a.sum(), b.sum()) && eq(a.abs_sum(), b.abs_sum()) &&
            eq(a.sq_sum(), b.sq_sum()) && eq(a.m2(), b.m2());
  if (a.tokens() > 0) ok = ok && eq(a.mean(), b.mean());
  if (a.has_gram() && a.tokens() > 0) ok = ok && eq(a.gram(), b.gram());
  return ok;
}

// Every rank's copy of `v` equals rank 0's, bit for bit.
template <typename V>
bool identical_on_all_ranks(const V& v) {
  std::vector<typename V::Scalar> mine(v.data(), v.data() + v.size()), root = mine;
  MPI_Bcast(root.data(), int(root.size() * sizeof(typename V::Scalar)), MPI_BYTE, 0, world());
  return std::memcmp(root.data(), mine.data(), mine.size() * sizeof(typename V::Scalar)) == 0;
}

template <typename T>
void check_allreduce(rcpu::GramMode mode, rcpu::GramPrecision precision, std::size_t chunk_bytes) {
  const int p = rcpu::mpi::size(world()), me = rcpu::mpi::rank(world());
  const rcpu::Index n = 7 * p + 300, d = 37;
  const auto X = tokens<T>(n, d, 12345u);
  // This rank's shard, fed in two blocks.
  rcpu::Statistics<T> local(d, mode, precision);
  const auto [lo, len] = shard(n, me, p);
  if (len > 0) {
    local.update(X.middleRows(lo, len / 2));
    local.update(X.middleRows(lo + len / 2, len - len / 2));
  }
  rcpu::mpi::allreduce(local, world(), chunk_bytes);

  // Oracle 1: the ranks' statistics merged in rank order, rebuilt here from the same data: bit-identical.
  rcpu::Statistics<T> merged(d, mode, precision);
  for (int r = 0; r < p; ++r) {
    rcpu::Statistics<T> part(d, mode, precision);
    const auto [rlo, rlen] = shard(n, r, p);
    if (rlen > 0) {
      part.update(X.middleRows(rlo, rlen / 2));
      part.update(X.middleRows(rlo + rlen / 2, rlen - rlen / 2));
    }
    if (precision == rcpu::GramPrecision::input_blocks && part.tokens() > 0 && mode == rcpu::GramMode::full)
      (void)part.gram();  // the reduction flushes each rank's partial Gram first; do the same
    merged.merge(part);
  }
  CHECK(all_true(same_bits(local, merged)));
  // Oracle 2: one process over all tokens, equal up to the order of the double sums (1e-13 relative;
  // m2 and the variance 1e-12). The input-block Gram is not compared: it carries float rounding that
  // depends on how the tokens were split into blocks.
  rcpu::Statistics<T> one(d, mode, precision);
  one.update(X);
  CHECK(all_true(local.tokens() == n));
  const auto rel = [](const auto& a, const auto& b) { return (a - b).norm() / std::max(1e-300, b.norm()); };
  CHECK(all_true(rel(local.sum(), one.sum()) < 1e-13));
  CHECK(all_true(rel(local.abs_sum(), one.abs_sum()) < 1e-13));
  CHECK(all_true(rel(local.sq_sum(), one.sq_sum()) < 1e-13));
  CHECK(all_true(rel(local.m2(), one.m2()) < 1e-12));
  CHECK(all_true(rel(local.variance(), one.variance()) < 1e-12));
  if (mode == rcpu::GramMode::full && precision == rcpu::GramPrecision::accumulator)
    CHECK(all_true(rel(local.gram(), one.gram()) < 1e-13));
  // The same on every rank, bit for bit.
  CHECK(all_true(identical_on_all_ranks(local.m2())));
  CHECK(all_true(identical_on_all_ranks(local.sum())));
  if (mode == rcpu::GramMode::full) CHECK(all_true(identical_on_all_ranks(local.gram())));
}

}  // namespace

TEST_CASE("mpi::allreduce equals the rank-order merge and one process", "[mpi]") {
  SECTION("double, full Gram, one chunk") { check_allreduce<double>(rcpu::GramMode::full, rcpu::GramPrecision::accumulator, 32u << 20); }
  SECTION("double, full Gram, a column per chunk") { check_allreduce<double>(rcpu::GramMode::full, rcpu::GramPrecision::accumulator, 8); }
  SECTION("double, full Gram, odd chunks") { check_allreduce<double>(rcpu::GramMode::full, rcpu::GramPrecision::accumulator, 1000); }
  SECTION("float, full Gram") { check_allreduce<float>(rcpu::GramMode::full, rcpu::GramPrecision::accumulator, 4096); }
  SECTION("float, input-block Gram") { check_allreduce<float>(rcpu::GramMode::full, rcpu::GramPrecision::input_blocks, 4096); }
  SECTION("double, diagonal") { check_allreduce<double>(rcpu::GramMode::diagonal, rcpu::GramPrecision::accumulator, 4096); }
}

TEST_CASE("mpi::allreduce: ranks that disagree on shapes all throw", "[mpi]") {
  const int p = rcpu::mpi::size(world()), me = rcpu::mpi::rank(world());
  if (p < 2) return;  // one rank cannot disagree with itself (CTest runs this with 2 and 3 ranks too)
  rcpu::Statistics<double> s(me == p - 1 ? 5 : 4);
  std::string message;
  try {
    rcpu::mpi::allreduce(s, world());
  } catch (const rcpu::invalid_argument& e) {
    message = e.what();
  }
  CHECK(all_true(message.find("rank " + std::to_string(p - 1) + " has statistics of 5 channels") != std::string::npos));
  // Different chunk sizes would exchange blocks of different sizes: refused the same way.
  rcpu::Statistics<double> t(4);
  message.clear();
  try {
    rcpu::mpi::allreduce(t, world(), me == 0 ? 1024 : 2048);
  } catch (const rcpu::invalid_argument& e) {
    message = e.what();
  }
  CHECK(all_true(message.find("chunk_bytes") != std::string::npos));
}

TEST_CASE("mpi::collective: a failure on one rank reaches every rank", "[mpi]") {
  const int p = rcpu::mpi::size(world()), me = rcpu::mpi::rank(world());
  // Nothing fails: returns everywhere.
  bool ran = false;
  rcpu::mpi::collective(world(), "nothing", [&] { ran = true; });
  CHECK(all_true(ran));
  // Bad input on the last rank only (a NaN in its calibration tokens).
  rcpu::Statistics<double> s(3);
  std::string message;
  try {
    rcpu::mpi::collective(world(), "calibration", [&] {
      Eigen::MatrixXd X = Eigen::MatrixXd::Ones(4, 3);
      if (me == p - 1) X(2, 1) = std::nan("");
      s.update(X);
    });
  } catch (const rcpu::invalid_argument& e) {
    message = e.what();
  }
  CHECK(all_true(message.find("calibration: rank " + std::to_string(p - 1) + " of " + std::to_string(p)) != std::string::npos));
  CHECK(all_true(message.find("NaN") != std::string::npos || message.find("finite") != std::string::npos));
  // Another exception type arrives as std::runtime_error, with its message.
  message.clear();
  try {
    rcpu::mpi::collective(world(), "step", [&] {
      if (me == 0) throw std::logic_error("broken on rank zero");
    });
  } catch (const rcpu::invalid_argument&) {
    message = "wrong type";
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  CHECK(all_true(message == "rcpu: step: rank 0 of " + std::to_string(p) + ": broken on rank zero"));
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  Catch::Session session;
  int rc = session.applyCommandLine(argc, argv);
  if (rc == 0) {
    if (rank != 0) session.configData().outputFilename = "/dev/null";  // one report, from rank 0
    rc = session.run();
  }
  MPI_Finalize();
  return rc;
}
