#include "knead/data/npy.hpp"

#include <unistd.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "support.hpp"

using namespace knead;
using namespace knead::data;

namespace {

using NpyBytes = std::vector<std::uint8_t>;

/// A .npy file built by hand: magic, version, header length (2 bytes for version 1, else 4,
/// little-endian), the header as given (no padding added) and the data bytes.
NpyBytes npy_file(unsigned major, const std::string& header, const NpyBytes& data) {
  NpyBytes out = {0x93, 'N', 'U', 'M', 'P', 'Y', std::uint8_t(major), 0};
  const std::size_t length_bytes = major == 1 ? 2 : 4;
  for (std::size_t b = 0; b < length_bytes; ++b) out.push_back(std::uint8_t(header.size() >> (8 * b)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

/// The bytes of each value stored as `Stored` in little- or big-endian order.
template <class Stored>
NpyBytes npy_values(const std::vector<Stored>& values, bool big_endian) {
  NpyBytes out;
  for (const Stored v : values) {
    std::uint8_t b[sizeof(Stored)];
    std::memcpy(b, &v, sizeof(Stored));
    if ((std::endian::native == std::endian::big) != big_endian) std::reverse(b, b + sizeof(Stored));
    out.insert(out.end(), b, b + sizeof(Stored));
  }
  return out;
}

std::string npy_header(const std::string& descr, bool fortran, const std::string& shape) {
  return "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
         ", 'shape': " + shape + ", }\n";
}

template <class T>
NpyTable<T> npy_read(const NpyBytes& bytes) {
  return read_npy_bytes<T>(bytes, "test.npy");
}

/// A path in the system's temporary directory, removed at the end of the test.
struct NpyTempPath {
  std::filesystem::path path;
  explicit NpyTempPath(const std::string& name)
      : path(std::filesystem::temp_directory_path() /
             ("knead_npy_test_" + std::to_string(::getpid()) + "_" + name + ".npy")) {}
  ~NpyTempPath() { std::filesystem::remove(path); }
};

/// The 3×2 array [[1, 2], [3, 4], [5, -6]] as a matrix: 2×3, column n = row n.
Matrix<double> npy_expected() {
  Matrix<double> m(2, 3);
  m << 1, 3, 5, 2, 4, -6;
  return m;
}

}  // namespace

TEMPLATE_TEST_CASE("read_npy reads every supported dtype in both byte orders and element orders", "[data]",
                   float, double) {
  const Matrix<TestType> expected = npy_expected().cast<TestType>();
  const std::vector<double> c_order = {1, 2, 3, 4, 5, -6}, f_order = {1, 3, 5, 2, 4, -6};
  for (const bool big : {false, true})
    for (const bool fortran : {false, true}) {
      const std::vector<double>& v = fortran ? f_order : c_order;
      const char order = big ? '>' : '<';
      const auto check = [&](const std::string& kind, const NpyBytes& data) {
        INFO(kind << " big-endian " << big << " fortran " << fortran);
        const NpyTable<TestType> table =
            npy_read<TestType>(npy_file(1, npy_header(order + kind, fortran, "(3, 2)"), data));
        CHECK(table.shape == std::vector<std::size_t>{3, 2});
        CHECK(table.data == expected);
      };
      check("f8", npy_values(v, big));
      check("f4", npy_values(std::vector<float>(v.begin(), v.end()), big));
      check("i1", npy_values(std::vector<std::int8_t>(v.begin(), v.end()), big));
      check("i2", npy_values(std::vector<std::int16_t>(v.begin(), v.end()), big));
      check("i4", npy_values(std::vector<std::int32_t>(v.begin(), v.end()), big));
      check("i8", npy_values(std::vector<std::int64_t>(v.begin(), v.end()), big));
    }
  // Unsigned types and the '|' (not applicable) byte order of one-byte types.
  const NpyBytes u1 = {1, 2, 250};
  const NpyTable<TestType> bytes = npy_read<TestType>(npy_file(1, npy_header("|u1", false, "(3,)"), u1));
  CHECK(bytes.shape == std::vector<std::size_t>{3});
  REQUIRE((bytes.data.rows() == 1 && bytes.data.cols() == 3));
  CHECK(bytes.data(0, 2) == TestType(250));
  const std::vector<std::uint32_t> u4 = {4000000000u, 7};
  CHECK(npy_read<TestType>(npy_file(1, npy_header("<u4", false, "(2,)"), npy_values(u4, false))).data(0, 0) ==
        TestType(4000000000.0));
  const std::vector<std::uint64_t> u8 = {1, 1u << 20};
  CHECK(npy_read<TestType>(npy_file(1, npy_header(">u8", false, "(2,)"), npy_values(u8, true))).data(0, 1) ==
        TestType(1u << 20));
  const std::vector<std::uint16_t> u2 = {65535};
  CHECK(npy_read<TestType>(npy_file(1, npy_header("<u2", false, "(1,)"), npy_values(u2, false))).data(0, 0) ==
        TestType(65535));
}

TEST_CASE("read_npy reads format versions 1, 2 and 3 and headers as numpy writes them", "[data]") {
  const NpyBytes data = npy_values(std::vector<double>{1, 2, 3, 4, 5, -6}, false);
  for (const unsigned major : {1u, 2u, 3u}) {
    INFO("version " << major);
    CHECK(npy_read<double>(npy_file(major, npy_header("<f8", false, "(3, 2)"), data)).data == npy_expected());
  }
  // Keys in another order, double quotes, no trailing comma, padding spaces; a UTF-8 byte in a
  // version 3 header is part of a string and not otherwise looked at.
  const std::string padded =
      "{\"shape\":(3,2),'fortran_order':False,'descr':'<f8'}" + std::string(20, ' ') + "\n";
  CHECK(npy_read<double>(npy_file(1, padded, data)).data == npy_expected());
  // A one-element shape with and without a trailing comma.
  CHECK(npy_read<double>(npy_file(3, npy_header("<f8", false, "(6,)"), data)).data.cols() == 6);
  CHECK(npy_read<double>(npy_file(2, npy_header("<f8", false, "(6)"), data)).data.rows() == 1);
}

TEST_CASE("read_npy refuses malformed and hostile files with one line naming the file", "[data][errors]") {
  using Catch::Contains;
  const NpyBytes six = npy_values(std::vector<double>{1, 2, 3, 4, 5, 6}, false);
  const auto refused = [](const NpyBytes& bytes, const std::string& what) {
    INFO(what);
    try {
      (void)npy_read<double>(bytes);
      FAIL("read");
    } catch (const std::invalid_argument& e) {
      const std::string message = e.what();
      CHECK_THAT(message, Contains("read_npy") && Contains("test.npy") && Contains(what));
      CHECK(message.find('\n') == std::string::npos);
    }
  };
  refused({}, "not a .npy file");
  refused({'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0, 0}, "not a .npy file");
  NpyBytes version9 = npy_file(1, npy_header("<f8", false, "(3, 2)"), six);
  version9[6] = 9;
  refused(version9, "version 9");
  refused(NpyBytes{0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 10, 0}, "truncated");
  // header length beyond the file (version 1 and a 4-byte length of ~4 GB in version 2)
  NpyBytes long_header = npy_file(1, npy_header("<f8", false, "(3, 2)"), {});
  long_header[8] = 0xFF;
  long_header[9] = 0xFF;
  refused(long_header, "header length 65535 goes beyond");
  NpyBytes huge_header = npy_file(2, npy_header("<f8", false, "(3, 2)"), six);
  huge_header[11] = 0xF0;
  refused(huge_header, "goes beyond");
  // data
  refused(npy_file(1, npy_header("<f8", false, "(3, 2)"), NpyBytes(six.begin(), six.end() - 1)),
          "needs 48 bytes of data, the file has 47");
  refused(npy_file(1, npy_header("<f8", false, "(3, 2)"), NpyBytes(six.begin(), six.end() - 8)),
          "the file has 40");
  refused(npy_file(1, npy_header("<f8", false, "(2, 2)"), six), "needs 32 bytes of data, the file has 48");
  refused(npy_file(1, npy_header("<f8", false, "(1000000000, 1000)"), six), "needs 8000000000000 bytes");
  refused(npy_file(1, npy_header("<f8", false, "(4611686018427387904, 4)"), six), "overflows");
  refused(npy_file(1, npy_header("<f8", false, "(18446744073709551615, 18446744073709551615)"), six),
          "overflows");
  refused(npy_file(1, npy_header("<f8", false, "(99999999999999999999999, 1)"), six), "not a size");
  refused(npy_file(1, npy_header("<f8", false, "(0, 2)"), {}), "empty array");
  refused(npy_file(1, npy_header("<f8", false, "(1, 2, 3)"), six), "3 dimensions");
  refused(npy_file(1, npy_header("<f8", false, "()"), six), "0 dimensions");
  // dtypes
  refused(npy_file(1, npy_header("|O", false, "(6,)"), six), "object arrays");
  refused(npy_file(1, npy_header("<c16", false, "(3,)"), six), "unsupported dtype '<c16'");
  refused(npy_file(1, npy_header("<f2", false, "(24,)"), six), "unsupported dtype '<f2'");
  refused(npy_file(1, npy_header("<U8", false, "(6,)"), six), "unsupported dtype");
  refused(npy_file(1, npy_header("f8", false, "(6,)"), six), "unsupported dtype");
  // keys
  refused(npy_file(1, "{'descr': '<f8', 'shape': (6,), }\n", six), "'fortran_order' is missing");
  refused(npy_file(1, "{'descr': '<f8', 'fortran_order': False}\n", six), "'shape' is missing");
  refused(npy_file(1, "{'fortran_order': False, 'shape': (6,)}\n", six), "'descr' is missing");
  refused(npy_file(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), 'x': 1}\n", six),
          "unknown key 'x'");
  refused(npy_file(1, "{'descr': '<f8', 'fortran_order': maybe, 'shape': (6,)}\n", six), "True or False");
  refused(npy_file(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (6,)", six), "bad header");
  refused(npy_file(1, "{'descr: '<f8'}", six), "bad header");
}

TEMPLATE_TEST_CASE("read_npy refuses non-finite values naming their row and column", "[data][errors]", float,
                   double) {
  using Catch::Contains;
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(npy_read<TestType>(npy_file(1, npy_header("<f8", false, "(3, 2)"),
                                                npy_values<double>({1, 2, 3, nan, 5, 6}, false))),
                    Contains("test.npy") && Contains("row 2, column 2 has the non-finite value nan"));
  // Fortran order: the fourth stored value is row 1, column 2.
  CHECK_THROWS_WITH(npy_read<TestType>(npy_file(1, npy_header(">f4", true, "(3, 2)"),
                                                npy_values<float>({1, 2, 3, -float(inf), 5, 6}, true))),
                    Contains("row 1, column 2 has the non-finite value -inf"));
  const NpyBytes big = npy_file(1, npy_header("<f8", false, "(1,)"), npy_values<double>({1e39}, false));
  if constexpr (std::is_same_v<TestType, float>)  // finite as a double, infinite as a float
    CHECK_THROWS_WITH(npy_read<TestType>(big), Contains("row 1, column 1 has the non-finite value 1e+39"));
  else
    CHECK(npy_read<TestType>(big).data(0, 0) == 1e39);
}

TEST_CASE("read_npy keeps non-finite values where asked, in their places", "[data]") {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const NpyBytes bytes =
      npy_file(1, npy_header("<f8", false, "(3, 2)"), npy_values<double>({1, 2, 3, nan, -inf, 6}, false));
  const NpyTable<double> kept = read_npy_bytes<double>(bytes, "test.npy", NonFiniteValues::keep);
  REQUIRE(kept.data.rows() == 2);
  REQUIRE(kept.data.cols() == 3);
  CHECK(kept.data(0, 0) == 1);
  CHECK(kept.data(1, 0) == 2);
  CHECK(kept.data(0, 1) == 3);
  CHECK(std::isnan(kept.data(1, 1)));
  CHECK(kept.data(0, 2) == -inf);
  CHECK(kept.data(1, 2) == 6);
}

TEST_CASE("read_npy reads files and reports a missing one", "[data]") {
  const NpyTempPath file("read");
  const NpyBytes bytes =
      npy_file(1, npy_header(">i8", true, "(3, 2)"), npy_values<std::int64_t>({1, 3, 5, 2, 4, -6}, true));
  std::ofstream(file.path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  CHECK(read_npy<double>(file.path).data == npy_expected());
  const NpyTempPath missing("missing");
  CHECK_THROWS_AS(read_npy<double>(missing.path), FileError);
}

TEMPLATE_TEST_CASE("write_npy writes what read_npy reads back bit for bit", "[data]", float, double) {
  const NpyTempPath file("write");
  Matrix<TestType> m(3, 5);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = TestType(std::sin(double(i) * 1.7) * 1e3) / TestType(7);
  write_npy(file.path, m);
  const NpyTable<TestType> back = read_npy<TestType>(file.path);
  CHECK(back.shape == std::vector<std::size_t>{5, 3});
  CHECK(back.data == m);
  // The header is version 1.0, C order, little-endian, and the data starts at a multiple of 64.
  const io::Bytes bytes = io::read_file_bytes(file.path);
  CHECK(bytes[6] == 1);
  const std::size_t header_length = bytes[8] + 256u * bytes[9];
  CHECK((10 + header_length) % 64 == 0);
  CHECK(bytes.size() == 10 + header_length + m.size() * sizeof(TestType));
  const std::string header(bytes.begin() + 10, bytes.begin() + 10 + std::ptrdiff_t(header_length));
  CHECK_THAT(header, Catch::Contains(sizeof(TestType) == 4 ? "'<f4'" : "'<f8'") &&
                         Catch::Contains("'fortran_order': False") && Catch::Contains("(5, 3)"));

  RowVector<TestType> log_density(4);
  log_density << TestType(-1.5), TestType(0.25), TestType(-1e-3), TestType(8);
  write_npy(file.path, log_density);
  const NpyTable<TestType> values = read_npy<TestType>(file.path);
  CHECK(values.shape == std::vector<std::size_t>{4});
  CHECK(values.data == Matrix<TestType>(log_density));

  CHECK_THROWS_WITH(write_npy(file.path, Matrix<TestType>(0, 3)),
                    Catch::Contains("write_npy") && Catch::Contains("empty"));
}
