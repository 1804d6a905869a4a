#include "knead/io/safetensors.hpp"

#include <bit>
#include <cstring>
#include <limits>
#include <random>

#include "support.hpp"

using namespace knead;
using namespace knead::io;
namespace fs = std::filesystem;

namespace {

/// A file built by hand: the length field (header.size() unless overridden), the header text and
/// `data` zero bytes, so every malformation can be written down literally.
Bytes raw_file(std::string_view header, std::size_t data = 0, std::optional<std::uint64_t> length = {}) {
  const std::uint64_t n = length.value_or(header.size());
  Bytes out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data, 0);
  return out;
}

template <class T>
std::vector<T> random_values(std::size_t n, std::mt19937& rng) {
  std::normal_distribution<double> normal(0.0, 3.0);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(normal(rng));
  return v;
}

/// Bitwise equality, so that NaNs and signed zeros count too.
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// Built by appending: GCC 12 reports a false -Wrestrict for "t" + std::to_string(k).
std::string tensor_name(std::size_t k) { return std::string("t").append(std::to_string(k)); }

std::string header_text(const Bytes& file) {
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<std::uint64_t>(file.at(i)) << (8 * i);
  return std::string(file.begin() + 8, file.begin() + 8 + static_cast<std::ptrdiff_t>(n));
}

void check_malformed(const Bytes& file, const std::string& expected) {
  INFO("expecting: " << expected);
  CHECK_THROWS_AS(SafetensorsFile(file), FormatError);
  CHECK_THROWS_WITH(SafetensorsFile(file), Catch::Contains("SafetensorsFile") && Catch::Contains(expected));
}

}  // namespace

TEMPLATE_TEST_CASE("safetensors round-trips tensors of every shape", "[io][safetensors]", float, double) {
  std::mt19937 rng(11);
  const std::vector<SafetensorsWriter::Shape> shapes = {{}, {0}, {1}, {5}, {2, 3}, {2, 0, 4}, {1, 2, 3, 2}};
  SafetensorsWriter writer;
  std::vector<std::vector<TestType>> values;
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    std::size_t n = 1;
    for (const auto d : shapes[k]) n *= d;
    values.push_back(random_values<TestType>(n, rng));
    writer.add(tensor_name(k), values.back(), shapes[k]);
  }
  writer.set_metadata("format", "knead-test");
  writer.set_metadata("note", "ünïcode ✓");
  const SafetensorsFile file(writer.bytes());
  REQUIRE(file.tensors().size() == shapes.size());
  for (std::size_t k = 0; k < shapes.size(); ++k) {
    CAPTURE(k);
    const auto name = tensor_name(k);
    const TensorInfo& t = file.tensor(name);
    CHECK(t.dtype == dtype_of<TestType>);
    CHECK(t.shape == shapes[k]);
    CHECK(t.element_count == values[k].size());
    CHECK(file.bytes(name).size() == values[k].size() * sizeof(TestType));
    CHECK(same_bits(file.read<TestType>(name), values[k]));
  }
  CHECK(file.metadata().size() == 2);
  CHECK(file.metadata().at("format") == "knead-test");
  CHECK(file.metadata().at("note") == "ünïcode ✓");
}

TEST_CASE("safetensors keeps special values bit for bit", "[io][safetensors]") {
  const std::vector<double> d = {0.0,
                                 -0.0,
                                 std::numeric_limits<double>::infinity(),
                                 -std::numeric_limits<double>::infinity(),
                                 std::numeric_limits<double>::quiet_NaN(),
                                 std::numeric_limits<double>::denorm_min(),
                                 std::numeric_limits<double>::max()};
  const std::vector<float> f = {-0.0f, std::numeric_limits<float>::denorm_min(),
                                std::numeric_limits<float>::lowest()};
  SafetensorsWriter writer;
  writer.add("d", d, {7});
  writer.add("f", f, {3});
  const SafetensorsFile file(writer.bytes());
  CHECK(same_bits(file.read<double>("d"), d));
  CHECK(same_bits(file.read<float>("f"), f));
}

