// SPDX-License-Identifier: MIT
#ifndef RCPU_KERNELS_HPP
#define RCPU_KERNELS_HPP

#include "detail/intrinsics.hpp"  // first: before Eigen (see there)

/// \file kernels.hpp
/// Which kernels run rcpu's matrix products (GEMM, SYRK) at run time: OpenBLAS's or Eigen's.
///
/// With RCPU_USE_BLAS the products go to CBLAS, which is the fast choice when OpenBLAS knows the CPU.
/// An OpenBLAS that does not (Debian 12's 0.3.21 on recent Intel Xeons) runs its generic "Prescott"
/// kernels: SGEMM on one thread at 20 GFLOP/s where its SkylakeX kernels reach 134 and Eigen's own,
/// compiled with -march=native, 99 (reported in issue 11 for such a machine). rcpu then routes its products through Eigen's kernels, provided
/// this build compiled them for AVX2 or wider, and says so in one line (kernel_notice()); setting
/// OPENBLAS_CORETYPE (e.g. SkylakeX, Haswell) selects OpenBLAS's right kernels, and rcpu then always
/// uses OpenBLAS, as told. RCPU_PRODUCTS=blas|eigen|auto (environment) forces either route.

#include <cstdlib>
#include <cstring>
#include <string>

#include <Eigen/Core>

#include "config.hpp"

#if defined(RCPU_HAVE_BLAS) && (defined(__GNUC__) || defined(__clang__)) && defined(__ELF__)
// OpenBLAS only: weak, so that another CBLAS links too (the address is then null).
extern "C" char* openblas_get_corename(void) __attribute__((weak));
#define RCPU_HAVE_OPENBLAS_CORENAME 1
#endif

namespace rcpu {

/// Whose kernels run the matrix products.
enum class ProductKernels {
  blas,  ///< CBLAS (OpenBLAS): multi-threaded
  eigen  ///< Eigen's own (multi-threaded only when built with OpenMP)
};

inline const char* to_string(ProductKernels k) { return k == ProductKernels::blas ? "blas" : "eigen"; }

/// What kernel_choice() looked at, and what it chose.
struct KernelInfo {
  bool blas = false;             ///< this build has the BLAS fast path (RCPU_USE_BLAS)
  std::string blas_core;         ///< OpenBLAS's core (openblas_get_corename()), "" if unknown
  bool blas_core_generic = false;  ///< that core has no AVX2 kernels
  bool cpu_avx2 = false;         ///< the CPU has AVX2 and FMA
  bool cpu_avx512 = false;       ///< the CPU has AVX-512F
  bool coretype_set = false;     ///< OPENBLAS_CORETYPE is set: the user chose OpenBLAS's kernels
  bool eigen_avx2 = false;       ///< Eigen's kernels in this build use AVX2 or wider
  bool eigen_avx512 = false;     ///< ... AVX-512
  std::string forced;            ///< RCPU_PRODUCTS, if set to blas or eigen
  ProductKernels products = ProductKernels::eigen;  ///< the choice
};

namespace detail {

/// Whether an OpenBLAS x86 core name lacks AVX2 kernels (the generic fallbacks of old CPUs).
inline bool generic_blas_core(const std::string& core) {
  static const char* const fast[] = {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"};
  std::string c;
  for (char ch : core) c += char(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
  if (c.empty()) return false;  // not OpenBLAS, or not told: trust it
  for (const char* f : fast)
    if (c == f) return false;
  return true;
}

/// The choice, from the facts alone (tests call it with made-up facts).
inline ProductKernels choose_kernels(const KernelInfo& k) {
  if (!k.blas) return ProductKernels::eigen;
  if (k.forced == "blas") return ProductKernels::blas;
  if (k.forced == "eigen") return ProductKernels::eigen;
  if (k.coretype_set) return ProductKernels::blas;  // the user's choice
  if (k.blas_core_generic && k.cpu_avx2 && k.eigen_avx2) return ProductKernels::eigen;
  return ProductKernels::blas;
}

}  // namespace detail

/// Looks at this process and build (each call): OpenBLAS's core, the CPU, OPENBLAS_CORETYPE,
/// RCPU_PRODUCTS and the SIMD level Eigen was compiled for, and chooses.
inline KernelInfo kernel_info() {
  KernelInfo k;
#ifdef RCPU_HAVE_BLAS
  k.blas = true;
#endif
#ifdef RCPU_HAVE_OPENBLAS_CORENAME
  if (openblas_get_corename != nullptr) {
    const char* name = openblas_get_corename();
    k.blas_core = name != nullptr ? name : "";
  }
#endif
  k.blas_core_generic = detail::generic_blas_core(k.blas_core);
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  k.cpu_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  k.cpu_avx512 = __builtin_cpu_supports("avx512f");
#endif
  const char* ct = std::getenv("OPENBLAS_CORETYPE");
  k.coretype_set = ct != nullptr && *ct != '\0';
#ifdef EIGEN_VECTORIZE_AVX2
  k.eigen_avx2 = true;
#endif
#ifdef EIGEN_VECTORIZE_AVX512
  k.eigen_avx512 = true;
#endif
  const char* forced = std::getenv("RCPU_PRODUCTS");
  if (forced != nullptr && (std::strcmp(forced, "blas") == 0 || std::strcmp(forced, "eigen") == 0)) k.forced = forced;
  k.products = detail::choose_kernels(k);
  return k;
}

/// The kernels rcpu's products use in this process (kernel_info().products, looked up once: the
/// environment and OpenBLAS's core do not change while it runs).
inline ProductKernels product_kernels() {
  static const ProductKernels k = kernel_info().products;
  return k;
}

/// One line for the user when OpenBLAS runs generic kernels on a CPU that has AVX2 (what rcpu does
/// about it, and how to select the right kernels), "" otherwise. No trailing newline.
inline std::string kernel_notice(const KernelInfo& k) {
  if (!k.blas || !k.blas_core_generic || !k.cpu_avx2 || k.coretype_set || !k.forced.empty()) return "";
  const std::string cpu = k.cpu_avx512 ? "AVX-512" : "AVX2", right = k.cpu_avx512 ? "SkylakeX" : "Haswell";
  std::string line = "rcpu: OpenBLAS runs its generic '" + k.blas_core + "' kernels on this " + cpu +
                     " CPU (it does not recognise it); ";
  if (k.products == ProductKernels::eigen)
    line += std::string("rcpu's matrix products use Eigen's ") + (k.eigen_avx512 ? "AVX-512" : "AVX2") +
            " kernels instead. ";
  else
    line += "rcpu's matrix products are slow (this build's Eigen kernels are not AVX2: build with -march=native). ";
  return line + "OPENBLAS_CORETYPE=" + right + " selects OpenBLAS's fast kernels.";
}
inline std::string kernel_notice() { return kernel_notice(kernel_info()); }

}  // namespace rcpu

#endif  // RCPU_KERNELS_HPP
