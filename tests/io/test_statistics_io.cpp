// Oracles for rcpu/io/statistics_io.hpp: save + load is exact, loaded shards merge into what one pass
// gives, pruning from loaded statistics equals pruning from the originals bit for bit, and every
// damaged or inconsistent statistics directory is refused.
#include <rcpu/io/statistics_io.hpp>
#include <rcpu/prune.hpp>

#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "io_support.hpp"
#include "support.hpp"

using rcpu_test::rel_diff;
using rcpu_test::Rng;
using rcpu_test::TempDir;

namespace {

template <typename S, typename A>
void require_identical(const rcpu::Statistics<S, A>& a, const rcpu::Statistics<S, A>& b) {
  REQUIRE(a.channels() == b.channels());
  CHECK(a.tokens() == b.tokens());
  CHECK(a.has_gram() == b.has_gram());
  CHECK(a.sum() == b.sum());
  CHECK(a.abs_sum() == b.abs_sum());
  CHECK(a.sq_sum() == b.sq_sum());
  CHECK(a.m2() == b.m2());
  if (a.has_gram() && a.tokens() > 0) CHECK(a.gram() == b.gram());
}

Eigen::MatrixXd activations(std::uint32_t seed, Eigen::Index n, Eigen::Index d) {
  Rng rng(seed);
  Eigen::MatrixXd X = rng.normal(n, 4) * rng.normal(4, d) + 0.3 * rng.normal(n, d);
  X.rowwise() += 3.0 * rng.normal(1, d).row(0);
  return X;
}

// Rewrites the marker's checksums to match the files, as someone editing the files by hand and then
// the marker would: the loader must then still find what is wrong from the values alone.
void reseal(const std::string& dir) {
  const std::string m = dir + "/" + rcpu::io::statistics_marker();
  std::istringstream in(rcpu_test::read_bytes(m));
  std::string out, line;
  while (std::getline(in, line))
    if (line.rfind("crc32.", 0) != 0) out += line + "\n";
  for (const char* const* f = rcpu::io::statistics_files(); *f != nullptr; ++f)
    if (std::filesystem::exists(dir + "/" + *f))
      out += std::string("crc32.") + *f + " " + rcpu::io::detail::hex32(rcpu::io::crc32(rcpu_test::read_bytes(dir + "/" + *f))) + "\n";
  rcpu_test::write_bytes(m, out);
}

bool refuses(const std::string& dir, const std::string& phrase) {
  try {
    rcpu::io::load_statistics<double>(dir);
  } catch (const rcpu::invalid_argument& e) {
    const std::string what = e.what();
    INFO("message: " << what);
    CHECK(what.find(phrase) != std::string::npos);
    return true;
  }
  return false;
}

}  // namespace

TEMPLATE_TEST_CASE("save + load gives the same sums, bit for bit", "[statistics_io]", float, double) {
  TempDir dir("stats");
  using Mat = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic>;
  const Mat X = activations(21, 300, 9).cast<TestType>();
  for (auto mode : {rcpu::GramMode::full, rcpu::GramMode::diagonal}) {
    rcpu::Statistics<TestType> st(9, mode);
    st.update(X.topRows(100));
    st.update(X.bottomRows(200));
    rcpu::io::save_statistics(dir / "s", st);
    CHECK(rcpu::io::is_statistics_directory(dir / "s"));
    const auto back = rcpu::io::load_statistics<TestType>(dir / "s");
    require_identical(back, st);
    // The running mean is not saved: from_sums rebuilds it as sum / n, which may differ from the
    // accumulator's (Welford-merged) mean in the last bit.
    CHECK(rel_diff(back.mean(), st.mean()) <= 1e-15);
  }
  // Empty statistics too.
  rcpu::Statistics<TestType> empty(4);
  rcpu::io::save_statistics(dir / "e", empty);
  const auto e = rcpu::io::load_statistics<TestType>(dir / "e");
  CHECK(e.tokens() == 0);
  CHECK(e.channels() == 4);
  CHECK(e.has_gram());
  CHECK(rcpu_test::list_dir(dir.str()) == std::vector<std::string>{"e", "s"});  // no temporaries left
}

