// Host-side logic of the CUDA backend, testable without a device: the error type and its messages,
// status names, option resolution and parsing, descriptors of device memory, and what happens when no
// device is there.
#include <rcpu/cuda.hpp>

#include <string>

#include "support.hpp"

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("cuda::Error carries the library, the code, its name and the call", "[cuda][error]") {
  const rcpu::cuda::Error e(rcpu::cuda::Library::cublas, 7, "CUBLAS_STATUS_INVALID_VALUE", "cublasSgemm_v2_64(h, ...)",
                            "[at x.hpp:12]");
  CHECK(e.library() == rcpu::cuda::Library::cublas);
  CHECK(e.code() == 7);
  CHECK(e.code_name() == "CUBLAS_STATUS_INVALID_VALUE");
  CHECK(e.call() == "cublasSgemm_v2_64(h, ...)");
  const std::string what = e.what();
  CHECK(contains(what, "rcpu::cuda"));
  CHECK(contains(what, "cuBLAS"));
  CHECK(contains(what, "cublasSgemm_v2_64(h, ...)"));
  CHECK(contains(what, "CUBLAS_STATUS_INVALID_VALUE (7)"));
  CHECK(contains(what, "[at x.hpp:12]"));
  // It is a std::runtime_error, not an rcpu::invalid_argument.
  const std::runtime_error& base = e;
  CHECK(std::string(base.what()) == what);
}

TEST_CASE("RCPU_CUDA_CHECK turns each library's failure into cuda::Error", "[cuda][error]") {
  CHECK_NOTHROW(RCPU_CUDA_CHECK(cudaSuccess));
  CHECK_NOTHROW(RCPU_CUDA_CHECK(CUBLAS_STATUS_SUCCESS));
  CHECK_NOTHROW(RCPU_CUDA_CHECK(CUSOLVER_STATUS_SUCCESS));
  try {
    RCPU_CUDA_CHECK(CUBLAS_STATUS_NOT_INITIALIZED);
    FAIL("no throw");
  } catch (const rcpu::cuda::Error& e) {
    CHECK(e.library() == rcpu::cuda::Library::cublas);
    CHECK(e.code() == int(CUBLAS_STATUS_NOT_INITIALIZED));
    CHECK(e.code_name() == "CUBLAS_STATUS_NOT_INITIALIZED");
    CHECK(e.call() == "CUBLAS_STATUS_NOT_INITIALIZED");
    CHECK(contains(e.what(), "test_cuda_host.cpp"));
  }
  try {
    RCPU_CUDA_CHECK(CUSOLVER_STATUS_INVALID_VALUE);
    FAIL("no throw");
  } catch (const rcpu::cuda::Error& e) {
    CHECK(e.library() == rcpu::cuda::Library::cusolver);
    CHECK(e.code() == 3);
    CHECK(e.code_name() == "CUSOLVER_STATUS_INVALID_VALUE");
  }
  try {
    RCPU_CUDA_CHECK(cudaErrorMemoryAllocation);
    FAIL("no throw");
  } catch (const rcpu::cuda::Error& e) {
    CHECK(e.library() == rcpu::cuda::Library::runtime);
    CHECK(e.code() == int(cudaErrorMemoryAllocation));
    CHECK(e.code_name() == "cudaErrorMemoryAllocation");
  }
}

TEST_CASE("status names of the three libraries", "[cuda][error]") {
  CHECK(std::string(rcpu::cuda::status_name(cudaErrorNoDevice)) == "cudaErrorNoDevice");
  CHECK(std::string(rcpu::cuda::status_name(CUBLAS_STATUS_EXECUTION_FAILED)) == "CUBLAS_STATUS_EXECUTION_FAILED");
  CHECK(std::string(rcpu::cuda::status_name(CUSOLVER_STATUS_ALLOC_FAILED)) == "CUSOLVER_STATUS_ALLOC_FAILED");
  CHECK(std::string(rcpu::cuda::status_name(CUSOLVER_STATUS_INVALID_WORKSPACE)) == "CUSOLVER_STATUS_INVALID_WORKSPACE");
  CHECK(std::string(rcpu::cuda::status_name(static_cast<cusolverStatus_t>(999))) == "CUSOLVER_STATUS_<other>");
  CHECK(std::string(rcpu::cuda::to_string(rcpu::cuda::Library::cusolver)) == "cuSOLVER");
}

