// Oracles for the rcpu command-line tool, run as a program on files the tests write: its output equals
// rcpu::prune_layer's on the same inputs bit for bit, statistics saved per shard and merged give what
// one pass gives, and every bad input gets one line on stderr, a non-zero exit and no output written.
#include <rcpu/io/npy.hpp>
#include <rcpu/io/statistics_io.hpp>
#include <rcpu/rcpu.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "../io/io_support.hpp"
#include "support.hpp"

#ifndef RCPU_CLI
#error "RCPU_CLI must be the path of the rcpu program"
#endif

using rcpu_test::list_dir;
using rcpu_test::read_bytes;
using rcpu_test::rel_diff;
using rcpu_test::Rng;
using rcpu_test::TempDir;
using rcpu_test::write_bytes;

namespace {

struct Result {
  int status = -1;
  std::string out, err;
};

// Runs `rcpu <args>` with stdout and stderr captured into files of `dir`.
Result run_cli(const TempDir& dir, const std::string& args) {
  const std::string o = dir / "stdout.txt", e = dir / "stderr.txt";
  const std::string cmd = std::string("'") + RCPU_CLI + "' " + args + " >'" + o + "' 2>'" + e + "'";
  const int raw = std::system(cmd.c_str());
  Result r;
  r.status = (raw != -1 && WIFEXITED(raw)) ? WEXITSTATUS(raw) : -1;
  r.out = read_bytes(o);
  r.err = read_bytes(e);
  return r;
}

// The calibration data of every test: two shards, one float32 C-order little-endian with more than
// one 4096-row block, one float64 Fortran-order big-endian.
struct Data {
  Eigen::MatrixXd X1, X2;  // tokens x 24
  Eigen::MatrixXd W;       // 12 x 24
  Eigen::VectorXd b;

  Data() {
    Rng rng(31);
    const Eigen::MatrixXd mix = rng.normal(6, 24);
    const Eigen::RowVectorXd offset = 2.0 * rng.normal(1, 24);
    X1 = rng.normal(4500, 6) * mix + 0.4 * rng.normal(4500, 24);
    X1.rowwise() += offset;
    X1 = X1.cast<float>().cast<double>();  // exactly representable in the float32 file
    X2 = rng.normal(300, 6) * mix + 0.4 * rng.normal(300, 24);
    X2.rowwise() += offset;
    W = rng.normal(12, 24);
    b = rng.normal(12, 1);
  }

  void write(const TempDir& dir) const {
    rcpu::io::save_npy(dir / "X1.npy", X1.cast<float>());
    rcpu::io::NpyWriteOptions be;
    be.byte_order = rcpu::io::ByteOrder::big;
    be.fortran_order = true;
    rcpu::io::save_npy(dir / "X2.npy", X2, be);
    rcpu::io::save_npy(dir / "Wf.npy", W.cast<float>());
    rcpu::io::save_npy(dir / "Wd.npy", W);
    rcpu::io::save_npy_vector(dir / "bf.npy", b.cast<float>());
    rcpu::io::save_npy_vector(dir / "bd.npy", b);
  }

  // What the tool computes: X1 then X2, each streamed in blocks of Statistics::chunk_rows rows.
  rcpu::Statistics<double> stats(bool x1 = true, bool x2 = true) const {
    rcpu::Statistics<double> st(24);
    const rcpu::Index step = rcpu::Statistics<double>::chunk_rows;
    if (x1)
      for (rcpu::Index r = 0; r < X1.rows(); r += step) st.update(X1.middleRows(r, std::min(step, X1.rows() - r)));
    if (x2)
      for (rcpu::Index r = 0; r < X2.rows(); r += step) st.update(X2.middleRows(r, std::min(step, X2.rows() - r)));
    return st;
  }
};

double json_after_error(const std::string& json) {
  const std::string key = "\"after\": {\"relative_error\": ";
  const auto p = json.find(key);
  REQUIRE(p != std::string::npos);
  return std::strtod(json.c_str() + p + key.size(), nullptr);
}

std::vector<rcpu::Index> as_index(const std::vector<rcpu::Index>& v) { return v; }

bool one_line(const std::string& s) {
  return !s.empty() && s.back() == '\n' && s.find('\n') == s.size() - 1 && s.rfind("rcpu: ", 0) == 0;
}

}  // namespace

