// rcpu/kernels.hpp: which kernels run the products. The choice is a pure function of what it looks at,
// so it is tested on made-up machines: an OpenBLAS that runs its generic kernels on an AVX2/AVX-512
// CPU sends the products to Eigen's kernels (when this build compiled them for AVX2), a user's
// OPENBLAS_CORETYPE or RCPU_PRODUCTS is obeyed, and the user is told in one line.
#include <rcpu/kernels.hpp>

#include <string>

#include "support.hpp"

namespace {

rcpu::KernelInfo machine(const std::string& core, bool avx2, bool avx512, bool eigen_avx2) {
  rcpu::KernelInfo k;
  k.blas = true;
  k.blas_core = core;
  k.blas_core_generic = rcpu::detail::generic_blas_core(core);
  k.cpu_avx2 = avx2;
  k.cpu_avx512 = avx512;
  k.eigen_avx2 = eigen_avx2;
  k.eigen_avx512 = eigen_avx2 && avx512;
  k.products = rcpu::detail::choose_kernels(k);
  return k;
}

}  // namespace

TEST_CASE("OpenBLAS cores without AVX2 kernels are recognised", "[kernels]") {
  for (const char* c : {"Prescott", "Core2", "Penryn", "Nehalem", "Sandybridge", "Atom", "Barcelona", "Bulldozer"})
    CHECK(rcpu::detail::generic_blas_core(c));
  for (const char* c : {"Haswell", "SkylakeX", "Zen", "Cooperlake", "SapphireRapids", "HASWELL", ""})
    CHECK_FALSE(rcpu::detail::generic_blas_core(c));
}

TEST_CASE("products go to Eigen only when OpenBLAS runs generic kernels on a faster CPU", "[kernels]") {
  using K = rcpu::ProductKernels;
  // The machine: an AVX-512 Xeon that Debian's OpenBLAS 0.3.21 does not know.
  const rcpu::KernelInfo xeon = machine("Prescott", true, true, true);
  CHECK(xeon.products == K::eigen);
  const std::string notice = rcpu::kernel_notice(xeon);
  CHECK(notice.find("'Prescott'") != std::string::npos);
  CHECK(notice.find("Eigen's AVX-512 kernels") != std::string::npos);
  CHECK(notice.find("OPENBLAS_CORETYPE=SkylakeX") != std::string::npos);
  CHECK(notice.find('\n') == std::string::npos);  // one line
  // Right core, or an old CPU where the generic core is the right one: OpenBLAS, nothing to say.
  CHECK(machine("SkylakeX", true, true, true).products == K::blas);
  CHECK(rcpu::kernel_notice(machine("SkylakeX", true, true, true)).empty());
  CHECK(machine("Nehalem", false, false, false).products == K::blas);
  CHECK(rcpu::kernel_notice(machine("Nehalem", false, false, false)).empty());
  // An AVX2 machine: Haswell is the core to ask for.
  const rcpu::KernelInfo amd = machine("Sandybridge", true, false, true);
  CHECK(amd.products == K::eigen);
  CHECK(rcpu::kernel_notice(amd).find("OPENBLAS_CORETYPE=Haswell") != std::string::npos);
  // Eigen not compiled for AVX2 (no -march=native): no faster route; OpenBLAS, and the advice.
  const rcpu::KernelInfo plain = machine("Prescott", true, true, false);
  CHECK(plain.products == K::blas);
  CHECK(rcpu::kernel_notice(plain).find("-march=native") != std::string::npos);
  // The user's OPENBLAS_CORETYPE is obeyed, whatever it is; RCPU_PRODUCTS forces either way.
  rcpu::KernelInfo set = xeon;
  set.coretype_set = true;
  CHECK(rcpu::detail::choose_kernels(set) == K::blas);
  CHECK(rcpu::kernel_notice(set).empty());
  rcpu::KernelInfo forced = machine("SkylakeX", true, true, true);
  forced.forced = "eigen";
  CHECK(rcpu::detail::choose_kernels(forced) == K::eigen);
  forced = xeon;
  forced.forced = "blas";
  CHECK(rcpu::detail::choose_kernels(forced) == K::blas);
  // Without the BLAS fast path there is nothing to choose.
  rcpu::KernelInfo none = xeon;
  none.blas = false;
  CHECK(rcpu::detail::choose_kernels(none) == K::eigen);
}

TEST_CASE("this process's choice is consistent with what it sees", "[kernels]") {
  const rcpu::KernelInfo k = rcpu::kernel_info();
  CHECK(k.products == rcpu::detail::choose_kernels(k));
  CHECK(rcpu::product_kernels() == k.products);
#ifdef RCPU_HAVE_BLAS
  CHECK(k.blas);
#else
  CHECK(k.products == rcpu::ProductKernels::eigen);
#endif
  INFO("OpenBLAS core '" << k.blas_core << "', products " << rcpu::to_string(k.products));
  SUCCEED();
}