TEST_CASE("loaded shards merge into one pass over all their tokens", "[statistics_io]") {
  TempDir dir("stats");
  const Eigen::MatrixXd X = activations(22, 900, 12);
  rcpu::Statistics<double> a(12), b(12), c(12), all(12);
  a.update(X.topRows(250));
  b.update(X.middleRows(250, 400));
  c.update(X.bottomRows(250));
  all.update(X);
  rcpu::io::save_statistics(dir / "a", a);
  rcpu::io::save_statistics(dir / "b", b);
  rcpu::io::save_statistics(dir / "c", c);
  auto merged = rcpu::io::load_statistics<double>(dir / "a");
  merged.merge(rcpu::io::load_statistics<double>(dir / "b")).merge(rcpu::io::load_statistics<double>(dir / "c"));
  // Exactly what merging the in-memory shards gives (loading is exact) ...
  rcpu::Statistics<double> mem = a;
  mem.merge(b).merge(c);
  require_identical(merged, mem);
  // ... and one pass over the tokens up to the order of additions.
  CHECK(merged.tokens() == all.tokens());
  CHECK(rel_diff(merged.sum(), all.sum()) <= 1e-13);
  CHECK(rel_diff(merged.m2(), all.m2()) <= 1e-12);
  CHECK(rel_diff(merged.variance(), all.variance()) <= 1e-12);
  CHECK(rel_diff(merged.gram(), all.gram()) <= 1e-13);
}

TEMPLATE_TEST_CASE("pruning from loaded statistics equals pruning from the originals", "[statistics_io]", float, double) {
  TempDir dir("stats");
  using Mat = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic>;
  Rng rng(23);
  const Mat W = rng.normal<TestType>(10, 16);
  rcpu::Statistics<TestType> st(16);
  st.update(activations(24, 400, 16).cast<TestType>());
  rcpu::io::save_statistics(dir / "s", st);
  const auto back = rcpu::io::load_statistics<TestType>(dir / "s");
  for (auto c : {rcpu::Compensation::rotation, rcpu::Compensation::proximal_ridge, rcpu::Compensation::bias}) {
    rcpu::PruneOptions o = rcpu::PruneOptions::channels(0.25);
    o.compensation = c;
    const auto p1 = rcpu::prune_layer(W, st, o), p2 = rcpu::prune_layer(W, back, o);
    CHECK(p1.kept_columns == p2.kept_columns);
    CHECK(p1.weight == p2.weight);
    CHECK(p1.bias == p2.bias);
  }
}

TEST_CASE("saving replaces a statistics directory but nothing else", "[statistics_io]") {
  TempDir dir("stats");
  rcpu::Statistics<double> st(3);
  st.update(activations(25, 50, 3));
  rcpu::io::save_statistics(dir / "s", st);
  rcpu::Statistics<double> st2(3);
  st2.update(activations(26, 70, 3));
  rcpu::io::save_statistics(dir / "s/", st2);  // a trailing slash names the same directory
  CHECK(rcpu::io::load_statistics<double>(dir / "s").tokens() == 70);
  std::filesystem::create_directory(dir / "empty");
  rcpu::io::save_statistics(dir / "empty", st);
  CHECK(rcpu::io::load_statistics<double>(dir / "empty").tokens() == 50);

  std::filesystem::create_directory(dir / "other");
  rcpu_test::write_bytes(dir / "other/keep.txt", "data");
  CHECK_THROWS_AS(rcpu::io::save_statistics(dir / "other", st), rcpu::invalid_argument);
  CHECK(rcpu_test::list_dir(dir / "other") == std::vector<std::string>{"keep.txt"});
  rcpu_test::write_bytes(dir / "file", "data");
  CHECK_THROWS_AS(rcpu::io::save_statistics(dir / "file", st), rcpu::invalid_argument);
  CHECK(rcpu_test::read_bytes(dir / "file") == "data");
  CHECK(rcpu_test::list_dir(dir.str()) == std::vector<std::string>{"empty", "file", "other", "s"});
}