TEST_CASE("--help documents every option, --version prints the version", "[cli]") {
  TempDir dir("cli");
  const Result h = run_cli(dir, "--help");
  CHECK(h.status == 0);
  CHECK(h.err.empty());
  for (const char* opt : {"prune", "stats", "merge", "--weight", "--bias", "--acts", "--stats", "--ratio", "--kept-units",
                          "--head-dim", "--module", "--score", "--group-reduce", "--compensation", "--lambda",
                          "--scale-epsilon", "--proper-rotation", "--procrustes", "--geometry", "--save-stats",
                          "--diagonal", "--out", "--quiet", "--help", "--version", "weight.npy", "bias.npy",
                          "kept_columns.npy", "kept_units.npy", "scores.npy", "report.json", "Exit status"}) {
    INFO("option " << opt);
    CHECK(h.out.find(opt) != std::string::npos);
  }
  CHECK(run_cli(dir, "prune --help").out == h.out);
  const Result v = run_cli(dir, "--version");
  CHECK(v.status == 0);
  CHECK(v.out == "rcpu " + std::to_string(RCPU_VERSION_MAJOR) + "." + std::to_string(RCPU_VERSION_MINOR) + "." +
                     std::to_string(RCPU_VERSION_PATCH) + "\n");
}

TEMPLATE_TEST_CASE("prune writes what rcpu::prune_layer returns, bit for bit", "[cli]", float, double) {
  TempDir dir("cli");
  const Data data;
  data.write(dir);
  const rcpu::Statistics<double> st = data.stats();
  using Mat = Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic>;
  using Vec = Eigen::Matrix<TestType, Eigen::Dynamic, 1>;
  const Mat W = data.W.cast<TestType>();
  const Vec b = data.b.cast<TestType>();
  const std::string tag = std::is_same<TestType, float>::value ? "f" : "d";

  struct Config {
    rcpu::Index head_dim;
    rcpu::Score score;
    rcpu::Compensation comp;
    std::string extra;
    double lambda;
  };
  const std::vector<Config> configs = {
      {1, rcpu::Score::rcpu, rcpu::Compensation::rotation, "", 1e-4},
      {4, rcpu::Score::flap, rcpu::Compensation::rotation_scale, "", 1e-4},
      {1, rcpu::Score::wanda_sp, rcpu::Compensation::proximal_ridge, "--lambda 3.5", 3.5},
      {4, rcpu::Score::rcpu, rcpu::Compensation::rotation_ridge, "--lambda 2.5", 2.5},
      {4, rcpu::Score::rcpu, rcpu::Compensation::rotation_bias, "", 1e-4},
      {1, rcpu::Score::magnitude, rcpu::Compensation::bias, "", 1e-4},
      {1, rcpu::Score::rcpu_paper, rcpu::Compensation::least_squares, "", 1e-4},
      {3, rcpu::Score::wanda_sp_rcpu, rcpu::Compensation::none, "", 1e-4},
  };
  for (bool with_bias : {false, true})
    for (const Config& c : configs) {
      INFO("head_dim " << c.head_dim << ", " << rcpu::to_string(c.score) << ", " << rcpu::to_string(c.comp)
                       << (with_bias ? ", with bias" : ""));
      const std::string out = dir / "out";
      const std::string args = "prune --weight " + (dir / ("W" + tag + ".npy")) +
                               (with_bias ? " --bias " + (dir / ("b" + tag + ".npy")) : std::string()) + " --acts " +
                               (dir / "X1.npy") + " " + (dir / "X2.npy") + " --ratio 0.34 --head-dim " +
                               std::to_string(c.head_dim) + " --score " + rcpu::to_string(c.score) +
                               " --compensation " + rcpu::to_string(c.comp) + " " + c.extra + " --quiet --out " + out;
      const Result r = run_cli(dir, args);
      REQUIRE(r.status == 0);
      CHECK(r.err.empty());
      CHECK(r.out.empty());  // --quiet

      rcpu::PruneOptions o = c.head_dim > 1 ? rcpu::PruneOptions::heads(c.head_dim, 0.34) : rcpu::PruneOptions::channels(0.34);
      o.score = c.score;
      o.compensation = c.comp;
      o.compensation_options.lambda = c.lambda;
      const auto ref = with_bias ? rcpu::prune_layer(W, b, st, o) : rcpu::prune_layer(W, st, o);

      CHECK(rcpu::io::NpyReader(out + "/weight.npy").header().dtype ==
            (std::is_same<TestType, float>::value ? rcpu::io::NpyDtype::float32 : rcpu::io::NpyDtype::float64));
      CHECK(rcpu::io::load_npy_matrix<TestType>(out + "/weight.npy") == ref.weight);
      CHECK(rcpu::io::load_npy_indices(out + "/kept_columns.npy") == ref.kept_columns);
      CHECK(rcpu::io::load_npy_indices(out + "/kept_units.npy") == ref.kept_units);
      CHECK(rcpu::io::load_npy_vector<double>(out + "/scores.npy") == ref.unit_scores);
      if (ref.has_bias()) {
        CHECK(rcpu::io::load_npy_vector<TestType>(out + "/bias.npy") == ref.bias);
      } else {
        CHECK_FALSE(std::filesystem::exists(out + "/bias.npy"));  // not even a stale one from a run before
      }
      const std::string json = read_bytes(out + "/report.json");
      CHECK(json.find("\"info\": \"success\"") != std::string::npos);
      CHECK(json.find("\"tokens\": 4800") != std::string::npos);
      CHECK(json_after_error(json) == ref.report.after.relative_error);
      for (const auto& f : list_dir(out)) CHECK(f.find(".rcpu-part") == std::string::npos);
    }
}

