// The one translation unit of the tests that instantiates Eigen's SVDs (see eigen_instances.hpp).
#define RCPU_TESTS_INSTANTIATE_EIGEN
#include "eigen_instances.hpp"

template class Eigen::BDCSVD<Eigen::MatrixXd>;
template class Eigen::BDCSVD<Eigen::MatrixXf>;
template class Eigen::JacobiSVD<Eigen::MatrixXd>;
template class Eigen::JacobiSVD<Eigen::MatrixXf>;
