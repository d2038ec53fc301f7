// rcpu: rotation-constrained error compensation for structured pruning.
// SPDX-License-Identifier: MIT
#ifndef RCPU_MPI_HPP
#define RCPU_MPI_HPP

/// \file mpi.hpp
/// Optional: calibration statistics across processes with MPI. rcpu's statistics are sums, so ranks
/// that each see a share of the calibration tokens can combine them exactly. Never included by
/// rcpu/rcpu.hpp; link the CMake target rcpu::mpi (MPI::MPI_CXX). MPI must be initialised by the
/// caller (MPI_Init) and every function here is collective: every rank of the communicator calls it,
/// in the same order.
///
///   rcpu::mpi::allreduce(stats, comm)   every rank's statistics combined; the result is bit-identical on
///                                       every rank (the ranks' statistics merged in rank order)
///   rcpu::mpi::collective(comm, what, fn)  runs fn on every rank and agrees on the outcome: if fn throws
///                                       on any rank, every rank throws (no rank is left waiting)
///   rcpu::mpi::rank(comm), size(comm)
///
/// Failures: bad input that only some ranks see (a different channel count, a NaN on one rank) makes
/// every rank throw rcpu::invalid_argument naming the rank; a failed MPI call throws rcpu::mpi::error
/// (with MPI's default error handler, MPI_ERRORS_ARE_FATAL, MPI aborts every rank first), and a rank
/// that dies ends the job under mpirun. docs/mpi.md has the details and how to run on a cluster.

#include "detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "config.hpp"
#include "error.hpp"
#include "statistics.hpp"

namespace rcpu {
namespace mpi {

/// A failed MPI call (only seen with an error handler that returns, e.g. MPI_ERRORS_RETURN).
class error : public std::runtime_error {
 public:
  explicit error(const std::string& what) : std::runtime_error("rcpu::mpi: " + what) {}
};

namespace detail {

inline void check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw error(std::string(call) + " failed: " + std::string(text, std::size_t(std::max(0, len))));
}

template <typename T>
MPI_Datatype datatype() {
  if constexpr (std::is_same<T, double>::value) return MPI_DOUBLE;
  else if constexpr (std::is_same<T, float>::value) return MPI_FLOAT;
  else if constexpr (std::is_same<T, long double>::value) return MPI_LONG_DOUBLE;
  else if constexpr (std::is_same<T, std::int64_t>::value) return MPI_INT64_T;
  else if constexpr (std::is_same<T, char>::value) return MPI_CHAR;
  else static_assert(sizeof(T) == 0, "rcpu::mpi: no MPI datatype for this type");
}

// Every rank's `count` values of `mine`, rank after rank.
template <typename T>
std::vector<T> allgather(const T* mine, int count, MPI_Comm comm) {
  int p = 0;
  check(MPI_Comm_size(comm, &p), "MPI_Comm_size");
  std::vector<T> all(std::size_t(p) * std::size_t(count));
  check(MPI_Allgather(mine, count, datatype<T>(), all.data(), count, datatype<T>(), comm), "MPI_Allgather");
  return all;
}

}  // namespace detail

inline int rank(MPI_Comm comm) {
  int r = 0;
  detail::check(MPI_Comm_rank(comm, &r), "MPI_Comm_rank");
  return r;
}
inline int size(MPI_Comm comm) {
  int p = 0;
  detail::check(MPI_Comm_size(comm, &p), "MPI_Comm_size");
  return p;
}

/// Runs `fn()` on every rank of `comm`, then agrees on the outcome (one small all-reduce): when `fn`
/// threw on some rank, every rank throws, with the message of the lowest such rank ("what: rank r:
/// message"): rcpu::invalid_argument when that rank's exception was one, else std::runtime_error. Wrap
/// the local work between collective calls in it, so that a rank that fails never leaves the others
/// waiting in the next collective.
template <typename Fn>
void collective(MPI_Comm comm, const std::string& what, Fn&& fn) {
  const int me = rank(comm), p = size(comm);
  std::string message;
  int kind = 0;  // 0 ok, 1 rcpu::invalid_argument, 2 anything else
  try {
    fn();
  } catch (const rcpu::invalid_argument& e) {
    kind = 1;
    message = e.message();
  } catch (const std::exception& e) {
    kind = 2;
    message = e.what();
  } catch (...) {
    kind = 2;
    message = "an exception of unknown type";
  }
  int first = kind != 0 ? me : p;
  detail::check(MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, comm), "MPI_Allreduce");
  if (first == p) return;
  // The failing rank's message and kind, to everyone.
  std::int64_t head[2] = {kind, std::int64_t(message.size())};
  detail::check(MPI_Bcast(head, 2, MPI_INT64_T, first, comm), "MPI_Bcast");
  message.resize(std::size_t(head[1]));
  if (head[1] > 0) detail::check(MPI_Bcast(&message[0], int(head[1]), MPI_CHAR, first, comm), "MPI_Bcast");
  const std::string text = what + ": rank " + std::to_string(first) + " of " + std::to_string(p) + ": " + message;
  if (head[0] == 1) throw rcpu::invalid_argument(text);
  throw std::runtime_error("rcpu: " + text);
}

}  // namespace mpi