TEST_CASE("prune with explicit kept units equals compensate on them", "[cli]") {
  TempDir dir("cli");
  const Data data;
  data.write(dir);
  rcpu::io::save_npy_indices(dir / "keep.npy", {5, 0, 2});  // heads of 4 columns, any order
  const Result r = run_cli(dir, "prune --weight " + (dir / "Wd.npy") + " --acts " + (dir / "X1.npy") + " " +
                                    (dir / "X2.npy") + " --kept-units " + (dir / "keep.npy") +
                                    " --head-dim 4 --compensation rotation --out " + (dir / "out"));
  REQUIRE(r.status == 0);
  CHECK(r.out.find("kept 3 of 6 heads") != std::string::npos);
  const std::vector<rcpu::Index> cols = {0, 1, 2, 3, 8, 9, 10, 11, 20, 21, 22, 23};
  const auto ref = rcpu::compensate(data.W, data.stats(), cols, rcpu::Compensation::rotation);
  CHECK(rcpu::io::load_npy_matrix<double>(dir / "out/weight.npy") == ref.weight);
  CHECK(rcpu::io::load_npy_indices(dir / "out/kept_units.npy") == as_index({0, 2, 5}));
  CHECK_FALSE(std::filesystem::exists(dir / "out/scores.npy"));
}

