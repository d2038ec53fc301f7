// SPDX-License-Identifier: MIT
// Argument parsing and error kinds shared by the commands of the rcpu command-line tool.
#ifndef RCPU_APPS_CLI_ARGS_HPP
#define RCPU_APPS_CLI_ARGS_HPP

#include <cmath>
#include <exception>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <rcpu/config.hpp>

namespace rcpu_cli {

using rcpu::Index;

// A usage error (unknown option, missing argument): exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Bad input detected by the tool itself (the library throws rcpu::invalid_argument): exit status 1.
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct OptionSpec {
  const char* name;
  int arity;  // 0: flag, 1: one value, -1: one or more values
};

class Args {
 public:
  Args(const std::vector<std::string>& argv, const std::vector<OptionSpec>& specs, bool positional_allowed) {
    for (std::size_t i = 0; i < argv.size(); ++i) {
      const std::string& a = argv[i];
      if (a.rfind("--", 0) != 0) {
        if (!positional_allowed) throw UsageError("unexpected argument '" + a + "'");
        m_positional.push_back(a);
        continue;
      }
      const OptionSpec* spec = nullptr;
      for (const auto& s : specs)
        if (a == s.name) spec = &s;
      if (spec == nullptr) throw UsageError("unknown option '" + a + "'");
      if (m_values.count(a) && spec->arity != -1) throw UsageError("option " + a + " is given twice");
      auto& vals = m_values[a];
      if (spec->arity == 0) continue;
      std::size_t taken = 0;
      while (i + 1 < argv.size() && argv[i + 1].rfind("--", 0) != 0) {
        vals.push_back(argv[++i]);
        ++taken;
        if (spec->arity == 1) break;
      }
      if (taken == 0) throw UsageError("option " + a + " needs a value");
    }
  }

  bool has(const std::string& name) const { return m_values.count(name) != 0; }
  const std::vector<std::string>& values(const std::string& name) const {
    static const std::vector<std::string> none;
    const auto it = m_values.find(name);
    return it == m_values.end() ? none : it->second;
  }
  std::string value(const std::string& name, const std::string& fallback = "") const {
    return has(name) ? values(name).front() : fallback;
  }
  double number(const std::string& name, double fallback) const {
    if (!has(name)) return fallback;
    const std::string& v = value(name);
    std::size_t used = 0;
    double x = 0;
    try {
      x = std::stod(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != v.size() || !std::isfinite(x))
      throw UsageError("option " + name + ": '" + v + "' is not a finite number");
    return x;
  }
  Index integer(const std::string& name, Index fallback) const {
    if (!has(name)) return fallback;
    const std::string& v = value(name);
    std::size_t used = 0;
    long long x = 0;
    try {
      x = std::stoll(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != v.size()) throw UsageError("option " + name + ": '" + v + "' is not an integer");
    return Index(x);
  }
  const std::vector<std::string>& positional() const { return m_positional; }

 private:
  std::map<std::string, std::vector<std::string>> m_values;
  std::vector<std::string> m_positional;
};


/// `prune-model`: prunes a whole GGUF model (apps/prune_model.cpp).
int cmd_prune_model(const std::vector<std::string>& argv);
extern const char* const prune_model_help;

}  // namespace rcpu_cli

#endif  // RCPU_APPS_CLI_ARGS_HPP
