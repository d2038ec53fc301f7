// The kept-set rules: how many units go, which ones, ties, and cutting dependent matrices.
#include <rcpu/selection.hpp>

#include "support.hpp"

TEST_CASE("removed counts follow floor(rho * n), as in the paper's LLaMA-7B numbers", "[selection]") {
  // METHOD.md section 2: 3/6/9 of 32 heads and 1100/2201/3302 of 11008 channels.
  CHECK(rcpu::removed_count(32, 0.1) == 3);
  CHECK(rcpu::removed_count(32, 0.2) == 6);
  CHECK(rcpu::removed_count(32, 0.3) == 9);
  CHECK(rcpu::removed_count(11008, 0.1) == 1100);
  CHECK(rcpu::removed_count(11008, 0.2) == 2201);
  CHECK(rcpu::removed_count(11008, 0.3) == 3302);
  CHECK(rcpu::removed_count(100, 0.29) == 29);  // 0.29 * 100 = 28.999999999999996 in binary
  CHECK(rcpu::removed_count(10, 0.0) == 0);
  CHECK(rcpu::removed_count(3, 0.99) == 2);
  CHECK_THROWS_AS(rcpu::removed_count(10, 1.0), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::removed_count(10, -0.1), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::removed_count(10, std::nan("")), rcpu::invalid_argument);
}

TEST_CASE("select_kept drops the lowest scores and returns sorted indices", "[selection]") {
  Eigen::VectorXd s(6);
  s << 0.5, 0.1, 0.9, 0.3, 0.7, 0.2;
  const auto kept = rcpu::select_kept(s, 0.5);
  CHECK(kept == std::vector<rcpu::Index>{0, 2, 4});
  CHECK(rcpu::select_kept(s, 0.0) == std::vector<rcpu::Index>{0, 1, 2, 3, 4, 5});
}

TEST_CASE("ties keep the lower index", "[selection]") {
  Eigen::VectorXd s(5);
  s << 1.0, 2.0, 1.0, 1.0, 2.0;
  CHECK(rcpu::keep_top(s, 3) == std::vector<rcpu::Index>{0, 1, 4});
  CHECK(rcpu::keep_top(s, 4) == std::vector<rcpu::Index>{0, 1, 2, 4});
  s(3) = std::nan("");
  CHECK_THROWS_AS(rcpu::keep_top(s, 2), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::keep_top(Eigen::VectorXd::Ones(3), 0), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::keep_top(Eigen::VectorXd::Ones(3), 4), rcpu::invalid_argument);
}

TEST_CASE("groups expand to their columns; complements are increasing", "[selection]") {
  CHECK(rcpu::expand_groups({0, 2}, 3) == std::vector<rcpu::Index>{0, 1, 2, 6, 7, 8});
  CHECK(rcpu::complement({4, 0, 2}, 6) == std::vector<rcpu::Index>{1, 3, 5});
  CHECK_THROWS_AS(rcpu::complement({0, 0}, 3), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::expand_groups({0}, 0), rcpu::invalid_argument);
}

TEMPLATE_TEST_CASE("dependent rows and columns are cut in the given order", "[selection]", float, double) {
  Eigen::Matrix<TestType, Eigen::Dynamic, Eigen::Dynamic> A(4, 3);
  A << 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12;
  const auto rows = rcpu::take_rows(A, {3, 1});
  REQUIRE(rows.rows() == 2);
  CHECK(rows(0, 0) == 10);
  CHECK(rows(1, 2) == 6);
  const auto cols = rcpu::take_cols(A, {2});
  REQUIRE(cols.cols() == 1);
  CHECK(cols(3, 0) == 12);
  Eigen::Matrix<TestType, Eigen::Dynamic, 1> v(4);
  v << 1, 2, 3, 4;
  CHECK(rcpu::take_entries(v, {1, 3})(1) == 4);
  CHECK_THROWS_AS(rcpu::take_rows(A, {}), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::take_rows(A, {4}), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::take_rows(A, {1, 1}), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::take_cols(A, {-1}), rcpu::invalid_argument);
  CHECK_THROWS_AS(rcpu::take_entries(A, {0}), rcpu::invalid_argument);
}