TEST_CASE("damaged statistics directories are refused", "[statistics_io]") {
  TempDir dir("stats");
  rcpu::Statistics<double> st(5);
  st.update(activations(27, 80, 5));
  auto fresh = [&](const std::string& name) {
    rcpu::io::save_statistics(dir / name, st);
    return dir / name;
  };
  auto marker = [&](const std::string& d, const std::string& text) {
    rcpu_test::write_bytes(d + "/" + rcpu::io::statistics_marker(), text);
  };
  CHECK(refuses(dir / "missing", "not a statistics directory"));
  {
    const auto d = fresh("version");
    marker(d, "format rcpu-statistics\nversion 3\nchannels 5\ntokens 80\ngram full\n");
    CHECK(refuses(d, "version 3"));
  }
  {
    const auto d = fresh("format");
    marker(d, "format something-else\nversion 1\nchannels 5\ntokens 80\ngram full\n");
    CHECK(refuses(d, "format"));
  }
  {
    const auto d = fresh("channels");
    marker(d, "format rcpu-statistics\nversion 1\nchannels 6\ntokens 80\ngram full\n");
    CHECK(refuses(d, "expected (6,)"));
  }
  {
    const auto d = fresh("tokens");
    marker(d, "format rcpu-statistics\nversion 1\nchannels 5\ntokens 81\ngram full\n");
    CHECK(refuses(d, "81"));
  }
  {
    const auto d = fresh("notint");
    marker(d, "format rcpu-statistics\nversion 1\nchannels five\ntokens 80\ngram full\n");
    CHECK(refuses(d, "not an integer"));
  }
  {
    const auto d = fresh("gramshape");
    rcpu::io::save_npy(d + "/gram.npy", Eigen::MatrixXd::Zero(5, 4));
    reseal(d);
    CHECK(refuses(d, "gram.npy has shape (5, 4)"));
  }
  {
    const auto d = fresh("asym");
    Eigen::MatrixXd G = st.gram();
    G(0, 1) += 1.0;
    rcpu::io::save_npy(d + "/gram.npy", G);
    reseal(d);
    CHECK(refuses(d, "not symmetric"));
  }
  {
    const auto d = fresh("negative");
    Eigen::VectorXd sq = st.sq_sum();
    sq(2) = -1;
    rcpu::io::save_npy_vector(d + "/sq_sum.npy", sq);
    reseal(d);
    CHECK(refuses(d, "sq_sum"));
  }
  {
    const auto d = fresh("nan");
    Eigen::VectorXd s = st.sum();
    s(1) = std::numeric_limits<double>::quiet_NaN();
    rcpu::io::save_npy_vector(d + "/sum.npy", s);
    reseal(d);
    CHECK(refuses(d, "sum.npy has a non-finite entry nan at [1]"));
  }
  {
    const auto d = fresh("nogram");
    std::filesystem::remove(d + "/gram.npy");
    CHECK(refuses(d, "gram.npy is missing"));
  }
  {
    const auto d = fresh("diag");
    marker(d, "format rcpu-statistics\nversion 1\nchannels 5\ntokens 80\ngram diagonal\n");
    CHECK(refuses(d, "gram.npy exists"));
  }
  {
    const auto d = fresh("truncated");
    const std::string bytes = rcpu_test::read_bytes(d + "/m2.npy");
    rcpu_test::write_bytes(d + "/m2.npy", bytes.substr(0, bytes.size() - 3));
    CHECK(refuses(d, "m2.npy is corrupted"));
    reseal(d);
    CHECK(refuses(d, "truncated"));
  }
  {
    const auto d = fresh("floattokens");
    rcpu::io::save_npy_vector(d + "/tokens.npy", Eigen::VectorXd::Constant(1, 80.0));
    reseal(d);
    CHECK(refuses(d, "integer"));
  }
}

TEST_CASE("contradictory statistics are refused, naming the file and the broken relation", "[statistics_io]") {
  // Each edit keeps the files well-formed and the checksums right (resealed): only the relations
  // between the values can tell. Before format version 2 every one of these loaded and pruned with
  // a reported relative error of 0.
  TempDir dir("stats");
  rcpu::Statistics<double> st(6);
  Eigen::MatrixXd X = activations(28, 300, 6);
  X.col(2).array() += 3.0;  // a channel with a mean, so that m2 and sq_sum - sum^2/n differ clearly
  st.update(X);
  auto edited = [&](const std::string& name, const std::function<void(const std::string&)>& edit) {
    rcpu::io::save_statistics(dir / name, st);
    edit(dir / name);
    reseal(dir / name);
    return dir / name;
  };
  auto vec = [&](const Eigen::VectorXd& v) { return v; };
  const std::string marker_tokens = "tokens 300";
  auto set_tokens = [&](const std::string& d, std::int64_t n) {
    rcpu::io::save_npy_int(d + "/tokens.npy", n);
    std::string m = rcpu_test::read_bytes(d + "/" + rcpu::io::statistics_marker());
    m.replace(m.find(marker_tokens), marker_tokens.size(), "tokens " + std::to_string(n));
    rcpu_test::write_bytes(d + "/" + rcpu::io::statistics_marker(), m);
  };
  CHECK(refuses(edited("tokens_both", [&](const std::string& d) { set_tokens(d, 30); }), "tokens"));
  CHECK(refuses(edited("tokens_more", [&](const std::string& d) { set_tokens(d, 3000); }), "m2.npy"));
  CHECK(refuses(edited("gram_negated",
                       [&](const std::string& d) { rcpu::io::save_npy(d + "/gram.npy", Eigen::MatrixXd(-st.gram())); }),
                "gram.npy, sq_sum.npy: G[0,0]"));
  CHECK(refuses(edited("gram_doubled",
                       [&](const std::string& d) { rcpu::io::save_npy(d + "/gram.npy", Eigen::MatrixXd(2 * st.gram())); }),
                "the Gram's diagonal is sum x^2"));
  CHECK(refuses(edited("sum_1000", [&](const std::string& d) { rcpu::io::save_npy_vector(d + "/sum.npy", vec(1000 * st.sum())); }),
                "|sum x| <= sum |x|"));
  CHECK(refuses(edited("m2_100", [&](const std::string& d) { rcpu::io::save_npy_vector(d + "/m2.npy", vec(100 * st.m2())); }),
                "m2.npy: m2["));
  CHECK(refuses(edited("cauchy", [&](const std::string& d) {
                  Eigen::MatrixXd G = st.gram();
                  G(4, 1) = G(1, 4) = 1.5 * std::sqrt(G(1, 1) * G(4, 4));
                  rcpu::io::save_npy(d + "/gram.npy", G);
                }),
                "|G[4,1]|"));
  CHECK(refuses(edited("gram_nan", [&](const std::string& d) {
                  Eigen::MatrixXd G = st.gram();
                  G(3, 0) = std::numeric_limits<double>::quiet_NaN();
                  rcpu::io::save_npy(d + "/gram.npy", G);
                }),
                "gram.npy has a non-finite entry nan at [3,0]"));
  // Zero tokens with sums: one prefix, not two.
  {
    const std::string d = edited("zero_tokens", [&](const std::string& d) { set_tokens(d, 0); });
    try {
      rcpu::io::load_statistics<double>(d);
      FAIL("loaded");
    } catch (const rcpu::invalid_argument& e) {
      const std::string what = e.what();
      CHECK(what.find("tokens = 0") != std::string::npos);
      CHECK(what.find("statistics: ") == what.rfind("statistics: "));
    }
  }
  // Editing a file without the marker is corruption: the checksum names the file.
  rcpu::io::save_statistics(dir / "edited", st);
  rcpu::io::save_npy_vector(dir / "edited/abs_sum.npy", vec(2 * st.abs_sum()));
  CHECK(refuses(dir / "edited", "abs_sum.npy is corrupted or was edited"));
  // Untouched statistics pass every relation, a float-summed Gram (input_blocks) included.
  rcpu::Statistics<float> sf(6, rcpu::GramMode::full, rcpu::GramPrecision::input_blocks);
  sf.update(X.cast<float>());
  rcpu::io::save_statistics(dir / "float", sf);
  CHECK(rcpu::io::load_statistics<float>(dir / "float").tokens() == 300);
  rcpu::io::save_statistics(dir / "good", st);
  CHECK(rcpu::io::load_statistics<double>(dir / "good").tokens() == 300);
}

