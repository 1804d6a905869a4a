#include "knead/data/csv.hpp"

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "support.hpp"

using namespace knead;
using namespace knead::data;

namespace {

template <class T>
Matrix<T> parse(const std::string& text, CsvOptions options = {}) {
  std::istringstream in(text);
  return read_csv<T>(in, options, "test.csv");
}

template <class T>
CsvTable<T> parse_table(const std::string& text, CsvOptions options = {}) {
  std::istringstream in(text);
  return read_csv_table<T>(in, options, "test.csv");
}

/// A file in the system's temporary directory, removed again at the end of the test.
struct TempFile {
  std::filesystem::path path;
  explicit TempFile(const std::string& text)
      : path(std::filesystem::temp_directory_path() /
             ("knead_csv_test_" + std::to_string(::getpid()) + ".csv")) {
    std::ofstream(path) << text;
  }
  ~TempFile() { std::filesystem::remove(path); }
};

}  // namespace

TEMPLATE_TEST_CASE("read_csv returns one column per row and one dimension per field", "[data]", float,
                   double) {
  const Matrix<TestType> m = parse<TestType>("1,2,3\n4,5,6\n");
  Matrix<TestType> expected(3, 2);
  expected << 1, 4, 2, 5, 3, 6;
  CHECK(m == expected);

  const Matrix<TestType> one = parse<TestType>("0.5\n-1.25\n2e1\n");
  REQUIRE(one.rows() == 1);
  REQUIRE(one.cols() == 3);
  CHECK(one(0, 2) == TestType(20));
}

TEST_CASE("read_csv accepts padding, signs, exponents, CRLF and blank lines", "[data]") {
  const Matrix<double> m = parse<double>("\n  x , y \r\n 1.5 ,\t-2e-3\r\n\n+3 , 4E2 \n\n");
  REQUIRE(m.rows() == 2);
  REQUIRE(m.cols() == 2);
  CHECK(m(0, 0) == 1.5);
  CHECK(m(1, 0) == -0.002);
  CHECK(m(0, 1) == 3.0);
  CHECK(m(1, 1) == 400.0);
}

TEST_CASE("read_csv detects a header or takes the caller's word for it", "[data]") {
  const CsvTable<double> named = parse_table<double>("x,y\n1,2\n");
  CHECK(named.names == std::vector<std::string>{"x", "y"});
  CHECK(named.data.cols() == 1);

  const CsvTable<double> plain = parse_table<double>("1,2\n3,4\n");
  CHECK(plain.names.empty());
  CHECK(plain.data.cols() == 2);

  // Numeric names are a header only when the caller says so.
  const CsvTable<double> numeric_names = parse_table<double>("1,2\n3,4\n", {CsvHeader::present});
  CHECK(numeric_names.names == std::vector<std::string>{"1", "2"});
  CHECK(numeric_names.data.cols() == 1);
  CHECK(numeric_names.data(0, 0) == 3.0);

  // A line with one number in it is data, so a bad value there is reported as such.
  CHECK_THROWS_WITH(parse<double>("1.5,abc\n"), Catch::Contains("line 1") && Catch::Contains("'abc'"));
  CHECK_THROWS_WITH(parse<double>("x,y\n1,2\n", {CsvHeader::absent}), Catch::Contains("test.csv line 1") &&
                                                                          Catch::Contains("'x'") &&
                                                                          Catch::Contains("column 1"));
}

TEST_CASE("read_csv takes other delimiters, including runs of whitespace", "[data]") {
  const Matrix<double> semicolons = parse<double>("a;b\n1;2\n", {CsvHeader::detect, ';'});
  CHECK(semicolons.rows() == 2);
  CHECK(semicolons(1, 0) == 2.0);
  const Matrix<double> spaces = parse<double>("  1   2\t3\n4 5  6  \n", {CsvHeader::detect, ' '});
  REQUIRE(spaces.rows() == 3);
  REQUIRE(spaces.cols() == 2);
  CHECK(spaces(2, 1) == 6.0);
  CHECK_THROWS_WITH(parse<double>("1,2\n", {CsvHeader::detect, '.'}),
                    Catch::Contains("read_csv") && Catch::Contains("delimiter") && Catch::Contains("'.'"));
  CHECK_THROWS_WITH(parse<double>("1,2\n", {CsvHeader::detect, '\n'}), Catch::Contains("delimiter"));
}

TEST_CASE("read_csv reports every malformed row with its line number", "[data][errors]") {
  using Catch::Contains;
  CHECK_THROWS_AS(parse<double>("1,2\n3\n"), std::invalid_argument);
  CHECK_THROWS_WITH(parse<double>("x,y\n1,2\n\n3,4,5\n"), Contains("read_csv") &&
                                                              Contains("test.csv line 4") &&
                                                              Contains("expected 2 fields, got 3"));
  CHECK_THROWS_WITH(parse<double>("1,2\n3\n"), Contains("line 2") && Contains("expected 2 fields, got 1"));
  CHECK_THROWS_WITH(parse<double>("1,2\n3,4\n5,six\n"),
                    Contains("line 3") && Contains("cannot read 'six'") && Contains("column 2"));
  CHECK_THROWS_WITH(parse<double>("1,2\n3,4x\n"), Contains("line 2") && Contains("'4x'"));
  CHECK_THROWS_WITH(parse<double>("1,2\n1.2.3,4\n"),
                    Contains("line 2") && Contains("'1.2.3'") && Contains("column 1"));
  CHECK_THROWS_WITH(parse<double>("1,2\n,4\n"), Contains("line 2") && Contains("empty field in column 1"));
}

