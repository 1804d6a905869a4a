#pragma once
/// @file
/// Errors of knead's file layer. Bad arguments from the caller stay std::invalid_argument, as in the
/// rest of knead; these two report what the outside world handed us.

#include <stdexcept>

namespace knead {

/// A file's content is malformed, hostile or not what the caller asked for (a missing tensor, a
/// dtype knead cannot convert). The message names the function, the item and what is wrong.
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The operating system refused a read or write (missing file, no permission, disk full). The
/// message names the function, the path and the system's reason.
class FileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace knead