TEST_CASE("statistics saved per shard and merged equal one pass", "[cli]") {
  TempDir dir("cli");
  const Data data;
  data.write(dir);
  REQUIRE(run_cli(dir, "stats --acts " + (dir / "X1.npy") + " --out " + (dir / "s1")).status == 0);
  REQUIRE(run_cli(dir, "stats --quiet --acts " + (dir / "X2.npy") + " --out " + (dir / "s2")).status == 0);
  const Result m = run_cli(dir, "merge " + (dir / "s1") + " " + (dir / "s2") + " --out " + (dir / "s12"));
  REQUIRE(m.status == 0);
  CHECK(m.out.find("4800 tokens x 24 channels") != std::string::npos);

  // The saved shards are exactly the library's statistics of each file, and the merge is Statistics::merge.
  const auto s1 = rcpu::io::load_statistics<double>(dir / "s1");
  const auto s2 = rcpu::io::load_statistics<double>(dir / "s2");
  const auto ref1 = data.stats(true, false), ref2 = data.stats(false, true);
  CHECK(s1.sum() == ref1.sum());
  CHECK(s1.gram() == ref1.gram());
  CHECK(s2.m2() == ref2.m2());
  rcpu::Statistics<double> merged(24);
  merged.merge(s1).merge(s2);
  const auto s12 = rcpu::io::load_statistics<double>(dir / "s12");
  CHECK(s12.tokens() == 4800);
  CHECK(s12.sum() == merged.sum());
  CHECK(s12.m2() == merged.m2());
  CHECK(s12.gram() == merged.gram());
  // One pass over both files, to rounding.
  const auto all = data.stats();
  CHECK(rel_diff(s12.gram(), all.gram()) <= 1e-14);
  CHECK(rel_diff(s12.variance(), all.variance()) <= 1e-13);

  // Pruning from the merged statistics, from one pass, and from a mix give the same layer.
  const std::string common = " --weight " + (dir / "Wd.npy") + " --ratio 0.25 --compensation rotation_bias --quiet";
  REQUIRE(run_cli(dir, "prune" + common + " --stats " + (dir / "s12") + " --out " + (dir / "o_merged")).status == 0);
  REQUIRE(run_cli(dir, "prune" + common + " --acts " + (dir / "X1.npy") + " " + (dir / "X2.npy") + " --out " +
                           (dir / "o_pass") + " --save-stats " + (dir / "s_saved"))
              .status == 0);
  REQUIRE(run_cli(dir, "prune" + common + " --stats " + (dir / "s1") + " --acts " + (dir / "X2.npy") + " --out " +
                           (dir / "o_mixed"))
              .status == 0);
  const Eigen::MatrixXd w_pass = rcpu::io::load_npy_matrix<double>(dir / "o_pass/weight.npy");
  CHECK(rcpu::io::load_npy_indices(dir / "o_merged/kept_columns.npy") ==
        rcpu::io::load_npy_indices(dir / "o_pass/kept_columns.npy"));
  // The merged Gram differs from the one-pass Gram by rounding (1e-14 above); the rotation amplifies that
  // by the conditioning of M (clang's ASan build measured 1.1e-11 here), hence 1e-10.
  CHECK(rel_diff(rcpu::io::load_npy_matrix<double>(dir / "o_merged/weight.npy"), w_pass) <= 1e-10);
  CHECK(rel_diff(rcpu::io::load_npy_matrix<double>(dir / "o_mixed/weight.npy"), w_pass) <= 1e-10);
  CHECK(rel_diff(rcpu::io::load_npy_vector<double>(dir / "o_merged/bias.npy"),
                 rcpu::io::load_npy_vector<double>(dir / "o_pass/bias.npy")) <= 1e-10);
  // --save-stats wrote the statistics of the pass.
  const auto saved = rcpu::io::load_statistics<double>(dir / "s_saved");
  CHECK(saved.sum() == all.sum());
  CHECK(saved.gram() == all.gram());
}

TEST_CASE("diagonal statistics serve the scores, none and bias, and nothing else", "[cli]") {
  TempDir dir("cli");
  const Data data;
  data.write(dir);
  REQUIRE(run_cli(dir, "stats --diagonal --acts " + (dir / "X1.npy") + " --out " + (dir / "sd")).status == 0);
  CHECK_FALSE(std::filesystem::exists(dir / "sd/gram.npy"));
  const Result ok = run_cli(dir, "prune --weight " + (dir / "Wd.npy") + " --stats " + (dir / "sd") +
                                     " --ratio 0.25 --compensation bias --out " + (dir / "o"));
  REQUIRE(ok.status == 0);
  rcpu::Statistics<double> diag(24, rcpu::GramMode::diagonal);
  diag.update(data.X1);
  rcpu::PruneOptions o = rcpu::PruneOptions::channels(0.25);
  o.compensation = rcpu::Compensation::bias;
  const auto ref = rcpu::prune_layer(data.W, diag, o);
  CHECK(rcpu::io::load_npy_indices(dir / "o/kept_columns.npy") == ref.kept_columns);
  CHECK(rel_diff(rcpu::io::load_npy_vector<double>(dir / "o/bias.npy"), ref.bias) <= 1e-14);
  CHECK(read_bytes(dir / "o/report.json").find("\"relative_error\": null") != std::string::npos);
  const Result bad = run_cli(dir, "prune --weight " + (dir / "Wd.npy") + " --stats " + (dir / "sd") +
                                      " --ratio 0.25 --compensation rotation --out " + (dir / "o2"));
  CHECK(bad.status == 1);
  CHECK(one_line(bad.err));
  CHECK(bad.err.find("no Gram") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir / "o2"));
}

