// A downstream program on the installed package's rcpu::mpi target: statistics all-reduced across the
// ranks of MPI_COMM_WORLD. The consumer test only builds it (running it needs mpirun); tests/mpi runs the
// same calls under mpirun.
#include <rcpu/mpi.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  rcpu::Statistics<double> stats(4);
  stats.update(Eigen::MatrixXd::Constant(3, 4, double(rcpu::mpi::rank(MPI_COMM_WORLD))));
  rcpu::mpi::allreduce(stats, MPI_COMM_WORLD);
  std::printf("consumer_mpi: %lld tokens over %d rank(s)\n", static_cast<long long>(stats.tokens()),
              rcpu::mpi::size(MPI_COMM_WORLD));
  MPI_Finalize();
  return 0;
}
