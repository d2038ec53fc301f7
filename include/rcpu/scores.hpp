// SPDX-License-Identifier: MIT
#ifndef RCPU_SCORES_HPP
#define RCPU_SCORES_HPP

/// \file scores.hpp
/// Importance scores of a linear layer's input columns, and of groups of columns (attention heads),
/// computed from the weights and the streamed input statistics (METHOD.md section 3).

#include "detail/intrinsics.hpp"  // first: before Eigen (see there)

#include <cmath>
#include <string>

#include <Eigen/Core>

#include "config.hpp"
#include "detail/checks.hpp"
#include "statistics.hpp"

namespace rcpu {

/// Column importance scores. Notation: W is d_out x d_in, n tokens, s2_j = sum x_j^2,
/// a_j = sum |x_j|, Var_j the population variance of channel j.
enum class Score {
  magnitude,      ///< ||W[:,j]||_2
  wanda_sp,       ///< FLAP's Wanda-sp:   mean_i |W_ij| * sqrt(s2_j / n)
  wanda_sp_rcpu,  ///< RCPU authors' Wanda-sp: sum_i |W_ij| * a_j / n
  flap,           ///< FLAP's WIFV: Var_j * ||W[:,j]||_2^2 (squared again for attention), standardised per module
  rcpu,           ///< RCPU, authors' code (default): ||W[:,j]||_2 * (a_j / n) * Var_j
  rcpu_paper      ///< RCPU, paper wording: ||W[:,j]||_2 * ||X_j||_2 * Var_j
};

/// Which module a layer is: FLAP squares its metric again for attention (o_proj).
enum class Module { mlp, attention };

/// How the column scores of one group (head) combine into the group's score.
enum class GroupReduce {
  automatic,         ///< standardized_mean for Score::flap, sum otherwise (what each method's authors do)
  sum,               ///< sum of the head's column scores (Wanda-sp, RCPU)
  standardized_mean  ///< mean of the head's standardised column scores (FLAP)
};

inline const char* to_string(Score s) {
  switch (s) {
    case Score::magnitude: return "magnitude";
    case Score::wanda_sp: return "wanda_sp";
    case Score::wanda_sp_rcpu: return "wanda_sp_rcpu";
    case Score::flap: return "flap";
    case Score::rcpu: return "rcpu";
    case Score::rcpu_paper: return "rcpu_paper";
  }
  return "unknown";
}

/// Parses the names printed by to_string(Score). \throws rcpu::invalid_argument on an unknown name.
inline Score score_from_string(const std::string& name) {
  for (Score s : {Score::magnitude, Score::wanda_sp, Score::wanda_sp_rcpu, Score::flap, Score::rcpu, Score::rcpu_paper})
    if (name == to_string(s)) return s;
  detail::fail("unknown score '" + name + "' (magnitude, wanda_sp, wanda_sp_rcpu, flap, rcpu, rcpu_paper)");
}

/// Standardises scores to zero mean and unit sample standard deviation (n - 1, as torch.std in
/// FLAP's code). Constant scores (std = 0) map to all zeros.
inline Eigen::VectorXd standardize(const Eigen::Ref<const Eigen::VectorXd>& scores) {
  detail::require(scores.size() >= 1, "standardize: scores is empty");
  const double mu = scores.mean();
  Eigen::VectorXd c = scores.array() - mu;
  if (scores.size() < 2) return c;
  const double sd = std::sqrt(c.squaredNorm() / double(scores.size() - 1));
  return sd > 0 ? Eigen::VectorXd(c / sd) : Eigen::VectorXd(Eigen::VectorXd::Zero(scores.size()));
}

/// Score of every input column of W (length d_in), in double.
/// \param W      weights, d_out x d_in
/// \param stats  statistics of the layer's input (d_in channels); not read for Score::magnitude
/// \param score  which score
/// \param module Module::attention makes Score::flap square its metric again (FLAP's o_proj rule)
/// \throws rcpu::invalid_argument on mismatched shapes, NaN/Inf in W, or statistics without tokens.
/// Score::flap is returned raw here (not standardised); unit_scores() standardises it.
template <typename DerivedW, typename S, typename A>
Eigen::VectorXd column_scores(const Eigen::MatrixBase<DerivedW>& W, const Statistics<S, A>& stats, Score score,
                              Module module = Module::mlp) {
  RCPU_STATIC_ASSERT_SCALAR(typename DerivedW::Scalar);
  detail::require(W.cols() >= 1 && W.rows() >= 1, "column_scores: W is " + detail::shape(W) + ", must be non-empty");
  detail::require(stats.channels() == W.cols(), "column_scores: W is " + detail::shape(W) + " but stats has " +
                                                    std::to_string(stats.channels()) + " channels (need W.cols())");
  detail::require_finite(W, "column_scores: W");
  const Eigen::MatrixXd Wd = W.template cast<double>();
  const Eigen::ArrayXd col_norm = Wd.colwise().norm().transpose().array();
  if (score == Score::magnitude) return col_norm.matrix();

  const double n = double(stats.tokens());
  detail::require(stats.tokens() > 0, "column_scores: the statistics hold no tokens (channels = " +
                                          std::to_string(stats.channels()) + ")");
  const Eigen::ArrayXd var = stats.variance().template cast<double>().array();
  const Eigen::ArrayXd mean_abs = stats.abs_sum().template cast<double>().array() / n;
  const Eigen::ArrayXd sq = stats.sq_sum().template cast<double>().array();
  const Eigen::ArrayXd col_abs_sum = Wd.cwiseAbs().colwise().sum().transpose().array();

  switch (score) {
    case Score::magnitude: break;
    case Score::wanda_sp: return (col_abs_sum / double(W.rows()) * (sq / n).sqrt()).matrix();
    case Score::wanda_sp_rcpu: return (col_abs_sum * mean_abs).matrix();
    case Score::flap: {
      Eigen::ArrayXd m = var * col_norm.square();
      if (module == Module::attention) m = m.square();
      return m.matrix();
    }
    case Score::rcpu: return (col_norm * mean_abs * var).matrix();
    case Score::rcpu_paper: return (col_norm * sq.sqrt() * var).matrix();
  }
  return col_norm.matrix();
}

/// Combines column scores into scores of contiguous groups of `group_size` columns
/// (group g owns columns [g*group_size, (g+1)*group_size)). group_size = 1 returns the input for
/// GroupReduce::sum and its standardisation for GroupReduce::standardized_mean.
/// \throws rcpu::invalid_argument if group_size does not divide the number of columns.
inline Eigen::VectorXd group_scores(const Eigen::Ref<const Eigen::VectorXd>& column_scores, Index group_size,
                                    GroupReduce reduce) {
  const Index d = column_scores.size();
  detail::require(d >= 1, "group_scores: column_scores is empty");
  detail::require(group_size >= 1 && d % group_size == 0,
                  "group_scores: group_size = " + std::to_string(group_size) + " does not divide the " +
                      std::to_string(d) + " columns");
  detail::require(reduce != GroupReduce::automatic, "group_scores: resolve GroupReduce::automatic for a score first");
  detail::require_finite(column_scores, "group_scores: column_scores");
  const Eigen::VectorXd base = reduce == GroupReduce::standardized_mean ? standardize(column_scores)
                                                                         : Eigen::VectorXd(column_scores);
  const Eigen::Map<const Eigen::MatrixXd> by_group(base.data(), group_size, d / group_size);
  if (reduce == GroupReduce::standardized_mean) return by_group.colwise().mean().transpose();
  return by_group.colwise().sum().transpose();
}

/// The reduction each method's authors use for Score s.
inline GroupReduce resolve(GroupReduce reduce, Score s) {
  if (reduce != GroupReduce::automatic) return reduce;
  return s == Score::flap ? GroupReduce::standardized_mean : GroupReduce::sum;
}

/// Scores of the prunable units of W: its columns (group_size = 1) or its heads (group_size =
/// head_dim), as the method's authors compute them (FLAP's scores standardised per module).
template <typename DerivedW, typename S, typename A>
Eigen::VectorXd unit_scores(const Eigen::MatrixBase<DerivedW>& W, const Statistics<S, A>& stats, Score score,
                            Index group_size = 1, GroupReduce reduce = GroupReduce::automatic,
                            Module module = Module::mlp) {
  detail::require(group_size >= 1 && W.cols() % group_size == 0,
                  "unit_scores: group_size = " + std::to_string(group_size) + " does not divide W's " +
                      std::to_string(W.cols()) + " columns (W is " + detail::shape(W) + ")");
  return group_scores(column_scores(W, stats, score, module), group_size, resolve(reduce, score));
}

}  // namespace rcpu

#endif  // RCPU_SCORES_HPP
