// rcpu's Python module (nanobind): the statistics, scores, selection, Procrustes and compensations of
// rcpu/rcpu.hpp for numpy arrays and torch CPU tensors (anything with DLPack or the buffer protocol).
// Arrays are read where they lie: a C- or Fortran-ordered float32/float64 block is never copied;
// float16/bfloat16 blocks are widened in chunks of Statistics::chunk_rows rows. The GIL is released
// while rcpu works. rcpu::invalid_argument derives from std::invalid_argument, which nanobind raises
// as ValueError with the same message.
#include <nanobind/eigen/dense.h>
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <rcpu/io/statistics_io.hpp>
#include <rcpu/rcpu.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

namespace nb = nanobind;
using namespace nb::literals;
using rcpu::Index;

namespace {

using Array = nb::ndarray<nb::ro, nb::device::cpu>;

enum class Kind { f16, bf16, f32, f64 };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::f16: return "float16";
    case Kind::bf16: return "bfloat16";
    case Kind::f32: return "float32";
    case Kind::f64: return "float64";
  }
  return "?";
}

std::string shape_of(const Array& a) {
  std::ostringstream s;
  s << "(";
  for (std::size_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}

[[noreturn]] void fail(const std::string& what) { throw rcpu::invalid_argument(what); }

Kind kind_of(const Array& a, const char* name) {
  const nb::dlpack::dtype t = a.dtype();
  if (t.lanes == 1) {
    if (t.code == std::uint8_t(nb::dlpack::dtype_code::Float)) {
      if (t.bits == 32) return Kind::f32;
      if (t.bits == 64) return Kind::f64;
      if (t.bits == 16) return Kind::f16;
    }
    if (t.code == std::uint8_t(nb::dlpack::dtype_code::Bfloat) && t.bits == 16) return Kind::bf16;
  }
  fail(std::string(name) + ": dtype (code " + std::to_string(int(t.code)) + ", " + std::to_string(int(t.bits)) +
       " bits) is not float16, bfloat16, float32 or float64");
}

template <typename T>
using Map1 = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>, 0, Eigen::InnerStride<Eigen::Dynamic>>;

void require_ndim(const Array& a, std::size_t nd, const char* name) {
  if (a.ndim() != nd)
    fail(std::string(name) + " has shape " + shape_of(a) + ": expected a " + std::to_string(nd) + "-D array");
}

template <typename T>
Map1<T> map1(const Array& a) {
  return Map1<T>(static_cast<const T*>(a.data()), Index(a.shape(0)), Eigen::InnerStride<Eigen::Dynamic>(Index(a.stride(0))));
}

// A 2-D block BLAS can read where it lies (strides in elements): unit stride along rows and a pitch of
// at least a row (C order, or rows sliced out of it), or the same along columns (Fortran order).
// Broadcast (stride 0), reversed (negative) and overlapping views are neither.
bool row_major_block(const Array& a) {
  return (a.shape(1) <= 1 || a.stride(1) == 1) && (a.shape(0) <= 1 || a.stride(0) >= std::int64_t(a.shape(1)));
}
bool col_major_block(const Array& a) {
  return (a.shape(0) <= 1 || a.stride(0) == 1) && (a.shape(1) <= 1 || a.stride(1) >= std::int64_t(a.shape(0)));
}
bool blas_block(const Array& a) { return a.shape(0) == 0 || a.shape(1) == 0 || row_major_block(a) || col_major_block(a); }

// A matrix argument (W, M) as Eigen::Ref<const Matrix<T>>: in place when Fortran-ordered, else one
// copy (any strides, read element by element; W is small next to what is done with it).
template <typename T, typename Fn>
auto matrix_as(const Array& a, Fn&& fn) {
  using M = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  const Index r = Index(a.shape(0)), c = Index(a.shape(1));
  const T* p = static_cast<const T*>(a.data());
  if (r > 0 && c > 0 && col_major_block(a)) {
    const Eigen::Map<const M, 0, Eigen::OuterStride<>> m(p, r, c, Eigen::OuterStride<>(c <= 1 ? r : Index(a.stride(1))));
    return fn(Eigen::Ref<const M>(m));
  }
  M copy(r, c);
  const Index s0 = Index(a.stride(0)), s1 = Index(a.stride(1));
  for (Index j = 0; j < c; ++j)
    for (Index i = 0; i < r; ++i) copy(i, j) = p[i * s0 + j * s1];
  return fn(Eigen::Ref<const M>(copy));
}

// A matrix argument of float32 or float64 (W, M): 2-D; finite values are checked by rcpu.
template <typename Fn>
auto with_matrix(const Array& a, const char* name, Fn&& fn) {
  require_ndim(a, 2, name);
  switch (kind_of(a, name)) {
    case Kind::f32: return matrix_as<float>(a, fn);
    case Kind::f64: return matrix_as<double>(a, fn);
    default:
      fail(std::string(name) + " is " + kind_name(kind_of(a, name)) + ": pass float32 or float64 (e.g. W.float())");
  }
}

Eigen::VectorXd vector_arg(const Array& a, const char* name) {
  require_ndim(a, 1, name);
  switch (kind_of(a, name)) {
    case Kind::f32: return map1<float>(a).cast<double>();
    case Kind::f64: return map1<double>(a);
    default: fail(std::string(name) + " is " + kind_name(kind_of(a, name)) + " of shape " + shape_of(a) + ": must be float32 or float64");
  }
}

// IEEE half and bfloat16 to float (exact: every value of both is a float).
float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);  // inf, nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    exp = 113;
    while ((man & 0x400u) == 0) {
      man <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((man & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
float bf16_to_float(std::uint16_t h) {
  const std::uint32_t bits = std::uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Element `off` (in elements) of an array of kind k, as T: the one place that switches on the dtype
// element by element (half and bfloat16 widen exactly, Inf and NaN included).
template <typename T>
T element(const void* data, Kind k, Index off) {
  switch (k) {
    case Kind::f16: return T(half_to_float(static_cast<const std::uint16_t*>(data)[off]));
    case Kind::bf16: return T(bf16_to_float(static_cast<const std::uint16_t*>(data)[off]));
    case Kind::f32: return T(static_cast<const float*>(data)[off]);
    case Kind::f64: return T(static_cast<const double*>(data)[off]);
  }
  return T(0);
}

// The first non-finite value of a 2-D array (row, column), or (-1, -1): checked before a widened update
// so that the chunks can go straight into the statistics (nothing else can fail once the block is finite).
std::pair<Index, Index> first_non_finite(const Array& a, Kind k) {
  const Index r = Index(a.shape(0)), c = Index(a.shape(1)), s0 = Index(a.stride(0)), s1 = Index(a.stride(1));
  for (Index i = 0; i < r; ++i)
    for (Index j = 0; j < c; ++j)
      if (!std::isfinite(element<double>(a.data(), k, i * s0 + j * s1))) return {i, j};
  return {-1, -1};
}

// Rows [r0, r0 + nr) of a 2-D array of any supported dtype, widened to T.
template <typename T>
void widen_rows(const Array& a, Kind k, Index r0, Index nr, Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>& out) {
  const Index c = Index(a.shape(1)), s0 = Index(a.stride(0)), s1 = Index(a.stride(1));
  out.resize(nr, c);
  for (Index i = 0; i < nr; ++i)
    for (Index j = 0; j < c; ++j) out(i, j) = element<T>(a.data(), k, (r0 + i) * s0 + j * s1);
}

// fn(map) with a map of unit inner stride (known at compile time) and the array's pitch.
template <typename T, typename Fn>
void with_block(const Array& a, Fn&& fn) {
  const Index r = Index(a.shape(0)), c = Index(a.shape(1));
  const T* p = static_cast<const T*>(a.data());
  if (row_major_block(a)) {
    using M = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    fn(Eigen::Map<const M, 0, Eigen::OuterStride<>>(p, r, c, Eigen::OuterStride<>(r <= 1 ? c : Index(a.stride(0)))));
  } else {
    using M = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
    fn(Eigen::Map<const M, 0, Eigen::OuterStride<>>(p, r, c, Eigen::OuterStride<>(c <= 1 ? r : Index(a.stride(1)))));
  }
}

// rcpu::Statistics for blocks of one dtype, float32 or float64 (fixed by the constructor or by the
// first update); sums in double either way.
class PyStatistics {
 public:
  PyStatistics(Index channels, bool gram, std::optional<std::string> dtype) : m_channels(channels), m_gram(gram) {
    if (channels < 0) fail("Statistics: channels = " + std::to_string(channels) + " must be >= 0");
    if (dtype) m_stats = make(parse_dtype(*dtype));
  }
  PyStatistics(rcpu::Statistics<float>&& s) : m_channels(s.channels()), m_gram(s.has_gram()), m_stats(std::move(s)) {}
  PyStatistics(rcpu::Statistics<double>&& s) : m_channels(s.channels()), m_gram(s.has_gram()), m_stats(std::move(s)) {}

  static Kind parse_dtype(const std::string& d) {
    if (d == "float32" || d == "f4" || d == "<f4") return Kind::f32;
    if (d == "float64" || d == "f8" || d == "<f8" || d == "double") return Kind::f64;
    fail("Statistics: dtype '" + d + "' must be 'float32' or 'float64' (the dtype of the blocks; sums are double)");
  }

  std::string dtype() const {
    if (std::holds_alternative<std::monostate>(m_stats)) return "unset";
    return std::holds_alternative<rcpu::Statistics<float>>(m_stats) ? "float32" : "float64";
  }

  void update(const Array& x) {
    require_ndim(x, 2, "Statistics.update: x");
    const Kind k = kind_of(x, "Statistics.update: x");
    if (Index(x.shape(1)) != m_channels)
      fail("Statistics.update: x has shape " + shape_of(x) + " but the statistics have " + std::to_string(m_channels) +
           " channels (x: tokens x channels)");
    if (!blas_block(x))
      fail("Statistics.update: x of shape " + shape_of(x) + " is a broadcast, reversed or strided view (strides " +
           std::to_string(x.stride(0)) + ", " + std::to_string(x.stride(1)) +
           " elements); pass numpy.ascontiguousarray(x) or x.contiguous()");
    // Statistics without a dtype yet get one only if this first block goes in.
    const bool unset = std::holds_alternative<std::monostate>(m_stats);
    Variant fresh;
    Variant& target = unset ? fresh : m_stats;
    if (unset) fresh = make(k == Kind::f64 ? Kind::f64 : Kind::f32);
    if (k == Kind::f64 && std::holds_alternative<rcpu::Statistics<float>>(target))
      fail("Statistics.update: x is float64 but these statistics take float32 blocks (narrowing would round the "
           "data); make them with dtype='float64' or pass x.astype(numpy.float32)");
    {
      nb::gil_scoped_release release;
      std::visit(
          [&](auto& st) {
            using St = std::decay_t<decltype(st)>;
            if constexpr (!std::is_same_v<St, std::monostate>) {
              using T = typename St::InputScalar;
              if ((k == Kind::f32 && std::is_same_v<T, float>) || (k == Kind::f64 && std::is_same_v<T, double>)) {
                with_block<T>(x, [&](const auto& xm) { st.update(xm); });  // where the block lies: no copy
                return;
              }
              // Widened in chunks of chunk_rows rows, straight into the statistics: the block is checked
              // first, so no chunk can fail after another went in.
              const auto bad = first_non_finite(x, k);
              if (bad.first >= 0)
                fail("Statistics.update: x holds NaN or Inf at row " + std::to_string(bad.first) + ", column " +
                     std::to_string(bad.second) + " (x is " + shape_of(x) + ", " + kind_name(k) + ")");
              Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> chunk;
              const Index n = Index(x.shape(0));
              for (Index r0 = 0; r0 < n; r0 += St::chunk_rows) {
                widen_rows<T>(x, k, r0, std::min<Index>(St::chunk_rows, n - r0), chunk);
                st.update(chunk);
              }
            }
          },
          target);
    }
    if (unset) m_stats = std::move(fresh);
  }

  void merge(const PyStatistics& other) {
    if (other.m_channels != m_channels)
      fail("Statistics.merge: other has " + std::to_string(other.m_channels) + " channels, these have " +
           std::to_string(m_channels));
    if (other.m_gram != m_gram)
      fail(std::string("Statistics.merge: other has gram=") + (other.m_gram ? "True" : "False") + ", these have gram=" +
           (m_gram ? "True" : "False"));
    if (std::holds_alternative<std::monostate>(other.m_stats)) return;
    if (std::holds_alternative<std::monostate>(m_stats)) {
      *this = other;
      return;
    }
    if (other.m_stats.index() != m_stats.index())
      fail("Statistics.merge: other takes " + other.dtype() + " blocks, these take " + dtype());
    nb::gil_scoped_release release;
    std::visit(
        [&](auto& st) {
          using St = std::decay_t<decltype(st)>;
          if constexpr (!std::is_same_v<St, std::monostate>) st.merge(std::get<St>(other.m_stats));
        },
        m_stats);
  }

  // fn(the C++ statistics). Before the first block: empty float32 statistics, so that rcpu itself says
  // what is missing; they hold a (zero) d x d Gram only when with_gram asks (the gram accessor).
  template <typename Fn>
  auto visit(Fn&& fn, bool with_gram = false) const {
    if (std::holds_alternative<rcpu::Statistics<double>>(m_stats)) return fn(std::get<rcpu::Statistics<double>>(m_stats));
    if (std::holds_alternative<rcpu::Statistics<float>>(m_stats)) return fn(std::get<rcpu::Statistics<float>>(m_stats));
    return fn(rcpu::Statistics<float>(m_channels, m_gram && with_gram ? rcpu::GramMode::full : rcpu::GramMode::diagonal));
  }

  Index channels() const { return m_channels; }
  bool has_gram() const { return m_gram; }

 private:
  using Variant = std::variant<std::monostate, rcpu::Statistics<float>, rcpu::Statistics<double>>;
  Variant make(Kind k) const {
    const auto mode = m_gram ? rcpu::GramMode::full : rcpu::GramMode::diagonal;
    if (k == Kind::f64) return rcpu::Statistics<double>(m_channels, mode);
    return rcpu::Statistics<float>(m_channels, mode);
  }

  Index m_channels = 0;
  bool m_gram = true;
  Variant m_stats;
};

// The Python view of a compensated / pruned layer: numpy arrays and plain values.
struct PyLayer {
  nb::object weight, bias, rotation;
  double scale = 1.0;
  Eigen::VectorXd singular_values, unit_scores;
  std::vector<Index> kept_units, kept_columns;
  rcpu::LayerReport report;
};

// With the GIL held.
template <typename S>
PyLayer to_py(rcpu::Compensated<S>&& c) {
  PyLayer p;
  p.scale = c.scale;
  p.singular_values = std::move(c.singular_values);
  p.report = c.report;
  p.weight = nb::cast(std::move(c.weight));
  p.bias = c.bias.size() ? nb::cast(std::move(c.bias)) : nb::none();
  p.rotation = c.rotation.size() ? nb::cast(std::move(c.rotation)) : nb::none();
  return p;
}

rcpu::Score score_arg(const std::string& s) { return rcpu::score_from_string(s); }
rcpu::Module module_arg(const std::string& m) {
  if (m == "mlp") return rcpu::Module::mlp;
  if (m == "attention") return rcpu::Module::attention;
  fail("module '" + m + "' must be 'mlp' (down_proj) or 'attention' (o_proj)");
}

rcpu::CompensationOptions compensation_options(double lam, bool full_rotation, const std::string& procrustes_method,
                                               bool proper_rotation, bool geometry) {
  if (!std::isfinite(lam) || lam < 0) fail("lam = " + std::to_string(lam) + " must be finite and >= 0");
  rcpu::CompensationOptions o;
  o.lambda = lam;
  o.full_rotation = full_rotation;
  o.procrustes.method = rcpu::procrustes_method_from_string(procrustes_method);
  o.procrustes.proper_rotation = proper_rotation;
  o.geometry = geometry;
  return o;
}

std::vector<Index> index_list(const std::vector<std::int64_t>& v) { return std::vector<Index>(v.begin(), v.end()); }

}  // namespace

NB_MODULE(_rcpu, m) {
  m.doc() = "rcpu: rotation-constrained error compensation for structured pruning (the C++ library's Python module)";

  nb::class_<rcpu::OutputComparison>(m, "OutputComparison", "Output of the pruned layer against the dense one, on the calibration statistics")
      .def_ro("relative_error", &rcpu::OutputComparison::relative_error, "||Y - Y'||_F / ||Y||_F")
      .def_ro("norm_ratio", &rcpu::OutputComparison::norm_ratio, "||Y'||_F / ||Y||_F")
      .def_ro("cosine", &rcpu::OutputComparison::cosine, "<Y, Y'>_F / (||Y||_F ||Y'||_F)")
      .def_ro("inner_product_distortion", &rcpu::OutputComparison::inner_product_distortion,
              "||Y^T Y - Y'^T Y'||_F / ||Y^T Y||_F (NaN unless geometry=True)");

  nb::class_<rcpu::LayerReport>(m, "LayerReport", "What a compensation did, on the calibration statistics")
      .def_ro("tokens", &rcpu::LayerReport::tokens)
      .def_ro("rows", &rcpu::LayerReport::rows)
      .def_ro("columns", &rcpu::LayerReport::columns)
      .def_ro("kept_columns", &rcpu::LayerReport::kept_columns)
      .def_ro("before", &rcpu::LayerReport::before, "the pruned layer without compensation")
      .def_ro("after", &rcpu::LayerReport::after, "the compensated layer")
      .def_ro("underdetermined", &rcpu::LayerReport::underdetermined,
              "fewer calibration tokens than kept columns: the compensated weight is not unique")
      .def_ro("rank_m", &rcpu::LayerReport::rank_m)
      .def_ro("condition_m", &rcpu::LayerReport::condition_m)
      .def_ro("reflection_fixed", &rcpu::LayerReport::reflection_fixed)
      .def_ro("seconds_procrustes", &rcpu::LayerReport::seconds_procrustes)
      .def_prop_ro("info", [](const rcpu::LayerReport& r) { return std::string(rcpu::to_string(r.info)); })
      .def("__str__", [](const rcpu::LayerReport& r) {
        std::ostringstream s;
        s << r;
        return s.str();
      });

  nb::class_<PyLayer>(m, "PrunedLayer",
                      "A compensated (and pruned) layer: weight (d_out x k, the input's dtype), bias (or None), "
                      "rotation Q (or None when it was not formed), scale, singular values of M, kept units and "
                      "columns, unit scores, report")
      .def_ro("weight", &PyLayer::weight)
      .def_ro("bias", &PyLayer::bias)
      .def_ro("rotation", &PyLayer::rotation)
      .def_ro("scale", &PyLayer::scale)
      // Copies: def_ro would hand out writable views into the object.
      .def_prop_ro("singular_values", [](const PyLayer& p) { return Eigen::VectorXd(p.singular_values); })
      .def_prop_ro("unit_scores", [](const PyLayer& p) { return Eigen::VectorXd(p.unit_scores); })
      .def_ro("kept_units", &PyLayer::kept_units)
      .def_ro("kept_columns", &PyLayer::kept_columns)
      .def_ro("report", &PyLayer::report);

  nb::class_<PyStatistics>(m, "Statistics",
                           "Streamed statistics of a linear layer's input (sum x, sum |x|, sum x^2, m2 and the Gram "
                           "sum x x^T, all in double). Blocks are tokens x channels; dtype is that of the blocks "
                           "(float32 or float64, else fixed by the first update; float16/bfloat16 are widened).")
      .def(nb::init<Index, bool, std::optional<std::string>>(), "channels"_a, "gram"_a = true, "dtype"_a = nb::none())
      .def("update", &PyStatistics::update, "x"_a,
           "Adds a block of tokens (2-D, tokens x channels, C or Fortran order): numpy array or torch CPU tensor")
      .def("merge", &PyStatistics::merge, "other"_a, "Adds the tokens of other (disjoint shards combine exactly)")
      .def("save", [](const PyStatistics& s, const std::string& dir) {
        s.visit([&](const auto& st) { rcpu::io::save_statistics(dir, st); });
      }, "directory"_a, "Writes the C++ library's statistics directory (rcpu::io::save_statistics)")
      .def_static("load", [](const std::string& dir, const std::string& dtype) {
        if (PyStatistics::parse_dtype(dtype) == Kind::f64) return PyStatistics(rcpu::io::load_statistics<double>(dir));
        return PyStatistics(rcpu::io::load_statistics<float>(dir));
      }, "directory"_a, "dtype"_a = "float32", "Reads a statistics directory written by save() or the C++ library")
      .def_static("from_sums", [](std::int64_t tokens, const Array& sum, const Array& abs_sum, const Array& sq_sum,
                                  const Array& m2, std::optional<Array> gram, const std::string& dtype) {
        const Eigen::VectorXd s = vector_arg(sum, "Statistics.from_sums: sum"), a = vector_arg(abs_sum, "Statistics.from_sums: abs_sum"),
                              q = vector_arg(sq_sum, "Statistics.from_sums: sq_sum"), v = vector_arg(m2, "Statistics.from_sums: m2");
        const Eigen::MatrixXd G = gram ? with_matrix(*gram, "Statistics.from_sums: gram",
                                                     [](const auto& g) { return Eigen::MatrixXd(g.template cast<double>()); })
                                       : Eigen::MatrixXd();
        const auto mode = gram ? rcpu::GramMode::full : rcpu::GramMode::diagonal;
        if (PyStatistics::parse_dtype(dtype) == Kind::f64)
          return PyStatistics(rcpu::Statistics<double>::from_sums(Index(tokens), s, a, q, v, G, mode));
        return PyStatistics(rcpu::Statistics<float>::from_sums(Index(tokens), s, a, q, v, G, mode));
      }, "tokens"_a, "sum"_a, "abs_sum"_a, "sq_sum"_a, "m2"_a, "gram"_a = nb::none(), "dtype"_a = "float32",
         "Statistics rebuilt from their sums (e.g. reduced across processes; rcpu.distributed), every argument "
         "checked: lengths, shapes, finiteness, signs")
      .def_prop_ro("dtype", &PyStatistics::dtype)
      .def_prop_ro("channels", &PyStatistics::channels)
      .def_prop_ro("has_gram", &PyStatistics::has_gram)
      .def_prop_ro("tokens", [](const PyStatistics& s) { return s.visit([](const auto& st) { return st.tokens(); }); })
      .def_prop_ro("sum", [](const PyStatistics& s) { return s.visit([](const auto& st) { return Eigen::VectorXd(st.sum()); }); })
      .def_prop_ro("abs_sum", [](const PyStatistics& s) { return s.visit([](const auto& st) { return Eigen::VectorXd(st.abs_sum()); }); })
      .def_prop_ro("sq_sum", [](const PyStatistics& s) { return s.visit([](const auto& st) { return Eigen::VectorXd(st.sq_sum()); }); })
      .def_prop_ro("m2", [](const PyStatistics& s) { return s.visit([](const auto& st) { return Eigen::VectorXd(st.m2()); }); })
      .def_prop_ro("mean", [](const PyStatistics& s) { return s.visit([](const auto& st) { return Eigen::VectorXd(st.mean()); }); })
      .def_prop_ro("variance", [](const PyStatistics& s) { return s.visit([](const auto& st) { return Eigen::VectorXd(st.variance()); }); },
                   "population variance per channel")
      .def_prop_ro("mean_abs", [](const PyStatistics& s) { return s.visit([](const auto& st) { return Eigen::VectorXd(st.mean_abs()); }); })
      .def_prop_ro("l2_norm", [](const PyStatistics& s) { return s.visit([](const auto& st) { return Eigen::VectorXd(st.l2_norm()); }); },
                   "||x_j||_2 over the tokens, per channel (Wanda's and FLAP's activation norm)")
      .def_prop_ro("covariance", [](const PyStatistics& s) { return s.visit([](const auto& st) { return Eigen::MatrixXd(st.covariance()); }, true); },
                   "population covariance G / n - mean mean^T (channels x channels; needs the Gram)")
      .def_prop_ro("gram", [](const PyStatistics& s) { return s.visit([](const auto& st) { return Eigen::MatrixXd(st.gram()); }, true); },
                   "sum over tokens of x x^T (channels x channels)")
      .def("__repr__", [](const PyStatistics& s) {
        return "rcpu.Statistics(channels=" + std::to_string(s.channels()) + ", tokens=" +
               std::to_string(s.visit([](const auto& st) { return st.tokens(); })) + ", gram=" +
               (s.has_gram() ? "True" : "False") + ", dtype=" + s.dtype() + ")";
      });

  // For benchmarks/python/bench_update.py: the C++ call timed in C++, to compare with update() from
  // Python on the same block (the binding's overhead). Not part of the API.
  m.def("_time_update_cpp", [](const Array& x, bool gram, int repeats) {
    require_ndim(x, 2, "_time_update_cpp: x");
    if (kind_of(x, "_time_update_cpp: x") != Kind::f32 || x.stride(1) != 1 || x.stride(0) != std::int64_t(x.shape(1)))
      fail("_time_update_cpp: x must be a C-order float32 block");
    if (repeats < 1) fail("_time_update_cpp: repeats must be >= 1");
    nb::gil_scoped_release release;
    const auto xm = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
        static_cast<const float*>(x.data()), Index(x.shape(0)), Index(x.shape(1)));
    std::vector<double> seconds;
    for (int r = 0; r < repeats; ++r) {
      rcpu::Statistics<float> st(xm.cols(), gram ? rcpu::GramMode::full : rcpu::GramMode::diagonal);
      const auto t0 = std::chrono::steady_clock::now();
      st.update(xm);
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return seconds;
  }, "x"_a, "gram"_a = true, "repeats"_a = 1);

  m.def("unit_scores", [](const Array& W, const PyStatistics& stats, const std::string& score, Index group_size,
                          const std::string& module) {
    const rcpu::Score sc = score_arg(score);
    const rcpu::Module mod = module_arg(module);
    return with_matrix(W, "unit_scores: W", [&](const auto& Wm) {
      return stats.visit([&](const auto& st) {
        nb::gil_scoped_release release;
        return rcpu::unit_scores(Wm, st, sc, group_size, rcpu::GroupReduce::automatic, mod);
      });
    });
  }, "W"_a, "stats"_a, "score"_a = "rcpu", "group_size"_a = 1, "module"_a = "mlp",
        "Scores of W's units: columns (group_size 1) or heads (group_size = head_dim), as each method's authors compute them");

  m.def("select_kept", [](const Array& scores, double ratio) { return rcpu::select_kept(vector_arg(scores, "select_kept: scores"), ratio); },
        "scores"_a, "ratio"_a, "Kept units: removes floor(ratio * n) units with the lowest scores; sorted indices");

  m.def("procrustes", [](const Array& M, const std::string& method, bool proper_rotation) {
    rcpu::ProcrustesOptions o;
    o.method = rcpu::procrustes_method_from_string(method);
    o.proper_rotation = proper_rotation;
    return with_matrix(M, "procrustes: M", [&](const auto& Mm) {
      using T = typename std::decay_t<decltype(Mm)>::Scalar;
      Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> Q;
      Eigen::Matrix<T, Eigen::Dynamic, 1> sigma;
      {
        nb::gil_scoped_release release;
        rcpu::Procrustes<T> pr(Mm, o);
        if (pr.info() != rcpu::Info::success)
          throw rcpu::numerical_error(std::string("procrustes: ") + rcpu::to_string(pr.info()));
        Q = pr.rotation();
        sigma = pr.singular_values();
      }
      return nb::make_tuple(nb::cast(std::move(Q)), nb::cast(std::move(sigma)));
    });
  }, "M"_a, "method"_a = "automatic", "proper_rotation"_a = false,
        "Q = argmax tr(Q^T M) over orthogonal Q, and M's singular values: (Q, sigma)");

  m.def("compensate", [](const Array& W, const PyStatistics& stats, const std::vector<std::int64_t>& kept_columns,
                         const std::string& method, std::optional<Array> bias, double lam, bool full_rotation,
                         const std::string& procrustes_method, bool proper_rotation, bool geometry) {
    const rcpu::Compensation c = rcpu::compensation_from_string(method);
    const rcpu::CompensationOptions o = compensation_options(lam, full_rotation, procrustes_method, proper_rotation, geometry);
    const std::vector<Index> K = index_list(kept_columns);
    const Eigen::VectorXd b = bias ? vector_arg(*bias, "compensate: bias") : Eigen::VectorXd();
    return with_matrix(W, "compensate: W", [&](const auto& Wm) {
      return stats.visit([&](const auto& st) {
        auto r = [&] {
          nb::gil_scoped_release release;
          return bias ? rcpu::compensate(Wm, b, st, K, c, o) : rcpu::compensate(Wm, st, K, c, o);
        }();
        PyLayer p = to_py(std::move(r));
        p.kept_columns = K;
        return p;
      });
    });
  }, "W"_a, "stats"_a, "kept_columns"_a, "method"_a = "rotation", "bias"_a = nb::none(), "lam"_a = 1e-4,
        "full_rotation"_a = false, "procrustes_method"_a = "automatic", "proper_rotation"_a = false, "geometry"_a = false,
        "Compensates the kept columns of W (y = W x + b) from the statistics of x");

  m.def("prune_layer", [](const Array& W, const PyStatistics& stats, double ratio, std::optional<Index> head_dim,
                          const std::string& score, const std::string& compensation, std::optional<Array> bias,
                          std::optional<std::vector<std::int64_t>> kept_units, double lam, bool full_rotation,
                          const std::string& procrustes_method, bool proper_rotation, bool geometry) {
    rcpu::PruneOptions o = head_dim ? rcpu::PruneOptions::heads(*head_dim, ratio) : rcpu::PruneOptions::channels(ratio);
    o.score = score_arg(score);
    o.compensation = rcpu::compensation_from_string(compensation);
    o.compensation_options = compensation_options(lam, full_rotation, procrustes_method, proper_rotation, geometry);
    if (kept_units) o.kept_units = index_list(*kept_units);
    const Eigen::VectorXd b = bias ? vector_arg(*bias, "prune_layer: bias") : Eigen::VectorXd();
    return with_matrix(W, "prune_layer: W", [&](const auto& Wm) {
      using T = typename std::decay_t<decltype(Wm)>::Scalar;
      return stats.visit([&](const auto& st) {
        auto r = [&] {
          nb::gil_scoped_release release;
          return bias ? rcpu::prune_layer(Wm, b, st, o) : rcpu::prune_layer(Wm, st, o);
        }();
        std::vector<Index> units = std::move(r.kept_units), cols = std::move(r.kept_columns);
        Eigen::VectorXd scores = std::move(r.unit_scores);
        PyLayer p = to_py(std::move(static_cast<rcpu::Compensated<T>&>(r)));
        p.kept_units = std::move(units);
        p.kept_columns = std::move(cols);
        p.unit_scores = std::move(scores);
        return p;
      });
    });
  }, "W"_a, "stats"_a, "ratio"_a = 0.2, "head_dim"_a = nb::none(), "score"_a = "rcpu", "compensation"_a = "rotation",
        "bias"_a = nb::none(), "kept_units"_a = nb::none(), "lam"_a = 1e-4, "full_rotation"_a = false,
        "procrustes_method"_a = "automatic", "proper_rotation"_a = false, "geometry"_a = false,
        "Prunes W's input columns (head_dim=None: MLP channels of down_proj) or heads (head_dim: o_proj), "
        "choosing them by score, and compensates the kept ones");
}