TEST_CASE("safetensors writes the documented layout", "[io][safetensors]") {
  SafetensorsWriter writer;
  writer.add("x", std::vector<float>{1.0f}, {});
  const Bytes bytes = writer.bytes();
  // {"x":{"dtype":"F32","shape":[],"data_offsets":[0,4]}} is 53 bytes, padded with 3 spaces to 56.
  const std::string header = R"({"x":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}   )";
  Bytes expected(8 + header.size());
  expected[0] = 56;
  std::copy(header.begin(), header.end(), expected.begin() + 8);
  for (const std::uint8_t b : {0x00, 0x00, 0x80, 0x3f}) expected.push_back(b);  // 1.0f, little-endian
  CHECK(bytes == expected);

  // Metadata first; F64 tensors before F32, then by name, so each is aligned to its element size.
  SafetensorsWriter mixed;
  mixed.add("b", std::vector<float>{1, 2, 3}, {3});
  mixed.add("a", std::vector<float>{4}, {1});
  mixed.add("z", std::vector<double>{5, 6}, {2});
  mixed.set_metadata("k", "v");
  const Bytes m = mixed.bytes();
  CHECK(header_text(m).rfind(
            R"({"__metadata__":{"k":"v"},"z":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},)"
            R"("a":{"dtype":"F32","shape":[1],"data_offsets":[16,20]},)"
            R"("b":{"dtype":"F32","shape":[3],"data_offsets":[20,32]}})",
            0) == 0);
  CHECK(header_text(m).size() % 8 == 0);
  const SafetensorsFile file(m);
  CHECK(file.tensors()[0].name == "z");
  CHECK(file.tensors()[1].name == "a");
  CHECK(file.tensors()[2].name == "b");
}

TEST_CASE("safetensors output is deterministic whatever the order of the calls", "[io][safetensors]") {
  std::mt19937 rng(3);
  const auto a = random_values<float>(6, rng);
  const auto b = random_values<double>(4, rng);
  const auto c = random_values<float>(1, rng);
  SafetensorsWriter one, two;
  one.add("a", a, {2, 3});
  one.add("b", b, {4});
  one.add("c", c, {});
  one.set_metadata("x", "1");
  one.set_metadata("y", "2");
  two.set_metadata("y", "2");
  two.add("c", c, {});
  two.add("b", b, {4});
  two.set_metadata("x", "1");
  two.add("a", a, {2, 3});
  CHECK(one.bytes() == two.bytes());
  CHECK(one.bytes() == one.bytes());
  const std::string header = header_text(one.bytes());
  CHECK(header.size() % 8 == 0);
  CHECK(header.find_last_not_of(' ') + 1 + 8 > header.size());  // at most 7 spaces of padding
}

TEST_CASE("safetensors converts between F32 and F64 on request", "[io][safetensors]") {
  const std::vector<float> f = {0.1f, -2.5f, 3.0e38f};
  const std::vector<double> d = {0.1, -1.0 / 3.0, 1e-300, std::numeric_limits<double>::infinity()};
  SafetensorsWriter writer;
  writer.add("f", f, {3});
  writer.add("d", d, {4});
  writer.add("huge", std::vector<double>{1.0, -1e300}, {2});
  const SafetensorsFile file(writer.bytes());
  // F32 → double is exact.
  const auto widened = file.read<double>("f");
  for (std::size_t i = 0; i < f.size(); ++i) CHECK(widened[i] == static_cast<double>(f[i]));
  // F64 → float rounds, so it must be asked for.
  CHECK_THROWS_WITH(file.read<float>("d"), Catch::Contains("SafetensorsFile::read") &&
                                               Catch::Contains("'d'") && Catch::Contains("F64") &&
                                               Catch::Contains("Narrowing::allow"));
  const auto narrowed = file.read<float>("d", Narrowing::allow);
  for (std::size_t i = 0; i < d.size(); ++i) CHECK(narrowed[i] == static_cast<float>(d[i]));
  CHECK(narrowed[2] == 0.0f);  // underflow rounds to zero, as a cast does
  CHECK_THROWS_WITH(file.read<float>("huge", Narrowing::allow),
                    Catch::Contains("'huge'") && Catch::Contains("-1e+300") && Catch::Contains("index 1") &&
                        Catch::Contains("beyond the range of float"));
  CHECK(file.read<double>("huge")[1] == -1e300);
}

