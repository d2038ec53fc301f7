// Eigen's SVDs take ~40 s each to instantiate; the tests instantiate them once, in
// eigen_instances.cpp, and every other test translation unit only declares them. Build time only:
// behaviour is identical.
#ifndef RCPU_TESTS_EIGEN_INSTANCES_HPP
#define RCPU_TESTS_EIGEN_INSTANCES_HPP

#include <Eigen/Core>
#include <Eigen/SVD>

#ifndef RCPU_TESTS_INSTANTIATE_EIGEN
extern template class Eigen::BDCSVD<Eigen::MatrixXd>;
extern template class Eigen::BDCSVD<Eigen::MatrixXf>;
extern template class Eigen::JacobiSVD<Eigen::MatrixXd>;
extern template class Eigen::JacobiSVD<Eigen::MatrixXf>;
#endif

#endif  // RCPU_TESTS_EIGEN_INSTANCES_HPP
