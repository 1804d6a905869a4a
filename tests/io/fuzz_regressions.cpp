// Replays the fuzzers' saved findings (fuzz/regressions/, whose path tests/CMakeLists.txt passes as
// KNEAD_FUZZ_REGRESSIONS): every file there once crashed, hung or allocated without bound, and must
// now be refused with a knead::FormatError, the way the fuzzers use the reader and the loader.

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "knead/io/flow_io.hpp"
#include "knead/io/safetensors.hpp"
#include "support.hpp"

using namespace knead;
namespace fs = std::filesystem;

namespace {

std::vector<fs::path> files_in(const std::string& folder) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(fs::path(KNEAD_FUZZ_REGRESSIONS) / folder))
    if (entry.is_regular_file()) out.push_back(entry.path());
  std::sort(out.begin(), out.end());
  return out;
}

/// What the safetensors fuzzer does with a file: parse it and read every tensor in every way.
void read_everything(const fs::path& path) {
  const io::SafetensorsFile file = io::SafetensorsFile::load(path);
  for (const io::TensorInfo& t : file.tensors()) {
    (void)file.read<double>(t.name);
    (void)file.read<float>(t.name, io::Narrowing::allow);
    if (t.shape.size() == 2) (void)file.read_matrix<double>(t.name);
    if (t.shape.size() == 1) (void)file.read_vector<double>(t.name);
  }
}

template <class F>
bool refused(F&& f) {
  try {
    f();
  } catch (const FormatError&) {
    return true;
  }
  return false;
}

}  // namespace

TEST_CASE("the safetensors reader refuses every saved fuzzer finding", "[io][safetensors][fuzz]") {
  const auto files = files_in("safetensors");
  REQUIRE(!files.empty());
  for (const fs::path& path : files) {
    INFO(path.string());
    CHECK(refused([&] { read_everything(path); }));
  }
}

TEST_CASE("the flow loader refuses every saved fuzzer finding", "[io][flow][fuzz]") {
  const auto files = files_in("flow");
  REQUIRE(!files.empty());
  for (const fs::path& path : files) {
    INFO(path.string());
    CHECK(refused([&] { (void)load<double>(path, ScalarConversion::allow); }));
    CHECK(refused([&] { (void)load<float>(path, ScalarConversion::allow); }));
  }
}