TEST_CASE("safetensors stores Eigen matrices row-major", "[io][safetensors]") {
  Matrix<double> m(2, 3);
  m << 1, 2, 3, 4, 5, 6;
  Vector<float> v(3);
  v << 7, 8, 9;
  SafetensorsWriter writer;
  writer.add_matrix("m", m);
  writer.add_vector("v", v);
  writer.add_vector("row", RowVector<double>::Constant(2, 0.5));
  const SafetensorsFile file(writer.bytes());
  CHECK(file.tensor("m").shape == std::vector<std::uint64_t>{2, 3});
  CHECK(file.read<double>("m") == std::vector<double>{1, 2, 3, 4, 5, 6});  // C order, like numpy
  CHECK(file.read_matrix<double>("m") == m);
  CHECK(file.read_matrix<float>("m", Narrowing::allow) == m.cast<float>());
  CHECK(file.read_vector<float>("v") == v);
  CHECK(file.read_vector<double>("row") == Vector<double>::Constant(2, 0.5));
  CHECK_THROWS_WITH(file.read_matrix<double>("row"), Catch::Contains("read_matrix") &&
                                                         Catch::Contains("'row'") &&
                                                         Catch::Contains("1 dimensions"));
  CHECK_THROWS_WITH(file.read_vector<double>("m"), Catch::Contains("read_vector") && Catch::Contains("'m'") &&
                                                       Catch::Contains("2 dimensions"));
}

TEST_CASE("safetensors finds non-finite values", "[io][safetensors]") {
  SafetensorsWriter writer;
  writer.add("clean", std::vector<float>{1, 2, 3}, {3});
  writer.add("nan", std::vector<float>{1, 2, std::numeric_limits<float>::quiet_NaN(), 4}, {2, 2});
  writer.add("inf", std::vector<double>{-std::numeric_limits<double>::infinity()}, {});
  const SafetensorsFile file(writer.bytes());
  CHECK(!file.find_non_finite("clean"));
  const auto nan = file.find_non_finite("nan");
  REQUIRE(nan);
  CHECK(nan->index == 2);
  CHECK(std::isnan(nan->value));
  REQUIRE(file.find_non_finite("inf"));
  CHECK(file.find_non_finite("inf")->value == -std::numeric_limits<double>::infinity());
  CHECK_NOTHROW(file.require_finite("clean"));
  CHECK_THROWS_WITH(file.require_finite("nan"), Catch::Contains("'nan'") &&
                                                    Catch::Contains("non-finite value nan") &&
                                                    Catch::Contains("index 2"));
  CHECK_THROWS_AS(file.require_finite("inf"), FormatError);
}

TEST_CASE("safetensors saves and loads files", "[io][safetensors]") {
  std::string dir = (fs::temp_directory_path() / "knead-st-XXXXXX").string();
  REQUIRE(::mkdtemp(dir.data()) != nullptr);
  const fs::path path = fs::path(dir) / "flow.safetensors";
  SafetensorsWriter writer;
  writer.add("w", std::vector<double>{1.5, -2.5}, {2});
  writer.write(path);
  const auto file = SafetensorsFile::load(path);
  CHECK(file.read<double>("w") == std::vector<double>{1.5, -2.5});
  CHECK_THROWS_AS(SafetensorsFile::load(fs::path(dir) / "missing"), FileError);
  write_file_atomically(path, raw_file("{"));
  CHECK_THROWS_WITH(SafetensorsFile::load(path), Catch::Contains("SafetensorsFile::load") &&
                                                     Catch::Contains(path.string()) &&
                                                     Catch::Contains("not valid JSON"));
  fs::remove_all(dir);
}