TEST_CASE("a negative cuSOLVER info is an Error naming the argument; info >= 0 is not", "[cuda][error]") {
  CHECK_NOTHROW(rcpu::cuda::detail::check_info_argument(0, "cusolverDnXpotrf"));
  CHECK_NOTHROW(rcpu::cuda::detail::check_info_argument(5, "cusolverDnXpotrf"));
  try {
    rcpu::cuda::detail::check_info_argument(-4, "cusolverDnXsyevd");
    FAIL("no throw");
  } catch (const rcpu::cuda::Error& e) {
    CHECK(e.library() == rcpu::cuda::Library::cusolver);
    CHECK(e.code() == -4);
    CHECK(e.code_name() == "invalid argument 4");
    CHECK(e.call() == "cusolverDnXsyevd");
  }
}

TEST_CASE("the Procrustes route follows the CPU method unless the GPU options name one", "[cuda][options]") {
  using rcpu::cuda::ProcrustesSolver;
  rcpu::ProcrustesOptions cpu;
  rcpu::cuda::SolverOptions gpu;
  CHECK(rcpu::cuda::resolve(cpu, gpu) == ProcrustesSolver::syevd);
  cpu.method = rcpu::ProcrustesMethod::jacobi_svd;
  CHECK(rcpu::cuda::resolve(cpu, gpu) == ProcrustesSolver::gesvdj);
  cpu.method = rcpu::ProcrustesMethod::bdc_svd;
  CHECK(rcpu::cuda::resolve(cpu, gpu) == ProcrustesSolver::syevd);
  for (ProcrustesSolver s : {ProcrustesSolver::syevd, ProcrustesSolver::gesvd, ProcrustesSolver::gesvdj,
                             ProcrustesSolver::gesvdp}) {
    gpu.solver = s;
    CHECK(rcpu::cuda::resolve(cpu, gpu) == s);
    CHECK(rcpu::cuda::procrustes_solver_from_string(rcpu::cuda::to_string(s)) == s);
  }
  CHECK(rcpu::cuda::procrustes_solver_from_string("automatic") == ProcrustesSolver::automatic);
  CHECK_THROWS_AS(rcpu::cuda::procrustes_solver_from_string("qr"), rcpu::invalid_argument);
  // Defaults: double solves, cuSOLVER's own gesvdj tolerance and sweeps.
  const rcpu::cuda::SolverOptions d;
  CHECK(d.solver == ProcrustesSolver::automatic);
  CHECK(d.solve_in_double);
  CHECK(d.gesvdj_tolerance == 0.0);
  CHECK(d.gesvdj_max_sweeps == 0);
}

