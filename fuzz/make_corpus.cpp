// Writes the seed corpus of the safetensors fuzzer: valid files from SafetensorsWriter and broken ones
// written by hand, one per malformation the reader checks; and, given a second folder, that of the
// flow loader's fuzzer: small saved flows of every kind and broken edits of them.
// Usage: make_corpus <folder> [<flow folder>]

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "knead/flows/builder.hpp"
#include "knead/io/flow_io.hpp"
#include "knead/io/safetensors.hpp"

#include "rewrite.hpp"

namespace {

using namespace knead::io;

/// The length field (header.size() unless given), the header text, then `data` bytes of a pattern.
Bytes raw(const std::string& header, std::size_t data = 0, std::uint64_t length = ~std::uint64_t{0}) {
  const std::uint64_t n = length == ~std::uint64_t{0} ? header.size() : length;
  Bytes out(8);
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  for (std::size_t i = 0; i < data; ++i) out.push_back(static_cast<std::uint8_t>(i * 37));
  return out;
}

std::string tensor(const std::string& name, const std::string& dtype, const std::string& shape,
                   const std::string& offsets) {
  return std::string("\"")
      .append(name)
      .append(R"(":{"dtype":")")
      .append(dtype)
      .append(R"(","shape":)")
      .append(shape)
      .append(R"(,"data_offsets":)")
      .append(offsets)
      .append("}");
}

std::vector<Bytes> valid_files() {
  std::vector<Bytes> files;
  SafetensorsWriter empty;
  files.push_back(empty.bytes());

  SafetensorsWriter small;
  small.add("x", std::vector<float>{1.0f}, {});
  files.push_back(small.bytes());

  SafetensorsWriter mixed;
  knead::Matrix<double> m(2, 3);
  m << 1, -2, 3.5, 1e300, -0.0, 6;
  mixed.add_matrix("layer0.weight", m);
  mixed.add_vector("layer0.bias", knead::Vector<float>::LinSpaced(3, -1.0f, 1.0f));
  mixed.add("empty", std::vector<float>{}, {2, 0});
  mixed.add("cube", std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}, {2, 2, 2});
  mixed.set_metadata("format", "knead");
  mixed.set_metadata("version", "1");
  files.push_back(mixed.bytes());
  mixed.write_data_checksum(true);  // the same with a data checksum (knead.data_crc32)
  files.push_back(mixed.bytes());

  SafetensorsWriter special;
  special.add("special",
              std::vector<double>{std::numeric_limits<double>::quiet_NaN(),
                                  std::numeric_limits<double>::infinity(), 1e-310},
              {3});
  special.add("f", std::vector<float>{-std::numeric_limits<float>::infinity()}, {1});
  files.push_back(special.bytes());

  // Other dtypes, a zero-size tensor beside a huge dimension, and padding.
  files.push_back(raw(
      "{" + tensor("steps", "I64", "[1]", "[0,8]") + "," + tensor("h", "F16", "[2]", "[8,12]") + "}", 12));
  files.push_back(raw("{" + tensor("z", "F32", "[0,18446744073709551615]", "[4,4]") + "," +
                          tensor("s", "F32", "[]", "[0,4]") + "}    ",
                      4));
  return files;
}

std::vector<Bytes> broken_files() {
  const std::string ok = tensor("a", "F32", "[2]", "[0,8]");
  std::vector<Bytes> files = {
      Bytes{},
      Bytes(7, 0),
      raw("{}", 0, 3),                      // header length beyond the file
      raw("{}", 0, 100'000'001),            // beyond the cap
      raw("{}", 0, ~std::uint64_t{0} - 1),  // absurd
      raw("{"),                             // invalid JSON
      raw("{\"a\xff\":1}"),                 // invalid UTF-8
      raw("[]"),                            // not an object
      raw(R"({"a":[[[[]]]]})"),             // nested too deep
      raw("{" + ok + "," + ok + "}", 8),    // duplicate name
      raw(R"({"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8),
      raw(R"({"a":3})"),
      raw(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", 8),
      raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":0}})", 8),
      raw("{" + tensor("a", "F128", "[1]", "[0,16]") + "}", 16),
      raw("{" + tensor("a", "F32", "[-2]", "[0,8]") + "}", 8),
      raw("{" + tensor("a", "F32", "[2.5]", "[0,8]") + "}", 8),
      raw("{" + tensor("a", "F32", "[4294967296,4294967296]", "[0,0]") + "}"),
      raw("{" + tensor("a", "F64", "[4611686018427387904]", "[0,0]") + "}"),
      raw("{" + tensor("a", "F32", "[2]", "[8,0]") + "}", 8),
      raw("{" + tensor("a", "F32", "[2]", "[0,16]") + "}", 8),
      raw("{" + tensor("a", "F32", "[3]", "[0,8]") + "}", 8),
      raw("{" + tensor("a", "F32", "[2]", "[0,8,9]") + "}", 8),
      raw("{" + ok + "," + tensor("b", "F32", "[2]", "[4,12]") + "}", 12),  // overlap
      raw("{" + tensor("a", "F32", "[1]", "[4,8]") + "}", 8),               // gap
      raw("{" + ok + "}", 11),                                              // trailing bytes
      raw(R"({"__metadata__":{"k":1}})"),
      raw(R"({"__metadata__":"k"})"),
  };
  // A valid file cut short.
  SafetensorsWriter writer;
  writer.add("w", std::vector<double>{1, 2, 3}, {3});
  const Bytes whole = writer.bytes();
  files.emplace_back(whole.begin(), whole.end() - 5);
  return files;
}

/// The same file without its data checksum (knead.data_crc32). A saved flow carries one, which
/// refuses almost any change to the tensor data at once; without it, the fuzzer's changes to weights
/// and statistics reach the loader's checks of the values.
Bytes without_checksum(const Bytes& bytes) {
  const SafetensorsFile file(bytes);
  SafetensorsWriter writer = knead::fuzz::writer_holding(file);
  return writer.bytes();
}

/// Small flows of every kind and base, in float and double, with a few broken variants of each; all
/// but one per kind without their data checksum (see without_checksum).
std::vector<Bytes> flow_files() {
  using namespace knead;
  std::vector<Bytes> files;
  const auto replace = [](Bytes bytes, const std::string& from, const std::string& to) {
    std::string text(bytes.begin(), bytes.end());
    const auto at = text.find(from);
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return Bytes(text.begin(), text.end());
  };
  for (const FlowKind kind :
       {FlowKind::maf, FlowKind::iaf, FlowKind::realnvp, FlowKind::nice, FlowKind::mlp}) {
    FlowSpec<double> spec;
    spec.kind = kind;
    spec.dim = 2;
    spec.layers = 2;
    spec.hidden = {3};
    spec.batch_norm = true;
    spec.identity_init = false;
    const TransformedDistribution flow(StandardNormal<double>(2), make_flow<double>(spec));
    files.push_back(flow_bytes(flow));  // as saved, with its data checksum
    const Bytes bytes = without_checksum(flow_bytes(flow));
    files.push_back(bytes);
    files.push_back(replace(bytes, "\\\"hidden\\\":[3]", "\\\"hidden\\\":[9]"));  // shapes disagree
    files.push_back(replace(bytes, "knead.format_version\":\"1", "knead.format_version\":\"9"));
    files.push_back(replace(bytes, "[1,0]", "[0,0]"));  // not a permutation
    files.push_back(Bytes(bytes.begin(), bytes.end() - 4));

    FlowSpec<float> small;
    small.kind = kind;
    small.dim = 3;
    small.layers = 1;
    small.hidden = {2};
    const TransformedDistribution narrow(DiagonalNormal<float>(3), make_flow<float>(small));
    files.push_back(without_checksum(flow_bytes(narrow)));
  }
  DynamicChain<float> inner(2);
  inner.push_back(Shift<float>(2)).push_back(LeakyReLU<float>(2, 0.2f));
  const TransformedDistribution mixed(
      StandardNormal<float>(2),
      Chain(Affine<float>(2), PReLU<float>(2, 0.5f, false), Invert<DynamicChain<float>>(inner),
            AdditiveCoupling<float>({0, 1}, CouplingOptions<float>{{2}, {}, false, 1})));
  files.push_back(without_checksum(flow_bytes(mixed)));
  // a mixture base: 2-D tensors, and a component count that the tensors must agree with
  const TransformedDistribution on_mixture(MixtureOfGaussians<float>(2, 3, 1), Chain(Affine<float>(2)));
  const Bytes mixture_bytes = without_checksum(flow_bytes(on_mixture));
  files.push_back(mixture_bytes);
  files.push_back(replace(mixture_bytes, "\\\"components\\\":3", "\\\"components\\\":4"));
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    std::fprintf(stderr, "usage: %s <corpus folder> [<flow corpus folder>]\n", argv[0]);
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  int count = 0;
  const auto save = [&](const char* kind, const Bytes& bytes) {
    const auto path = dir / (std::string(kind) + "-" + std::to_string(count++) + ".safetensors");
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  };
  for (const Bytes& b : valid_files()) save("valid", b);
  for (const Bytes& b : broken_files()) save("broken", b);
  std::printf("wrote %d seed files to %s\n", count, dir.c_str());
  if (argc == 3) {
    const std::filesystem::path flows = argv[2];
    std::filesystem::create_directories(flows);
    int n = 0;
    for (const Bytes& b : flow_files()) {
      std::ofstream(flows / ("flow-" + std::to_string(n++) + ".safetensors"), std::ios::binary)
          .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    }
    std::printf("wrote %d flow seed files to %s\n", n, flows.c_str());
  }
  return 0;
}