TEST_CASE("every bad input: one line on stderr, a non-zero exit, nothing written", "[cli]") {
  TempDir dir("cli");
  const Data data;
  data.write(dir);
  const std::string W = dir / "Wf.npy", X1 = dir / "X1.npy", X2 = dir / "X2.npy", out = dir / "out";
  // An earlier successful run: its outputs must survive every failed run below untouched.
  REQUIRE(run_cli(dir, "prune --weight " + W + " --acts " + X1 + " --ratio 0.25 --out " + out).status == 0);
  REQUIRE(run_cli(dir, "stats --acts " + X1 + " --out " + (dir / "s1")).status == 0);
  const std::vector<std::string> out_files = list_dir(out);
  const std::string out_weight = read_bytes(out + "/weight.npy");

  // Bad files.
  Rng rng(32);
  auto npy = [&](const std::string& name, const Eigen::MatrixXd& m) {
    rcpu::io::save_npy(dir / name, m);
    return dir / name;
  };
  auto raw = [&](const std::string& name, const std::string& bytes) {
    write_bytes(dir / name, bytes);
    return dir / name;
  };
  Eigen::MatrixXd w_nan = data.W;
  w_nan(3, 4) = std::numeric_limits<double>::quiet_NaN();
  Eigen::MatrixXd x_nan = data.X1;
  x_nan(4500 - 7, 2) = std::numeric_limits<double>::infinity();  // in the second 4096-row block
  const std::string w_bytes = read_bytes(W);
  const std::string header3d = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 24), }";
  auto make_npy = [](const std::string& dict, std::size_t data_bytes) {
    std::string h = dict;
    while ((10 + h.size() + 1) % 64 != 0) h += ' ';
    h += '\n';
    std::string s = "\x93NUMPY";
    s += char(1);
    s += char(0);
    s += char(h.size() & 0xff);
    s += char(h.size() >> 8);
    return s + h + std::string(data_bytes, '\0');
  };
  const std::string w_nan_f = npy("w_nan.npy", w_nan);
  const std::string w_3d = raw("w_3d.npy", make_npy(header3d, 2 * 3 * 24 * 4));
  const std::string w_1d = raw("w_1d.npy", make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (24,), }", 192));
  const std::string w_int = raw("w_int.npy", make_npy("{'descr': '<i8', 'fortran_order': False, 'shape': (12, 24), }", 12 * 24 * 8));
  const std::string w_i2 = raw("w_i2.npy", make_npy("{'descr': '<i2', 'fortran_order': False, 'shape': (12, 24), }", 12 * 24 * 2));
  const std::string w_empty = raw("w_empty.npy", make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 24), }", 0));
  const std::string w_trunc = raw("w_trunc.npy", w_bytes.substr(0, w_bytes.size() - 5));
  const std::string w_text = raw("w_text.npy", "this is not a numpy file at all");
  const std::string b_len = npy("b_len.npy", Eigen::MatrixXd(rng.normal(11, 1)));
  Eigen::VectorXd b_nan = data.b;
  b_nan(0) = std::numeric_limits<double>::quiet_NaN();
  rcpu::io::save_npy_vector(dir / "b_nan.npy", b_nan);
  const std::string b_2d = npy("b_2d.npy", Eigen::MatrixXd(rng.normal(3, 4)));
  const std::string x_chan = npy("x_chan.npy", Eigen::MatrixXd(rng.normal(50, 23)));
  const std::string x_3d = raw("x_3d.npy", make_npy(header3d, 2 * 3 * 24 * 4));
  const std::string x_int = raw("x_int.npy", make_npy("{'descr': '<i8', 'fortran_order': False, 'shape': (5, 24), }", 5 * 24 * 8));
  const std::string x_trunc = raw("x_trunc.npy", read_bytes(X2).substr(0, read_bytes(X2).size() - 1));
  const std::string x_nan_f = npy("x_nan.npy", x_nan);
  const std::string x_empty = raw("x_empty.npy", make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 24), }", 0));
  Rng rng2(33);
  rcpu::Statistics<double> st16(16);
  st16.update(rng2.normal(40, 16));
  rcpu::io::save_statistics(dir / "s16", st16);
  rcpu::Statistics<double> sdiag(24, rcpu::GramMode::diagonal);
  sdiag.update(data.X2);
  rcpu::io::save_statistics(dir / "sdiag", sdiag);
  rcpu::io::save_npy_indices(dir / "k_range.npy", {0, 24});
  rcpu::io::save_npy_indices(dir / "k_dup.npy", {3, 3});
  rcpu::io::save_npy_vector(dir / "k_float.npy", Eigen::Vector2d(1, 2));
  rcpu::io::save_npy(dir / "k_2d.npy", Eigen::Matrix<std::int64_t, 2, 2>::Zero());
  raw("k_empty.npy", make_npy("{'descr': '<i8', 'fortran_order': False, 'shape': (0,), }", 0));
  raw("a_file", "not a directory");
  std::filesystem::create_directory(dir / "busy");
  write_bytes(dir / "busy/mine.txt", "keep");

  const std::string P = "prune --weight " + W + " --acts " + X1 + " --out " + out;
  struct Case {
    std::string args;
    int status;
    std::string phrase;
  };
  const std::vector<Case> cases = {
      // Usage errors: exit 2.
      {"", 2, "no command"},
      {"frobnicate", 2, "unknown command"},
      {"prune --weight " + W + " --acts " + X1 + " --ratio 0.2", 2, "--out"},
      {"prune --acts " + X1 + " --ratio 0.2 --out " + out, 2, "--weight"},
      {"prune --weight " + W + " --ratio 0.2 --out " + out, 2, "--acts or --stats"},
      {P, 2, "exactly one of --ratio and --kept-units"},
      {P + " --ratio 0.2 --kept-units " + (dir / "k_dup.npy"), 2, "exactly one"},
      {P + " --ratio 1.5", 2, "outside [0, 1)"},
      {P + " --ratio -0.1", 2, "outside [0, 1)"},
      {P + " --ratio abc", 2, "not a finite number"},
      {P + " --ratio nan", 2, "not a finite number"},
      {P + " --ratio 0.2 --ratio 0.3", 2, "twice"},
      {P + " --ratio", 2, "needs a value"},
      {P + " --ratio 0.2 --bogus", 2, "unknown option '--bogus'"},
      {P + " --ratio 0.2 stray", 2, "unexpected argument 'stray'"},
      {P + " --ratio 0.2 --head-dim 0", 2, "--head-dim"},
      {P + " --ratio 0.2 --head-dim 2.5", 2, "not an integer"},
      {P + " --ratio 0.2 --score best", 2, "unknown score 'best'"},
      {P + " --ratio 0.2 --compensation magic", 2, "unknown compensation 'magic'"},
      {P + " --ratio 0.2 --module ffn", 2, "--module"},
      {P + " --ratio 0.2 --group-reduce max", 2, "--group-reduce"},
      {P + " --ratio 0.2 --procrustes qr", 2, "--procrustes"},
      {P + " --ratio 0.2 --lambda -1", 2, "--lambda"},
      {P + " --ratio 0.2 --scale-epsilon -1", 2, "--scale-epsilon"},
      {"stats --out " + (dir / "s_new"), 2, "--acts or --stats"},
      {"stats --acts " + X1, 2, "--out"},
      {"merge --out " + (dir / "s_new"), 2, "at least one"},
      {"merge " + (dir / "s1"), 2, "--out"},
      // Bad files and values: exit 1.
      {"prune --weight " + (dir / "missing.npy") + " --acts " + X1 + " --ratio 0.2 --out " + out, 1, "cannot open"},
      {"prune --weight " + w_text + " --acts " + X1 + " --ratio 0.2 --out " + out, 1, "bad magic"},
      {"prune --weight " + w_3d + " --acts " + X1 + " --ratio 0.2 --out " + out, 1, "(2, 3, 24)"},
      {"prune --weight " + w_1d + " --acts " + X1 + " --ratio 0.2 --out " + out, 1, "2-D"},
      {"prune --weight " + w_int + " --acts " + X1 + " --ratio 0.2 --out " + out, 1, "float32 or float64"},
      {"prune --weight " + w_i2 + " --acts " + X1 + " --ratio 0.2 --out " + out, 1, "unsupported dtype '<i2'"},
      {"prune --weight " + w_nan_f + " --acts " + X1 + " --ratio 0.2 --out " + out, 1, "NaN"},
      {"prune --weight " + w_trunc + " --acts " + X1 + " --ratio 0.2 --out " + out, 1, "truncated"},
      {"prune --weight " + w_empty + " --acts " + X1 + " --ratio 0.2 --out " + out, 1, "empty"},
      {P + " --ratio 0.2 --bias " + b_len, 1, "11 entries"},
      {P + " --ratio 0.2 --bias " + (dir / "b_nan.npy"), 1, "NaN"},
      {P + " --ratio 0.2 --bias " + b_2d, 1, "vector"},
      {P + " --ratio 0.2 --head-dim 5", 1, "does not divide"},
      {"prune --weight " + W + " --acts " + x_chan + " --ratio 0.2 --out " + out, 1, "23 channels"},
      {"prune --weight " + W + " --acts " + X1 + " " + x_chan + " --ratio 0.2 --out " + out, 1, "23 channels"},
      {"prune --weight " + W + " --acts " + x_3d + " --ratio 0.2 --out " + out, 1, "2-D"},
      {"prune --weight " + W + " --acts " + x_int + " --ratio 0.2 --out " + out, 1, "float32 or float64"},
      {"prune --weight " + W + " --acts " + X1 + " " + x_trunc + " --ratio 0.2 --out " + out, 1, "truncated"},
      {"prune --weight " + W + " --acts " + x_nan_f + " --ratio 0.2 --out " + out, 1, "non-finite"},
      {"prune --weight " + W + " --acts " + x_empty + " --ratio 0.2 --out " + out, 1, "no tokens"},
      {"prune --weight " + W + " --stats " + (dir / "nowhere") + " --ratio 0.2 --out " + out, 1, "not a statistics"},
      {"prune --weight " + W + " --stats " + (dir / "s16") + " --ratio 0.2 --out " + out, 1, "16 channels"},
      {"prune --weight " + W + " --stats " + (dir / "sdiag") + " --ratio 0.2 --out " + out, 1, "no Gram"},
      {P + " --kept-units " + (dir / "k_range.npy"), 1, "outside [0, 24)"},
      {P + " --kept-units " + (dir / "k_dup.npy"), 1, "repeats index 3"},
      {P + " --kept-units " + (dir / "k_float.npy"), 1, "integer"},
      {P + " --kept-units " + (dir / "k_2d.npy"), 1, "1-D"},
      {P + " --kept-units " + (dir / "k_empty.npy"), 1, "empty"},
      {"prune --weight " + W + " --acts " + X1 + " --ratio 0.2 --out " + (dir / "a_file"), 1, "not a directory"},
      {"stats --acts " + X1 + " " + x_chan + " --out " + (dir / "s_new"), 1, "23 channels"},
      {"stats --acts " + x_nan_f + " --out " + (dir / "s_new"), 1, "non-finite"},
      {"stats --acts " + X1 + " --out " + (dir / "busy"), 1, "refusing"},
      {"stats --acts " + X1 + " --out " + (dir / "a_file"), 1, "not a directory"},
      {"merge " + (dir / "s1") + " " + (dir / "s16") + " --out " + (dir / "s_new"), 1, "16 channels"},
      {"merge " + (dir / "s1") + " " + (dir / "nowhere") + " --out " + (dir / "s_new"), 1, "not a statistics"},
  };
  const std::vector<std::string> top_before = list_dir(dir.str());
  for (const Case& c : cases) {
    INFO("rcpu " << c.args);
    const Result r = run_cli(dir, c.args);
    INFO("stderr: " << r.err);
    CHECK(r.status == c.status);
    CHECK(one_line(r.err));
    CHECK(r.err.find(c.phrase) != std::string::npos);
    CHECK(r.out.empty());
    // Nothing written: the earlier outputs are intact, no new file or directory appeared anywhere.
    CHECK(list_dir(out) == out_files);
    CHECK(read_bytes(out + "/weight.npy") == out_weight);
    CHECK(list_dir(dir.str()) == top_before);
    CHECK(list_dir(dir / "busy") == std::vector<std::string>{"mine.txt"});
    CHECK(read_bytes(dir / "a_file") == "not a directory");
  }
}

