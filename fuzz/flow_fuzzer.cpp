// libFuzzer target for the flow loader (knead::load): parse, check, build, then one log_prob and one
// sample on a tiny batch. Any input must either load or be refused with knead::FormatError; a pass
// of a loaded flow may refuse with std::invalid_argument (a non-finite result, which hostile weights
// can cause). A loaded flow must save again and reload to the same bytes. Anything else — another
// exception, a crash, a sanitizer report, a hang, a huge allocation — is a finding.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "knead/io/flow_io.hpp"

namespace {

using namespace knead;

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "flow_fuzzer finding: %s\n", what);
  std::abort();
}

template <class T>
void exercise(const io::SafetensorsFile& file) {
  std::optional<LoadedFlow<T>> flow;
  try {
    flow.emplace(load<T>(file, ScalarConversion::allow));
  } catch (const FormatError&) {
    return;  // refused with a message: the documented outcome for a broken file
  }
  const io::Bytes bytes = flow_bytes(*flow);  // before a training-mode pass changes its statistics
  if (flow_bytes(load<T>(io::SafetensorsFile(bytes))) != bytes) finding("save(load(file)) is not stable");

  Matrix<T> x(flow->dim(), 3);
  for (Index j = 0; j < x.cols(); ++j)
    for (Index i = 0; i < x.rows(); ++i) x(i, j) = T(0.25) * T(i % 5) - T(0.5) * T(j);
  try {
    const RowVector<T> lp = flow->log_prob(x);
    if (lp.cols() != 3) finding("log_prob has the wrong size");
  } catch (const std::invalid_argument&) {
  }
  try {
    Rng rng(1);
    const Matrix<T> s = flow->sample(2, rng);
    if (s.rows() != flow->dim() || s.cols() != 2) finding("sample has the wrong shape");
  } catch (const std::invalid_argument&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::optional<io::SafetensorsFile> file;
  try {
    file.emplace(io::Bytes(data, data + size));
  } catch (const FormatError&) {
    return 0;
  }
  exercise<float>(*file);
  exercise<double>(*file);
  return 0;
}
