// libFuzzer target for the JSON reader (rcpu/io/json.hpp), which reads the zero-shot task files: the
// input bytes are parsed as one JSON document, and, when they parse, walked completely (every value's
// typed accessor) and parsed again from a copy with white space around it, which must give the same
// structure. The only exception allowed out of the library is rcpu::invalid_argument; a crash, a
// sanitizer report, any other exception, or two parses that disagree (abort()) is a finding.
//
// Build with clang:  fuzz/run_fuzz.sh 600 json  (see fuzz/README.md).  The same entry point is replayed
// over fuzz/corpus/json by fuzz/replay_main.cpp as the CTest test io_fuzz_json_seed_corpus.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <rcpu/io/json.hpp>

namespace {

// A canonical description of a value (types, strings, numbers in hexadecimal floating point: every
// bit), for comparing two parses.
void describe(const rcpu::io::Json& j, std::string& out) {
  using T = rcpu::io::Json::Type;
  switch (j.type()) {
    case T::null: out += 'n'; break;
    case T::boolean: out += j.as_bool() ? 't' : 'f'; break;
    case T::number: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%a", j.as_number());
      out += "d" + std::string(buf);
      break;
    }
    case T::string: out += "s" + std::to_string(j.as_string().size()) + ":" + j.as_string(); break;
    case T::array:
      out += '[';
      for (std::size_t i = 0; i < j.size(); ++i) describe(j.at(i), out);
      out += ']';
      break;
    case T::object:
      out += '{';
      for (const auto& kv : j.as_object()) {
        out += "k" + std::to_string(kv.first.size()) + ":" + kv.first;
        describe(kv.second, out);
        if (j.find(kv.first) == nullptr) std::abort();
      }
      out += '}';
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  rcpu::io::Json j;
  try {
    j = rcpu::io::parse_json(text);
  } catch (const rcpu::invalid_argument&) {
    return 0;
  }
  std::string a, b;
  describe(j, a);
  try {
    describe(rcpu::io::parse_json(" \n" + std::string(text) + "\t "), b);
  } catch (const rcpu::invalid_argument&) {
    std::abort();  // white space around a valid document must not make it invalid
  }
  if (a != b) std::abort();
  return 0;
}
