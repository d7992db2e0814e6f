// Last line of defence behind the Python checks: throw (never abort) so
// pybind11 turns a violated precondition into a Python exception.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace convbench {

template <typename... Args>
std::string cat_message(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace convbench

// CB_CHECK(cond, "msg", value, ...): ValueError in Python when cond is false.
#define CB_CHECK(cond, ...)                                                     \
  do {                                                                          \
    if (!(cond)) {                                                              \
      throw std::invalid_argument(::convbench::cat_message("convbench: ", __VA_ARGS__)); \
    }                                                                           \
  } while (0)
