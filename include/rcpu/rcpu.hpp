// SPDX-License-Identifier: MIT
#ifndef RCPU_RCPU_HPP
#define RCPU_RCPU_HPP

/// \file rcpu.hpp
/// Everything rcpu offers on the CPU. The CUDA backend (rcpu/cuda.hpp) is separate and never
/// included from here.

#include "detail/intrinsics.hpp"  // first: before Eigen (see there)

#include "config.hpp"
#include "error.hpp"
#include "statistics.hpp"
#include "scores.hpp"
#include "selection.hpp"
#include "procrustes.hpp"
#include "report.hpp"
#include "compensation.hpp"
#include "prune.hpp"
#include "reference.hpp"

#endif  // RCPU_RCPU_HPP