TEMPLATE_TEST_CASE("read_csv rejects non-finite values with their line number", "[data][errors]", float,
                   double) {
  using Catch::Contains;
  CHECK_THROWS_WITH(parse<TestType>("x,y\n1,nan\n"),
                    Contains("line 2") && Contains("non-finite value 'nan'") && Contains("column 2"));
  CHECK_THROWS_WITH(parse<TestType>("1,2\n3,4\n-inf,5\n"), Contains("line 3") && Contains("'-inf'"));
  CHECK_THROWS_WITH(parse<TestType>("1,2\n1e999,5\n"),
                    Contains("line 2") && Contains("non-finite value '1e999'"));
  // Too small to represent is not an error: it rounds to zero or a subnormal number.
  CHECK(parse<TestType>("1,2\n1e-999,5\n")(0, 1) == TestType(0));
  if constexpr (std::is_same_v<TestType, float>)  // finite as a double, infinite as a float
    CHECK_THROWS_WITH(parse<TestType>("1,2\n1e39,5\n"),
                      Contains("line 2") && Contains("non-finite value '1e39'"));
  else
    CHECK(parse<TestType>("1,2\n1e39,5\n")(0, 1) == 1e39);
}

TEST_CASE("read_csv rejects files without data", "[data][errors]") {
  using Catch::Contains;
  CHECK_THROWS_WITH(parse<double>(""), Contains("read_csv") && Contains("test.csv is empty"));
  CHECK_THROWS_WITH(parse<double>("\n  \n\r\n"), Contains("test.csv is empty"));
  CHECK_THROWS_WITH(parse<double>("x,y\n\n"), Contains("header but no data rows"));
}

TEST_CASE("read_csv reads files and leaves nothing behind when a load fails", "[data]") {
  {
    const TempFile file("x,y\n0.25,-4\n1,2\n");
    const Matrix<double> m = read_csv<double>(file.path.string());
    REQUIRE(m.rows() == 2);
    REQUIRE(m.cols() == 2);
    CHECK(m(0, 0) == 0.25);
    CHECK(read_csv_table<float>(file.path.string()).names == std::vector<std::string>{"x", "y"});
  }
  {
    const TempFile file("1,2\n3,oops\n");
    Matrix<double> kept = Matrix<double>::Constant(1, 1, 7.0);
    CHECK_THROWS_WITH(kept = read_csv<double>(file.path.string()), Catch::Contains(file.path.string()) &&
                                                                       Catch::Contains("line 2") &&
                                                                       Catch::Contains("'oops'"));
    CHECK(kept == Matrix<double>::Constant(1, 1, 7.0));
  }
  const std::string missing =
      (std::filesystem::temp_directory_path() / "knead_no_such_dir" / "none.csv").string();
  CHECK_THROWS_AS(read_csv<double>(missing), std::runtime_error);
  CHECK_THROWS_AS(read_csv<double>(std::filesystem::temp_directory_path().string()), std::runtime_error);
  CHECK_THROWS_WITH(read_csv<double>(missing), Catch::Contains("read_csv") &&
                                                   Catch::Contains("cannot open") &&
                                                   Catch::Contains("none.csv"));
}

TEST_CASE("read_csv skips a UTF-8 byte order mark at the start of the file", "[data]") {
  const Matrix<double> data = parse<double>(
      "\xEF\xBB\xBF"
      "1.5,2\n3,4\n");
  REQUIRE((data.rows() == 2 && data.cols() == 2));
  CHECK(data(0, 0) == 1.5);
  CHECK(data(1, 1) == 4.0);
  const CsvTable<double> table = parse_table<double>(
      "\xEF\xBB\xBF"
      "x,y\n1,2\n");
  REQUIRE(table.names.size() == 2);
  CHECK(table.names[0] == "x");
  CHECK(table.data.cols() == 1);
}

TEST_CASE("read_csv shows at most 60 characters of a field in an error", "[data][errors]") {
  const std::string field(10'000'000, 'a');
  try {
    (void)parse<double>("1,2\n3," + field + "\n");
    FAIL("a malformed field was read");
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    CHECK_THAT(
        what, Catch::Contains("line 2") && Catch::Contains(std::string(60, 'a') + "… (10000000 characters)"));
    CHECK(what.size() < 300);
  }
}

TEST_CASE("read_csv refuses rows whose field count disagrees with the header or the caller",
          "[data][errors]") {
  using Catch::Contains;
  // one column written with decimal commas: each value splits into two fields
  CHECK_THROWS_WITH(parse<double>("x\n1,5\n2,25\n"), Contains("test.csv line 2") &&
                                                         Contains("expected 1 fields, got 2") &&
                                                         Contains("decimal comma"));
  CsvOptions two;
  two.columns = 2;
  CsvOptions one;
  one.columns = 1;
  CHECK_THROWS_WITH(parse<double>("0,5\n-1,25\n", one),
                    Contains("test.csv line 1") && Contains("expected 1 columns") &&
                        Contains("has 2 fields") && Contains("decimal comma"));
  CHECK_THROWS_WITH(parse<double>("x,y,z\n1,2,3\n", two),
                    Contains("line 1") && Contains("expected 2 columns") && Contains("has 3 fields"));
  CHECK(parse<double>("x,y\n1,2\n3,4\n", two).cols() == 2);
  // a field count that does not look like decimal commas gets no such hint
  CHECK_THROWS_WITH(parse<double>("1;2\n3;4;x\n", CsvOptions{CsvHeader::absent, ';', 0}),
                    Contains("expected 2 fields, got 3") && !Contains("decimal comma"));
  CHECK_THROWS_WITH(parse<double>("a,b\n1.5,x,2\n"), !Contains("decimal comma"));
}
