// A rank that dies before a collective (rank 1 exits with status 3 without MPI_Finalize) while the
// others enter rcpu::mpi::allreduce: mpirun must end the whole job with an error, not hang
// (tests/mpi/CMakeLists.txt runs it under `timeout` and expects a non-zero status that is not the
// timeout's).
#include <rcpu/mpi.hpp>

#include <cstdlib>
#include <iostream>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  const int me = rcpu::mpi::rank(MPI_COMM_WORLD);
  rcpu::Statistics<double> s(8);
  s.update(Eigen::MatrixXd::Ones(4, 8));
  if (me == 1) {
    std::cerr << "rank_dies: rank 1 exits now\n";
    std::exit(3);
  }
  rcpu::mpi::allreduce(s, MPI_COMM_WORLD);
  std::cerr << "rank_dies: rank " << me << " got past the allreduce\n";
  MPI_Finalize();
  return 0;
}