namespace detail {

// The state of a Statistics that a reduction moves (rcpu/statistics.hpp declares it a friend).
struct StatisticsAccess {
  template <typename S>
  static void flush(const S& s) {
    s.flush_pending();
  }
  template <typename S>
  static auto& gram(S& s) {
    return s.m_gram;
  }
  // sum, abs_sum, sq_sum, center, center_lo, m2: the per-channel state, in this order.
  template <typename S>
  static void pack(const S& s, typename S::Accumulator* out) {
    const Index d = s.m_d;
    for (const auto* v : {&s.m_sum, &s.m_abs, &s.m_sq, &s.m_center, &s.m_center_lo, &s.m_m2}) {
      std::copy(v->data(), v->data() + d, out);
      out += d;
    }
  }
  template <typename S>
  static void unpack(S& s, Index tokens, const typename S::Accumulator* in) {
    const Index d = s.m_d;
    for (auto* v : {&s.m_sum, &s.m_abs, &s.m_sq, &s.m_center, &s.m_center_lo, &s.m_m2}) {
      v->resize(d);
      std::copy(in, in + d, v->data());
      in += d;
    }
    s.m_n = tokens;
    using Acc = typename S::Accumulator;
    if (tokens > 0)
      s.m_mean = s.m_sum / Acc(tokens);
    else
      s.m_mean.setZero(d);
  }
  // The state of `from` (no Gram), as merge() would leave an empty accumulator after merging it.
  template <typename S>
  static void assign_moments(S& to, const S& from) {
    to.m_n = from.m_n;
    to.m_sum = from.m_sum;
    to.m_abs = from.m_abs;
    to.m_sq = from.m_sq;
    to.m_mean = from.m_mean;
    to.m_center = from.m_center;
    to.m_center_lo = from.m_center_lo;
    to.m_m2 = from.m_m2;
  }
  template <typename S>
  static void gram_changed(S& s) {
    s.m_gram_symmetric = false;
  }
};

}  // namespace detail