TEST_CASE("data types, storage orders and token blocks", "[cuda][memory]") {
  using rcpu::cuda::DataType;
  CHECK(rcpu::cuda::size_of(DataType::f32) == 4);
  CHECK(rcpu::cuda::size_of(DataType::f64) == 8);
  CHECK(rcpu::cuda::size_of(DataType::f16) == 2);
  CHECK(rcpu::cuda::size_of(DataType::bf16) == 2);
  CHECK(rcpu::cuda::cuda_data_type(DataType::bf16) == CUDA_R_16BF);
  CHECK(rcpu::cuda::cuda_data_type(DataType::f16) == CUDA_R_16F);
  CHECK(std::string(rcpu::cuda::to_string(DataType::bf16)) == "bf16");
  CHECK(rcpu::cuda::data_type_of<float>() == DataType::f32);
  CHECK(rcpu::cuda::data_type_of<double>() == DataType::f64);

  int dummy = 0;
  const auto r = rcpu::cuda::TokenBlock::row_major(&dummy, DataType::bf16, 128, 4096);
  CHECK(r.ld == 4096);
  CHECK(r.order == rcpu::cuda::StorageOrder::row_major);
  const auto c = rcpu::cuda::TokenBlock::col_major(&dummy, DataType::f32, 128, 4096, 200);
  CHECK(c.ld == 200);
  CHECK(c.order == rcpu::cuda::StorageOrder::col_major);
  const float* p = nullptr;
  const auto m = rcpu::cuda::TokenBlock::from(rcpu::cuda::MatrixView<const float>(p, 10, 3));
  CHECK(m.ld == 10);
  CHECK(m.tokens == 10);
  CHECK(m.channels == 3);
  CHECK(m.type == DataType::f32);

  float buf[12] = {};
  const rcpu::cuda::MatrixView<float> v(buf, 3, 4);
  CHECK(v.ld == 3);
  CHECK(v.contiguous());
  const rcpu::cuda::MatrixView<const float> cv = v;  // mutable -> read-only
  CHECK(cv.data == buf);
  CHECK(v.col(2).data == buf + 6);
  const rcpu::cuda::MatrixView<float> padded(buf, 2, 4, 3);
  CHECK_FALSE(padded.contiguous());

  // Views are validated before any device call.
  CHECK_THROWS_AS(rcpu::cuda::detail::check_view(rcpu::cuda::MatrixView<float>(buf, 3, 4, 2), "W"),
                  rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::cuda::detail::check_view(rcpu::cuda::MatrixView<float>(nullptr, 3, 4), "W"),
                  rcpu::invalid_argument);
  CHECK_NOTHROW(rcpu::cuda::detail::check_view(rcpu::cuda::MatrixView<float>(nullptr, 0, 4), "W"));

  // Owning containers start empty and allocate nothing.
  const rcpu::cuda::DeviceMatrix<float> e;
  CHECK(e.empty());
  CHECK(e.ld() == 1);
  const rcpu::cuda::DeviceBuffer<double> b;
  CHECK(b.empty());
}

TEST_CASE("the backend's own input checks throw rcpu::invalid_argument with names", "[cuda][checks]") {
  using rcpu::cuda::detail::require_kept_set;
  CHECK_NOTHROW(require_kept_set({3, 0, 2}, 4, "kept"));
  CHECK_THROWS_AS(require_kept_set({}, 4, "kept"), rcpu::invalid_argument);
  CHECK_THROWS_AS(require_kept_set({0, 4}, 4, "kept"), rcpu::invalid_argument);
  CHECK_THROWS_AS(require_kept_set({1, 1}, 4, "kept"), rcpu::invalid_argument);
  try {
    require_kept_set({0, -1}, 4, "cuda::compensate: kept");
    FAIL("no throw");
  } catch (const rcpu::invalid_argument& e) {
    CHECK(contains(e.what(), "cuda::compensate: kept[1] = -1 is out of range [0, 4)"));
  }
  CHECK_THROWS_AS(rcpu::cuda::detail::require_ratio(1.0, "ratio"), rcpu::invalid_argument);
  CHECK_NOTHROW(rcpu::cuda::detail::require_ratio(0.0, "ratio"));
}

TEST_CASE("without a device, asking for a context is a cuda::Error that says why", "[cuda][device]") {
  const int n = rcpu::cuda::device_count();
  CHECK(n >= 0);
  if (n > 0) {
    CHECK(rcpu::cuda::device_status().empty());
    CHECK_THROWS_AS(rcpu::cuda::Context(n), rcpu::invalid_argument);  // one past the last device
    return;
  }
  INFO("device_status: " << rcpu::cuda::device_status());
  CHECK_FALSE(rcpu::cuda::device_status().empty());
  CHECK(contains(rcpu::cuda::device_status(), "cudaGetDeviceCount"));
  try {
    const rcpu::cuda::Context ctx;
    FAIL("a context was created without a device");
  } catch (const rcpu::cuda::Error& e) {
    CHECK(e.library() == rcpu::cuda::Library::runtime);
    CHECK(e.code() != 0);
    CHECK(contains(e.what(), "cudaGetDeviceCount"));
  }
}