TEST_CASE("safetensors reads other dtypes as bytes but converts only F32 and F64",
          "[io][safetensors][errors]") {
  Bytes file = raw_file(R"({"steps":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8);
  file[file.size() - 8] = 42;
  const SafetensorsFile st(file);
  CHECK(st.tensor("steps").dtype == Dtype::I64);
  CHECK(st.bytes("steps")[0] == 42);
  CHECK_THROWS_WITH(st.read<double>("steps"), Catch::Contains("SafetensorsFile::read") &&
                                                  Catch::Contains("'steps'") &&
                                                  Catch::Contains("has dtype I64"));
  CHECK_THROWS_WITH(st.find_non_finite("steps"), Catch::Contains("only F32 and F64"));
  CHECK_THROWS_WITH(st.read<float>("nope"), Catch::Contains("no tensor named 'nope'"));
  CHECK_THROWS_AS(st.tensor("nope"), FormatError);
  CHECK(!st.contains("nope"));
  CHECK(st.contains("steps"));
}

TEST_CASE("safetensors accepts edge cases of a valid file", "[io][safetensors]") {
  const SafetensorsFile empty(raw_file("{}"));
  CHECK(empty.tensors().empty());
  CHECK(empty.metadata().empty());
  // Padding, a zero-size tensor at the end, and an empty dimension beside the largest one allowed:
  // 2^46 F32 elements span 2^48 bytes. Reading it as a matrix must not loop over its 2^46 columns.
  const SafetensorsFile zero(
      raw_file(R"({"a":{"dtype":"F32","shape":[0,70368744177664],"data_offsets":[4,4]},)"
               R"("b":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}    )",
               4));
  CHECK(zero.tensor("a").element_count == 0);
  CHECK(zero.read<float>("a").empty());
  const Matrix<float> empty_matrix = zero.read_matrix<float>("a");
  CHECK(empty_matrix.rows() == 0);
  CHECK(empty_matrix.cols() == Index{1} << 46);
  const SafetensorsFile minus_zero(raw_file(R"({"a":{"dtype":"F32","shape":[-0],"data_offsets":[0,0]}})"));
  CHECK(minus_zero.tensor("a").shape == std::vector<std::uint64_t>{0});
}

TEST_CASE("safetensors bounds every dimension, also of a tensor without elements",
          "[io][safetensors][errors]") {
  // The fuzzer's finding: zero elements, and a second dimension whose loop would never end.
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[0,1844674407741910323],"data_offsets":[0,0]}})"),
                  "tensor 'a': shape [0,1844674407741910323] of F32 spans more than 2^48 bytes");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}})"),
                  "spans more than 2^48 bytes");
  check_malformed(raw_file(R"({"a":{"dtype":"U8","shape":[65536,0,65536,65537],"data_offsets":[0,0]}})"),
                  "spans more than 2^48 bytes");
  // 2^45 F64 elements span exactly 2^48 bytes; one more is over
  CHECK_NOTHROW(
      SafetensorsFile(raw_file(R"({"a":{"dtype":"F64","shape":[35184372088832,0],"data_offsets":[0,0]}})")));
  check_malformed(raw_file(R"({"a":{"dtype":"F64","shape":[35184372088833,0],"data_offsets":[0,0]}})"),
                  "of F64 spans more than 2^48 bytes");
}

