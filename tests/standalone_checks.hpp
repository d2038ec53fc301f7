// Check counting and a text reader for the test programs with their own main() (those that report
// a missing data file as skipped, exit code 77, which the Catch2 runner cannot express).
#ifndef RCPU_TESTS_STANDALONE_CHECKS_HPP
#define RCPU_TESTS_STANDALONE_CHECKS_HPP

#include <cstddef>
#include <fstream>
#include <iostream>
#include <string>

namespace rcpu_test {

inline int g_passed = 0, g_failed = 0;

/// Counts one check; prints the failed ones.
inline void check(bool ok, const std::string& what) {
  if (ok) {
    ++g_passed;
  } else {
    ++g_failed;
    std::cout << "FAILED: " << what << "\n";
  }
}

/// Prints the counts; the program's exit code (0: all passed).
inline int finish() {
  std::cout << g_passed << " passed, " << g_failed << " failed\n";
  return g_failed == 0 ? 0 : 1;
}

/// The first `max_bytes` bytes of a file (fewer if it is shorter; empty if it cannot be read).
inline std::string read_text(const std::string& path, std::size_t max_bytes) {
  std::ifstream f(path, std::ios::binary);
  std::string s(max_bytes, '\0');
  f.read(&s[0], std::streamsize(max_bytes));
  s.resize(std::size_t(f.gcount()));
  return s;
}

}  // namespace rcpu_test

#endif  // RCPU_TESTS_STANDALONE_CHECKS_HPP
