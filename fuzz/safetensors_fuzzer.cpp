// libFuzzer target for the safetensors reader. Any input must either parse or be refused with
// knead::FormatError; a parsed file must then give every tensor as float and double (or refuse with
// FormatError), and rewriting it with SafetensorsWriter must read back bit for bit. Anything else —
// another exception, a crash, a sanitizer report, a broken invariant — is a finding.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "knead/io/safetensors.hpp"

#include "rewrite.hpp"

namespace {

using namespace knead::io;

[[noreturn]] void finding(const char* what, const std::string& name) {
  std::fprintf(stderr, "safetensors_fuzzer finding: %s (tensor '%s')\n", what, name.c_str());
  std::abort();
}

bool is_float(Dtype d) { return d == Dtype::F32 || d == Dtype::F64; }

/// Reads every tensor in every way; returns whether all of them were F32 or F64.
bool read_everything(const SafetensorsFile& file) {
  bool all_float = true;
  for (const TensorInfo& t : file.tensors()) {
    if (file.bytes(t.name).size() != t.end - t.begin) finding("byte view of the wrong size", t.name);
    if (!is_float(t.dtype)) {
      all_float = false;
      try {
        (void)file.read<double>(t.name);
        finding("a non-float dtype was converted", t.name);
      } catch (const knead::FormatError&) {
      }
      continue;
    }
    if (file.read<double>(t.name).size() != t.element_count)
      finding("read<double> has the wrong size", t.name);
    try {
      if (file.read<float>(t.name, Narrowing::allow).size() != t.element_count)
        finding("read<float> has the wrong size", t.name);
    } catch (const knead::FormatError&) {  // allowed only for an F64 value beyond float's range
      if (t.dtype == Dtype::F32) finding("an F32 tensor was refused as float", t.name);
    }
    (void)file.find_non_finite(t.name);
    try {
      if (t.shape.size() == 2) (void)file.read_matrix<double>(t.name);
      if (t.shape.size() == 1) (void)file.read_vector<float>(t.name, Narrowing::allow);
    } catch (const knead::FormatError&) {  // a dimension beyond Eigen's Index, or an F64 value beyond float
    }
  }
  return all_float;
}

/// Writes the tensors and metadata back out and checks that the new file holds the same content.
void check_round_trip(const SafetensorsFile& file) {
  SafetensorsWriter writer = knead::fuzz::writer_holding(file);
  // A file with a data checksum (verified on parsing) is rewritten with one; the writer computes it
  // for its own layout, so the rest of the metadata is compared without it.
  const bool checksum = file.metadata().contains(data_checksum_key);
  writer.write_data_checksum(checksum);
  const SafetensorsFile again(writer.bytes());
  if (again.tensors().size() != file.tensors().size()) finding("round trip changed the tensor count", "");
  if (again.metadata().contains(data_checksum_key) != checksum)
    finding("round trip changed the checksum", "");
  auto expected = file.metadata(), got = again.metadata();
  expected.erase(std::string(data_checksum_key));
  got.erase(std::string(data_checksum_key));
  if (got != expected) finding("round trip changed the metadata", "");
  for (const TensorInfo& t : file.tensors()) {
    const TensorInfo& u = again.tensor(t.name);
    if (u.dtype != t.dtype || u.shape != t.shape) finding("round trip changed dtype or shape", t.name);
    const auto a = file.bytes(t.name), b = again.bytes(t.name);
    if (!std::equal(a.begin(), a.end(), b.begin(), b.end())) finding("round trip changed the bytes", t.name);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::optional<SafetensorsFile> file;
  try {
    file.emplace(Bytes(data, data + size));
  } catch (const knead::FormatError&) {
    return 0;  // refused with a message: the documented outcome for a broken file
  }
  if (read_everything(*file)) check_round_trip(*file);
  return 0;
}