TEST_CASE("safetensors rejects truncated files and bad header lengths", "[io][safetensors][errors]") {
  check_malformed(Bytes{}, "file has 0 bytes, too short");
  check_malformed(Bytes(7, 0), "file has 7 bytes, too short");
  check_malformed(raw_file("{}", 0, 3), "header length 3 is larger than the 2 bytes");
  const Bytes whole = raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8);
  check_malformed(Bytes(whole.begin(), whole.end() - 20), "is larger than the");
  check_malformed(raw_file("{}", 0, std::uint64_t{1} << 63),
                  "header length 9223372036854775808 exceeds the limit");
  check_malformed(raw_file("{}", 0, 100'000'001), "exceeds the limit of 100000000 bytes");
  check_malformed(raw_file("{}", 0, std::numeric_limits<std::uint64_t>::max()), "exceeds the limit");
}

TEST_CASE("safetensors rejects malformed JSON headers", "[io][safetensors][errors]") {
  check_malformed(raw_file(""), "header is not valid JSON");
  check_malformed(raw_file("{"), "header is not valid JSON");
  check_malformed(raw_file("{} x"), "header is not valid JSON");
  check_malformed(raw_file("{\"a\xff\":1}"), "header is not valid JSON");  // invalid UTF-8
  check_malformed(raw_file("[]"), "header must be a JSON object, got array");
  check_malformed(raw_file("3"), "header must be a JSON object, got number");
  check_malformed(raw_file(R"({"a":[[[[]]]]})"), "header nests deeper than a safetensors header can");
  check_malformed(raw_file(std::string(100'000, '[') + std::string(100'000, ']')), "nests deeper");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                           R"("a":{"dtype":"F32","shape":[],"data_offsets":[4,8]}})",
                           8),
                  "header has the key 'a' twice (duplicate tensor name)");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","dtype":"F64","shape":[],"data_offsets":[0,4]}})", 4),
                  "header has the key 'dtype' twice");
}

TEST_CASE("safetensors rejects missing and ill-typed fields", "[io][safetensors][errors]") {
  check_malformed(raw_file(R"({"a":3})"), "tensor 'a' must be an object, got number");
  check_malformed(raw_file(R"({"a":{"shape":[],"data_offsets":[0,4]}})", 4),
                  "tensor 'a' has no \"dtype\" field");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4),
                  "tensor 'a' has no \"shape\" field");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[]}})", 4),
                  "tensor 'a' has no \"data_offsets\" field");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[],"data_offsets":[0,4],"extra":1}})", 4),
                  "tensor 'a' has an unknown field 'extra'");
  check_malformed(raw_file(R"({"a":{"dtype":32,"shape":[],"data_offsets":[0,4]}})", 4),
                  "tensor 'a': dtype must be a string, got number");
  check_malformed(raw_file(R"({"a":{"dtype":"F128","shape":[],"data_offsets":[0,16]}})", 16),
                  "tensor 'a' has an unknown dtype 'F128'");
  check_malformed(raw_file(R"({"a":{"dtype":"f32","shape":[],"data_offsets":[0,4]}})", 4),
                  "unknown dtype 'f32'");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":3,"data_offsets":[0,4]}})", 4),
                  "tensor 'a': shape must be an array, got number");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":["3"],"data_offsets":[0,12]}})", 12),
                  "tensor 'a': shape entry \"3\" is not an integer");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8),
                  "shape entry 2.5 is not an integer");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,8]}})", 8),
                  "is not an integer");  // 2^64 does not fit, so nlohmann reads it as a float
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[2,-3],"data_offsets":[0,8]}})", 8),
                  "tensor 'a': shape entry -3 is negative");
  check_malformed(raw_file(R"({"__metadata__":["x"]})"),
                  "__metadata__ must be an object of strings, got array");
  check_malformed(raw_file(R"({"__metadata__":{"epoch":3}})"),
                  "__metadata__ value of 'epoch' must be a string, got number");
  check_malformed(raw_file(R"({"__metadata__":{"k":null}})"), "must be a string, got null");
}

