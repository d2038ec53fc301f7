# Optional BLAS/LAPACK fast paths of rcpu (included by the top-level CMakeLists.txt right after the
# rcpu target exists).
#
# RCPU_USE_BLAS (ON by default) looks for a CBLAS header, a BLAS library (OpenBLAS preferred), a
# LAPACK library and LAPACKE. When all are found, the rcpu target gets
#   - the definitions RCPU_USE_BLAS and RCPU_USE_LAPACKE (INTERFACE: every translation unit that
#     links rcpu::rcpu compiles the same code, which keeps the One Definition Rule), and
#   - the libraries (in the build tree through the rcpu_blas helper target; in the installed package
#     through rcpu::blas, which rcpuConfig.cmake recreates with find_dependency).
# When something is missing rcpu stays pure Eigen and says so; nothing fails.
# Threads: OpenBLAS reads OPENBLAS_NUM_THREADS (or OMP_NUM_THREADS); see docs/performance.md.

option(RCPU_USE_BLAS "Use CBLAS + LAPACKE (OpenBLAS preferred) for rcpu's hot kernels when they are found" ON)

set(RCPU_BLAS_FOUND OFF)
set(RCPU_BLAS_VENDOR "")
if(RCPU_USE_BLAS)
  # OpenBLAS first (the fastest on Debian); any other BLAS if it is not there.
  if(NOT DEFINED BLA_VENDOR)
    set(BLA_VENDOR OpenBLAS)
    find_package(BLAS QUIET)
    find_package(LAPACK QUIET)
    if(NOT (BLAS_FOUND AND LAPACK_FOUND))
      unset(BLA_VENDOR)
      find_package(BLAS QUIET)
      find_package(LAPACK QUIET)
    else()
      set(RCPU_BLAS_VENDOR OpenBLAS)
    endif()
  else()
    find_package(BLAS QUIET)
    find_package(LAPACK QUIET)
    set(RCPU_BLAS_VENDOR ${BLA_VENDOR})
  endif()
  find_path(RCPU_CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas openblas-pthread)
  find_path(RCPU_LAPACKE_INCLUDE_DIR lapacke.h PATH_SUFFIXES lapacke openblas)
  find_library(RCPU_LAPACKE_LIBRARY NAMES lapacke)
  mark_as_advanced(RCPU_CBLAS_INCLUDE_DIR RCPU_LAPACKE_INCLUDE_DIR RCPU_LAPACKE_LIBRARY)

  if(BLAS_FOUND AND LAPACK_FOUND AND RCPU_CBLAS_INCLUDE_DIR AND RCPU_LAPACKE_INCLUDE_DIR AND RCPU_LAPACKE_LIBRARY)
    set(RCPU_BLAS_FOUND ON)
    add_library(rcpu_blas INTERFACE)
    target_include_directories(rcpu_blas SYSTEM INTERFACE ${RCPU_CBLAS_INCLUDE_DIR} ${RCPU_LAPACKE_INCLUDE_DIR})
    target_link_libraries(rcpu_blas INTERFACE ${RCPU_LAPACKE_LIBRARY} ${LAPACK_LIBRARIES} ${BLAS_LIBRARIES})
    target_compile_definitions(rcpu INTERFACE RCPU_USE_BLAS RCPU_USE_LAPACKE)
    target_link_libraries(rcpu INTERFACE $<BUILD_INTERFACE:rcpu_blas> $<INSTALL_INTERFACE:rcpu::blas>)
    message(STATUS "rcpu: BLAS/LAPACK fast paths ON (${RCPU_BLAS_VENDOR}: ${BLAS_LIBRARIES}; ${RCPU_LAPACKE_LIBRARY})")
  else()
    message(STATUS "rcpu: BLAS/LAPACK fast paths OFF: not found (BLAS ${BLAS_FOUND}, LAPACK ${LAPACK_FOUND}, "
                   "cblas.h ${RCPU_CBLAS_INCLUDE_DIR}, lapacke.h ${RCPU_LAPACKE_INCLUDE_DIR}, "
                   "lapacke ${RCPU_LAPACKE_LIBRARY}); rcpu uses pure Eigen")
  endif()
else()
  message(STATUS "rcpu: BLAS/LAPACK fast paths OFF (RCPU_USE_BLAS=OFF); rcpu uses pure Eigen")
endif()

# Eigen's SVD routes of rcpu::Procrustes (bdc_svd, jacobi_svd) cost about half of the compile time of
# a translation unit that prunes (BDCSVD and JacobiSVD, ~40 s per scalar type with g++ -O2). The
# default route (polar_eig) and lapack_gesdd do not need them; OFF compiles them out (asking for them
# then throws rcpu::invalid_argument).
option(RCPU_EIGEN_SVD "Compile the bdc_svd and jacobi_svd routes of rcpu::Procrustes (Eigen's SVDs)" ON)
if(NOT RCPU_EIGEN_SVD)
  target_compile_definitions(rcpu INTERFACE RCPU_NO_EIGEN_SVD)
endif()