TEST_CASE("a run whose output cannot be published changes nothing, --save-stats included", "[cli]") {
  // Each output path of a run with a bias, scores and --save-stats is blocked in turn by something the
  // tool must not replace (a directory where a file goes, a foreign directory where the statistics
  // go). The failed run must leave every earlier output, and the statistics directory, as they were.
  TempDir dir("cli");
  const Data data;
  data.write(dir);
  const std::string W = dir / "Wf.npy", X1 = dir / "X1.npy", out = dir / "out", saved = dir / "saved";
  const std::string args = "prune --weight " + W + " --bias " + (dir / "bf.npy") + " --acts " + X1 +
                           " --compensation rotation_bias --save-stats " + saved + " --out " + out;
  REQUIRE(run_cli(dir, args + " --ratio 0.25").status == 0);  // the earlier run
  auto tree = [&] {  // everything but run_cli's captured stdout and stderr
    auto s = rcpu_test::snapshot(dir.str());
    s.erase("stdout.txt");
    s.erase("stderr.txt");
    return s;
  };
  for (const std::string blocked : {"weight.npy", "bias.npy", "kept_columns.npy", "kept_units.npy", "scores.npy",
                                    "report.json", "saved"}) {
    INFO("blocked: " << blocked);
    const std::string path = blocked == "saved" ? saved + "_other" : out + "/" + blocked;
    std::string run = args;
    if (blocked == "saved") {
      std::filesystem::create_directories(path);
      write_bytes(path + "/mine.txt", "not statistics");
      run = "prune --weight " + W + " --bias " + (dir / "bf.npy") + " --acts " + X1 +
            " --compensation rotation_bias --save-stats " + path + " --out " + out;
    } else {
      std::filesystem::rename(path, path + ".moved");
      std::filesystem::create_directories(path + "/inside");
    }
    const auto before = tree();
    const Result r = run_cli(dir, run + " --ratio 0.5");
    INFO("stderr: " << r.err);
    CHECK(r.status == 1);
    CHECK(one_line(r.err));
    CHECK(r.err.find("refusing") != std::string::npos);
    CHECK(tree() == before);
    if (blocked != "saved") {
      std::filesystem::remove_all(path);
      std::filesystem::rename(path + ".moved", path);
    }
  }
  // A failed computation writes no statistics either.
  const auto before = tree();
  const Result r = run_cli(dir, "prune --weight " + W + " --acts " + X1 + " --kept-units " + (dir / "missing.npy") +
                                    " --save-stats " + (dir / "fresh") + " --out " + (dir / "fresh_out"));
  CHECK(r.status == 1);
  CHECK(tree() == before);
}

TEST_CASE("fewer calibration tokens than kept columns: a warning and underdetermined in the report", "[cli]") {
  TempDir dir("cli");
  const Data data;
  data.write(dir);
  rcpu::io::save_npy(dir / "few.npy", data.X2.topRows(10));  // 10 tokens, 18 kept columns of 24
  const Result r = run_cli(dir, "prune --weight " + (dir / "Wd.npy") + " --acts " + (dir / "few.npy") +
                                    " --ratio 0.25 --out " + (dir / "o"));
  INFO("stderr: " << r.err);
  CHECK(r.status == 0);
  CHECK(r.err.find("warning: 10 calibration tokens < 18 kept columns") != std::string::npos);
  CHECK(read_bytes(dir / "o/report.json").find("\"underdetermined\": true") != std::string::npos);
  const Result ok = run_cli(dir, "prune --weight " + (dir / "Wd.npy") + " --acts " + (dir / "X2.npy") +
                                     " --ratio 0.25 --out " + (dir / "o2"));
  CHECK(ok.status == 0);
  CHECK(ok.err.find("warning") == std::string::npos);
  CHECK(read_bytes(dir / "o2/report.json").find("\"underdetermined\": false") != std::string::npos);
}