TEST_CASE("safetensors rejects overflowing shapes and wrong offsets", "[io][safetensors][errors]") {
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})"),
                  "tensor 'a': shape [4294967296,4294967296] of F32 spans more than 2^48 bytes");
  check_malformed(raw_file(R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})"),
                  "shape [4611686018427387904] of F64 spans more than 2^48 bytes");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[],"data_offsets":4}})", 4),
                  "data_offsets must be an array [begin, end], got 4");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[],"data_offsets":[0,4,8]}})", 8),
                  "data_offsets must be an array [begin, end], got [0,4,8]");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[],"data_offsets":[-4,0]}})", 4),
                  "data_offsets entry -4 is negative");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[],"data_offsets":[0,"4"]}})", 4),
                  "data_offsets entry \"4\" is not an integer");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[],"data_offsets":[8,4]}})", 8),
                  "data_offsets [8, 4] run backwards");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[],"data_offsets":[4,8]}})", 4),
                  "data_offsets [4, 8] go beyond the data section of 4 bytes");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[],"data_offsets":[18446744073709551611,)"
                           R"(18446744073709551615]}})",
                           4),
                  "go beyond the data section");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
                  "data_offsets [0, 8] span 8 bytes but shape [3] of F32 needs 12");
  check_malformed(raw_file(R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,4]}})", 4), "of F64 needs 8");
}

TEST_CASE("safetensors requires the tensors to cover the data section exactly", "[io][safetensors][errors]") {
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                           12),
                  "tensor 'b' (bytes 4..12) overlaps tensor 'a' (bytes 0..8)");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                           8),
                  "overlaps tensor");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                           8),
                  "overlaps tensor");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
                  "gap of 4 unused bytes before tensor 'a' (the data section must be fully covered)");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("b":{"dtype":"F32","shape":[1],"data_offsets":[6,10]}})",
                           10),
                  "gap of 2 unused bytes before tensor 'b'");
  check_malformed(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 7),
                  "data section has 7 bytes but the tensors cover only 4 (3 trailing bytes)");
  check_malformed(raw_file("{}", 1), "data section has 1 bytes but the tensors cover only 0");
}

namespace {
std::string message_of(const Bytes& file) {
  try {
    SafetensorsFile st(file);
  } catch (const FormatError& e) {
    return e.what();
  }
  return "no exception";
}
}  // namespace

TEST_CASE("safetensors error messages show hostile names safely", "[io][safetensors][errors]") {
  // Names are cut to 80 bytes and control characters replaced, so a message stays short and printable.
  const std::string tensor = R"(":{"dtype":"F32","shape":[],"data_offsets":[0,8]}})";
  const std::string long_message = message_of(raw_file("{\"" + std::string(500, 'n') + tensor, 8));
  CHECK_THAT(long_message, Catch::Contains("tensor '" + std::string(80, 'n') + "…'"));
  CHECK(long_message.find(std::string(81, 'n')) == std::string::npos);
  CHECK(long_message.size() < 300);
  CHECK_THAT(message_of(raw_file(R"({"a\u0001\n":{"dtype":"F32","shape":[],"data_offsets":[0,8]}})", 8)),
             Catch::Contains("tensor 'a?"
                             "?'"));
  // A cut never splits a UTF-8 character: 79 ASCII bytes then "é" (2 bytes) keeps only the 79.
  const std::string accented = std::string(79, 'n') + "\xc3\xa9" + "tail";
  CHECK_THAT(message_of(raw_file("{\"" + accented + tensor, 8)),
             Catch::Contains("tensor '" + std::string(79, 'n') + "…'"));
  // Long JSON values are cut too.
  CHECK(message_of(raw_file(R"({"a":{"dtype":"F32","shape":[)" + std::string(1000, '1') +
                                R"(.5],"data_offsets":[0,8]}})",
                            8))
            .size() < 300);
}