namespace mpi {

/// Replaces `stats` on every rank of `comm` by the statistics of all ranks' tokens together. The result
/// is the same on every rank, bit for bit: the ranks' statistics merged in rank order
/// (Statistics::merge(): sums added, mean and m2 combined with Chan's rule), and the Gram summed in rank
/// order. A rank with no tokens contributes nothing. The Gram travels in column blocks of about
/// `chunk_bytes` per rank (the same value on every rank), so a d x d Gram needs no second full copy:
/// peak extra memory is about (size + 1) x chunk_bytes plus 6 x d values per rank.
/// \throws rcpu::invalid_argument on every rank when the ranks disagree on the channel count, the Gram
///         mode or chunk_bytes (the message names the first rank that differs from rank 0).
template <typename Scalar, typename AccScalar>
void allreduce(Statistics<Scalar, AccScalar>& stats, MPI_Comm comm, std::size_t chunk_bytes = std::size_t(32) << 20) {
  using Access = rcpu::detail::StatisticsAccess;
  using Acc = AccScalar;
  const int p = size(comm);
  const Index d = stats.channels();
  // 1. Agree on the shapes (a rank with other shapes must not leave the others in a collective of
  //    other sizes).
  const std::int64_t mine[5] = {std::int64_t(d), stats.gram_mode() == GramMode::full ? 1 : 0, std::int64_t(stats.tokens()),
                                std::int64_t(chunk_bytes), std::int64_t(sizeof(Acc))};
  const std::vector<std::int64_t> heads = detail::allgather(mine, 5, comm);
  for (int r = 1; r < p; ++r) {
    const std::int64_t* h = &heads[std::size_t(r) * 5];
    if (h[0] != heads[0] || h[1] != heads[1] || h[3] != heads[3] || h[4] != heads[4])
      throw rcpu::invalid_argument(
          "mpi::allreduce: rank " + std::to_string(r) + " has statistics of " + std::to_string(h[0]) + " channels (" +
          (h[1] ? "full" : "diagonal") + " Gram, chunk_bytes " + std::to_string(h[3]) + ", accumulator of " +
          std::to_string(h[4]) + " bytes), rank 0 of " + std::to_string(heads[0]) + " channels (" +
          (heads[1] ? "full" : "diagonal") + " Gram, chunk_bytes " + std::to_string(heads[3]) + ", accumulator of " +
          std::to_string(heads[4]) + " bytes)");
  }
  const bool full = heads[1] == 1;
  if (chunk_bytes == 0) throw rcpu::invalid_argument("mpi::allreduce: chunk_bytes = 0 must be > 0");  // on every rank
  // 2. The per-channel state, merged in rank order.
  Access::flush(stats);
  std::vector<Acc> state(std::size_t(6 * d));
  Access::pack(stats, state.data());
  const std::vector<Acc> states = detail::allgather(state.data(), int(6 * d), comm);
  Statistics<Scalar, AccScalar> merged(d, GramMode::diagonal), part(d, GramMode::diagonal);
  for (int r = 0; r < p; ++r) {
    Access::unpack(part, Index(heads[std::size_t(r) * 5 + 2]), &states[std::size_t(r) * std::size_t(6 * d)]);
    merged.merge(part);
  }
  // 3. The Gram's lower triangle, in column blocks: rows c0..d-1 of columns c0..c1-1 from every rank,
  //    summed in rank order (the upper part of a block rides along and is rebuilt by symmetrize()).
  if (full && d > 0) {
    auto& G = Access::gram(stats);
    std::vector<Acc> send, all;
    for (Index c0 = 0; c0 < d; ) {
      const Index rows = d - c0;
      const std::size_t per_col = std::size_t(rows) * sizeof(Acc);
      const Index width = std::min<Index>(d - c0, std::max<Index>(1, Index(chunk_bytes / std::max<std::size_t>(1, per_col))));
      const std::size_t n = std::size_t(rows) * std::size_t(width);
      send.resize(n);
      for (Index c = 0; c < width; ++c)
        std::copy(G.col(c0 + c).data() + c0, G.col(c0 + c).data() + d, send.data() + std::size_t(c) * std::size_t(rows));
      all.resize(n * std::size_t(p));
      detail::check(MPI_Allgather(send.data(), int(n), detail::datatype<Acc>(), all.data(), int(n),
                                  detail::datatype<Acc>(), comm),
                    "MPI_Allgather");
      for (std::size_t i = 0; i < n; ++i) {
        Acc s = all[i];
        for (int r = 1; r < p; ++r) s += all[std::size_t(r) * n + i];
        send[i] = s;
      }
      for (Index c = 0; c < width; ++c)
        std::copy(send.data() + std::size_t(c) * std::size_t(rows), send.data() + std::size_t(c + 1) * std::size_t(rows),
                  G.col(c0 + c).data() + c0);
      c0 += width;
    }
    Access::gram_changed(stats);
  }
  Access::assign_moments(stats, merged);
}

}  // namespace mpi
}  // namespace rcpu

#endif  // RCPU_MPI_HPP
