// main() of the CUDA device tests: without a usable device it prints why and returns 77, which CTest
// reports as "Skipped" (SKIP_RETURN_CODE 77); with one, it runs the Catch2 session.
#include <iostream>

#ifdef RCPU_CATCH2_V3
#include <catch2/catch_session.hpp>
#else
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#endif

#include <rcpu/cuda/context.hpp>

int main(int argc, char* argv[]) {
  if (rcpu::cuda::device_count() == 0) {
    std::cout << "SKIPPED: no CUDA device (" << rcpu::cuda::device_status()
              << "); this test compiles and links, but compares the GPU with the CPU only where a device exists\n";
    return 77;
  }
  {
    const rcpu::cuda::Context ctx;
    std::cout << "rcpu CUDA tests on device 0: " << ctx.device_name() << " (" << ctx.multiprocessors()
              << " multiprocessors)\n";
  }
  return Catch::Session().run(argc, argv);
}