TEST_CASE("SafetensorsWriter rejects bad tensors", "[io][safetensors][errors]") {
  SafetensorsWriter writer;
  writer.add("a", std::vector<float>{1}, {});
  CHECK_THROWS_AS(writer.add("a", std::vector<float>{1}, {}), std::invalid_argument);
  CHECK_THROWS_WITH(writer.add("a", std::vector<double>{1}, {}),
                    Catch::Contains("SafetensorsWriter::add") && Catch::Contains("'a' was already added"));
  CHECK_THROWS_WITH(writer.add("__metadata__", std::vector<float>{1}, {}), Catch::Contains("reserved"));
  CHECK_THROWS_WITH(writer.add("b", std::vector<float>{1, 2, 3}, {2, 2}),
                    Catch::Contains("'b' has 3 values but its shape [2,2] holds 4"));
  CHECK_THROWS_WITH(writer.add("c", std::vector<float>{1}, {4294967296, 4294967296}),
                    Catch::Contains("holds more than 2^64"));
  CHECK_THROWS_WITH(writer.add("bad\xff", std::vector<float>{1}, {}),
                    Catch::Contains("SafetensorsWriter::add") && Catch::Contains("not valid UTF-8"));
  CHECK_THROWS_WITH(writer.set_metadata("k", "\xc3"),
                    Catch::Contains("SafetensorsWriter::set_metadata") && Catch::Contains("not valid UTF-8"));
  CHECK_THROWS_WITH(writer.add_vector("m", Matrix<double>::Zero(2, 2)),
                    Catch::Contains("add_vector") && Catch::Contains("'m' is a 2x2 matrix"));
  // The failed calls left the writer as it was.
  const SafetensorsFile file(writer.bytes());
  CHECK(file.tensors().size() == 1);
  CHECK(file.metadata().empty());
}

TEST_CASE("safetensors checks the header length before reading the rest of a file",
          "[io][safetensors][errors]") {
  // A sparse file of 1 TiB (no disk space used) with a hostile length field, loaded with the size
  // limit raised above it: reading the whole file first would try to allocate 1 TiB (std::bad_alloc)
  // before looking at the header. The refusal must name the claimed length and the bound or size.
  std::string dir = (fs::temp_directory_path() / "knead-st-XXXXXX").string();
  REQUIRE(::mkdtemp(dir.data()) != nullptr);
  const fs::path path = fs::path(dir) / "huge.safetensors";
  const std::uint64_t size = std::uint64_t{1} << 40;
  const auto write_sparse = [&](std::uint64_t header_length) {
    write_file_atomically(path, raw_file("", 0, header_length));
    fs::resize_file(path, size);
  };
  write_sparse(200'000'000);  // beyond max_header_bytes
  CHECK_THROWS_WITH(SafetensorsFile::load(path, size),
                    Catch::Contains("SafetensorsFile::load") && Catch::Contains(path.string()) &&
                        Catch::Contains("header length 200000000 exceeds the limit of 100000000"));
  // A header within the bound that parses, whose one tensor claims more than the data section
  // holds: refused after reading the 8 + header bytes, before the 1 TiB of data.
  const std::string header = R"({"a":{"dtype":"U8","shape":[16],"data_offsets":[0,16]}})";
  write_file_atomically(path, raw_file(header));
  fs::resize_file(path, size);
  CHECK_THROWS_WITH(SafetensorsFile::load(path, size),
                    Catch::Contains("data section has " + std::to_string(size - 8 - header.size()) +
                                    " bytes but the tensors cover only 16"));
  // A small file whose length field claims more than it holds.
  write_file_atomically(path, raw_file("{}", 0, 1000));
  CHECK_THROWS_WITH(SafetensorsFile::load(path),
                    Catch::Contains("header length 1000 is larger than the 2 bytes after the length field"));
  fs::remove_all(dir);
}