TEST_CASE("version 1 directories, written without checksums, still load", "[statistics_io]") {
  TempDir dir("stats");
  rcpu::Statistics<double> st(4);
  st.update(activations(29, 120, 4));
  rcpu::io::save_statistics(dir / "v1", st);
  rcpu_test::write_bytes(dir / "v1/rcpu_statistics.txt",
                         "format rcpu-statistics\nversion 1\nchannels 4\ntokens 120\ngram full\n");
  const auto back = rcpu::io::load_statistics<double>(dir / "v1");
  CHECK(back.tokens() == 120);
  CHECK(back.gram() == st.gram());
  // A version 2 marker without a checksum is refused.
  rcpu_test::write_bytes(dir / "v1/rcpu_statistics.txt",
                         "format rcpu-statistics\nversion 2\nchannels 4\ntokens 120\ngram full\n");
  CHECK(refuses(dir / "v1", "lacks the checksum of tokens.npy"));
}

TEST_CASE("fuzz findings: Cauchy-Schwarz with huge diagonals, and the Gram mode of zero channels", "[statistics_io]") {
  TempDir dir("stats");
  // One token x = (1e100, 1e100): G_ii = 1e200, whose product overflows; an off-diagonal 1e300 is
  // impossible and must be refused (fuzz/corpus/statistics/regress_gram_cauchy_schwarz_overflow_v1.seed).
  const Eigen::VectorXd x = Eigen::VectorXd::Constant(2, 1e100);
  Eigen::MatrixXd G = x * x.transpose();
  G(0, 1) = G(1, 0) = 1e300;
  const auto st = rcpu::Statistics<double>::from_sums(1, x, x, x.cwiseAbs2(), Eigen::VectorXd::Zero(2), G);
  rcpu::io::save_statistics(dir / "huge", st);
  CHECK(refuses(dir / "huge", "Cauchy-Schwarz"));
  // Zero channels saved without a Gram load back without one (regress_gram_mode_zero_channels_diagonal_v1).
  rcpu::Statistics<double> none(0, rcpu::GramMode::diagonal);
  none.update(Eigen::MatrixXd(3, 0));
  rcpu::io::save_statistics(dir / "zero", none);
  const auto back = rcpu::io::load_statistics<double>(dir / "zero");
  CHECK_FALSE(back.has_gram());
  CHECK_NOTHROW(rcpu::Statistics<double>(0, rcpu::GramMode::diagonal).merge(back));
}