TEST_CASE("crc32 is CRC-32/ISO-HDLC", "[io][safetensors]") {
  const std::string check = "123456789";
  const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(check.data()),
                                            check.size());
  CHECK(io::detail::crc32(bytes) == 0xCBF43926u);  // the standard check value
  CHECK(io::detail::crc32({}) == 0u);
  CHECK(io::detail::crc32(bytes.subspan(4), io::detail::crc32(bytes.first(4))) == 0xCBF43926u);
  CHECK(io::detail::crc32_text(0xCBF43926u) == "cbf43926");
  CHECK(io::detail::crc32_text(0x0000ABCDu) == "0000abcd");
}

TEST_CASE("a file with a data checksum refuses every flipped byte of its data; one without loads",
          "[io][safetensors][errors]") {
  std::mt19937 rng(11);
  SafetensorsWriter writer;
  writer.add("w", random_values<float>(24, rng), {4, 6});
  writer.add("b", random_values<double>(5, rng), {5});
  writer.set_metadata("format", "knead-test");
  writer.write_data_checksum(true);
  const Bytes good = writer.bytes();
  const SafetensorsFile file(good);
  REQUIRE(file.metadata().count("knead.data_crc32") == 1);
  const std::uint64_t data_start = good.size() - 24 * 4 - 5 * 8;
  for (std::uint64_t i = data_start; i < good.size(); ++i) {
    for (const std::uint8_t flip : {std::uint8_t{0x01}, std::uint8_t{0x80}}) {
      Bytes bad = good;
      bad[i] ^= flip;
      CAPTURE(i, int(flip));
      CHECK_THROWS_AS(SafetensorsFile(bad), FormatError);
      CHECK_THROWS_WITH(SafetensorsFile(bad),
                        Catch::Contains("corrupted") && Catch::Contains("CRC-32 is ") &&
                            Catch::Contains("records " + file.metadata().at("knead.data_crc32")));
    }
  }
  // Through a file: the error names it.
  test::TempDir dir;
  const fs::path path = dir.path() / "flipped.safetensors";
  Bytes bad = good;
  bad.back() ^= 0x10;
  write_file_atomically(path, bad);
  CHECK_THROWS_WITH(SafetensorsFile::load(path),
                    Catch::Contains("flipped.safetensors") && Catch::Contains("corrupted"));
  // Without the key (another writer, an older knead), the same data loads unchecked.
  writer.write_data_checksum(false);
  const Bytes plain = writer.bytes();
  const SafetensorsFile unchecked(plain);
  CHECK(unchecked.metadata().count("knead.data_crc32") == 0);
  Bytes flipped = plain;
  flipped.back() ^= 0x10;
  CHECK_NOTHROW(SafetensorsFile(flipped));
  // A checksum given as metadata is never written stale: replaced when on, dropped when off.
  writer.set_metadata("knead.data_crc32", "00000000");
  CHECK(SafetensorsFile(writer.bytes()).metadata().count("knead.data_crc32") == 0);
  writer.write_data_checksum(true);
  CHECK(SafetensorsFile(writer.bytes()).metadata().at("knead.data_crc32") ==
        file.metadata().at("knead.data_crc32"));
}

TEST_CASE("a malformed data checksum is refused", "[io][safetensors][errors]") {
  check_malformed(raw_file(R"({"__metadata__":{"knead.data_crc32":"CBF43926"}})"),
                  "'knead.data_crc32' is 'CBF43926', not 8 lowercase hexadecimal digits");
  check_malformed(raw_file(R"({"__metadata__":{"knead.data_crc32":"1234"}})"), "not 8 lowercase");
  // an empty data section has CRC-32 0
  CHECK_NOTHROW(SafetensorsFile(raw_file(R"({"__metadata__":{"knead.data_crc32":"00000000"}})")));
  check_malformed(raw_file(R"({"__metadata__":{"knead.data_crc32":"00000001"}})"), "corrupted");
}
