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

TEST_CASE("read_csv detects the delimiter from the first lines", "[data]") {
  const Matrix<double> expected = (Matrix<double>(2, 2) << 1.5, 3, -2, 4).finished();
  CHECK(parse<double>("x,y\n1.5,-2\n3,4\n") == expected);
  CHECK(parse<double>("x;y\n1.5;-2\n3;4\n") == expected);
  CHECK(parse<double>("x\ty\n1.5\t-2\n3\t4\n") == expected);
  CHECK(parse<double>("  x   y\n 1.5  -2\n3 \t 4\n") == expected);
  // names with spaces in a tab-separated file: the tab gives the same count on every line first
  const CsvTable<double> tabs = parse_table<double>("first x\tsecond y\n1.5\t-2\n3\t4\n");
  CHECK(tabs.names == std::vector<std::string>{"first x", "second y"});
  CHECK(tabs.data == expected);
  // the tab splits every line in two, but only runs of blanks split the data into numbers
  CHECK(parse<double>("1 2\t3\n4 5\t6\n") == (Matrix<double>(3, 2) << 1, 4, 2, 5, 3, 6).finished());
  // a single column, with and without a header
  CHECK(parse<double>("x\n1.5\n-2\n") == (Matrix<double>(1, 2) << 1.5, -2).finished());
  CHECK(parse<double>("7\n") == Matrix<double>::Constant(1, 1, 7));
  // a given delimiter is used as it is: ';' on a comma file is one unreadable column
  CsvOptions semicolon;
  semicolon.delimiter = ';';
  CHECK_THROWS_WITH(parse<double>("1,2\n3,4\n", semicolon),
                    Catch::Contains("line 2") && Catch::Contains("cannot read '3,4'"));
}

TEST_CASE("read_csv skips comment lines", "[data]") {
  const CsvTable<double> table = parse_table<double>(
      "# written by a tool\n  # x;y would be detected here\nx,y\n1,2\n# between rows\n3,4\n");
  CHECK(table.names == std::vector<std::string>{"x", "y"});
  CHECK(table.data == (Matrix<double>(2, 2) << 1, 3, 2, 4).finished());
  CsvOptions percent;
  percent.comment = '%';
  CHECK(parse<double>("% comment\n1,2\n", percent) == (Matrix<double>(2, 1) << 1, 2).finished());
  CHECK_THROWS_WITH(parse<double>("# 1,2\n1,2\n", percent),
                    Catch::Contains("line 1") && Catch::Contains("'# 1'"));
  CsvOptions none;
  none.comment = '\0';
  CHECK_THROWS_WITH(parse<double>("1,2\n#3,4\n", none), Catch::Contains("line 2") && Catch::Contains("'#3'"));
  // errors keep the line number of the file, comments counted
  CHECK_THROWS_WITH(parse<double>("# c\n1,2\n# c\n3,x\n"), Catch::Contains("test.csv line 4"));
  CHECK_THROWS_WITH(parse<double>("# only a comment\n"), Catch::Contains("test.csv is empty"));
  percent.delimiter = '%';
  CHECK_THROWS_WITH(parse<double>("1%2\n", percent),
                    Catch::Contains("comment character") && Catch::Contains("'%'"));
  CsvOptions digit;
  digit.comment = '1';
  CHECK_THROWS_WITH(parse<double>("1,2\n", digit), Catch::Contains("comment character"));
}

TEST_CASE("read_csv reads quoted fields in the header and the data", "[data]") {
  const CsvTable<double> table = parse_table<double>(
      "\"name, with comma\",\"say \"\"hi\"\"\",plain\r\n\"1.5\", 2 ,\" -3 \"\r\n4,5,6\r\n");
  CHECK(table.names == std::vector<std::string>{"name, with comma", "say \"hi\"", "plain"});
  CHECK(table.data == (Matrix<double>(3, 2) << 1.5, 4, 2, 5, -3, 6).finished());
  // quoted numbers in the first line are data
  CHECK(parse_table<double>("\"1\",\"2\"\n").names.empty());
  CHECK_THROWS_WITH(parse<double>("x,y\n\"1.5,2\n"),
                    Catch::Contains("line 2") && Catch::Contains("expected 2 fields, got 1"));
  CHECK_THROWS_WITH(parse<double>("x,y\n\"1.5\"x,2\n"),
                    Catch::Contains("line 2") && Catch::Contains("column 1"));
  CHECK_THROWS_WITH(parse<double>("x,y\n\"\",2\n"), Catch::Contains("empty field in column 1"));
  CHECK_THROWS_WITH(parse<double>("\"x,y\n1,2\n", {CsvHeader::present, ','}),
                    Catch::Contains("line 1") && Catch::Contains("unterminated quote"));
}

TEST_CASE("read_csv reads the same values on the fast path as field by field", "[data]") {
  // Every row of the first file takes the fast path; quoting a field sends its row field by field.
  std::string plain = "x,y\n", quoted = "x,y\n";
  for (int i = 0; i < 200; ++i) {
    const std::string a = std::to_string(std::sin(i) * 1e3) + "e-" + std::to_string(i % 40);
    std::string b(1, '+');  // appended piece by piece: GCC 12 reports a false -Wrestrict for "+" + string
    b.append(std::to_string(i)).append(".0625");
    plain.append(a).append(",").append(b).append("\n");
    quoted.append("\"").append(a).append("\",\"").append(b).append("\"\n");
  }
  CHECK(parse<float>(plain) == parse<float>(quoted));
  const Matrix<double> values = parse<double>(plain);
  CHECK(values == parse<double>(quoted));
  CHECK(values(1, 3) == 3.0625);
  CHECK(values(0, 1) == std::strtod((std::to_string(std::sin(1) * 1e3) + "e-1").c_str(), nullptr));
}

TEST_CASE("select_columns picks columns by name or number and names an unknown one", "[data]") {
  const CsvTable<double> table = parse_table<double>("x,y,z\n1,2,3\n4,5,6\n");
  const CsvTable<double> zx = select_columns(table, {"z", "x"});
  CHECK(zx.names == std::vector<std::string>{"z", "x"});
  CHECK(zx.data == (Matrix<double>(2, 2) << 3, 6, 1, 4).finished());
  CHECK(select_columns(table, {"2"}).data == (Matrix<double>(1, 2) << 2, 5).finished());
  using Catch::Contains;
  CHECK_THROWS_WITH(select_columns(table, {"x", "w"}),
                    Contains("select_columns") && Contains("no column 'w'") && Contains("'x', 'y', 'z'"));
  CHECK_THROWS_WITH(select_columns(table, {"4"}), Contains("no column '4'"));
  CHECK_THROWS_WITH(select_columns(table, {"0"}), Contains("no column '0'"));
  CHECK_THROWS_WITH(select_columns(table, {}), Contains("no columns given"));
  // a header name that is a number is the name, not the position
  const CsvTable<double> numbered = parse_table<double>("2,1\n10,20\n", {CsvHeader::present});
  CHECK(select_columns(numbered, {"1"}).data == Matrix<double>::Constant(1, 1, 20));
  // without a header, numbers only
  const CsvTable<double> plain = parse_table<double>("1,2\n3,4\n");
  CHECK(select_columns(plain, {"2", "1"}).data == (Matrix<double>(2, 2) << 2, 4, 1, 3).finished());
  CHECK(select_columns(plain, {"2"}).names.empty());
  CHECK_THROWS_WITH(select_columns(plain, {"x"}), Contains("columns 1 to 2 (the file has no header)"));
}

TEST_CASE("read_csv allocates no more than the text can hold", "[data][errors]") {
  // A first row of 100,000 fields and 100,000 rows of one: 10^10 values if the matrix were sized
  // from the line count alone; the second row is reported instead.
  std::string text;
  for (int i = 0; i < 100'000; ++i) text.append(i == 0 ? "1" : ",1");
  for (int i = 0; i < 100'000; ++i) text.append("\n1");
  CHECK_THROWS_WITH(parse<double>(text),
                    Catch::Contains("test.csv line 2") && Catch::Contains("expected 100000 fields, got 1"));
}

TEST_CASE("read_csv splits at each tab of a tab-separated file and at runs of blanks for a space", "[data]") {
  using Catch::Contains;
  CHECK_THROWS_WITH(parse<double>("1\t2\t3\n1\t\t3\n"),
                    Contains("line 2") && Contains("empty field in column 2"));
  CsvOptions tab;
  tab.delimiter = '\t';
  CHECK(parse<double>(" 1 \t 2 \n3\t4\n", tab) == (Matrix<double>(2, 2) << 1, 3, 2, 4).finished());
  CHECK_THROWS_WITH(parse<double>("1 2\t3\n", tab), Contains("line 1") && Contains("cannot read '1 2'"));
  CsvOptions space;
  space.delimiter = ' ';
  CHECK(parse<double>("1 2\t3\n", space) == (Matrix<double>(3, 1) << 1, 2, 3).finished());
}

TEST_CASE("read_csv with skip_bad_rows leaves out and lists the rows it cannot read", "[data][errors]") {
  const std::string text =
      "x,y\n"
      "1,2\n"
      "# a comment\n"
      "3,x4\n"   // line 4: not a number
      "5\n"      // line 5: too few fields
      "6,nan\n"  // line 6: not finite
      "7,8\n"
      "9,\"\"\n"  // line 8: an empty field
      "10,11\n";
  CsvOptions options;
  options.skip_bad_rows = true;
  options.record_lines = true;
  const CsvTable<double> table = parse_table<double>(text, options);
  REQUIRE(table.data.cols() == 3);
  CHECK(table.data(0, 0) == 1);
  CHECK(table.data(1, 1) == 8);
  CHECK(table.data(1, 2) == 11);
  CHECK(table.lines == std::vector<std::size_t>{2, 7, 9});
  REQUIRE(table.skipped.size() == 4);
  CHECK(table.skipped[0].line == 4);
  CHECK_THAT(table.skipped[0].reason, Catch::Contains("cannot read 'x4' in column 2"));
  CHECK(table.skipped[1].line == 5);
  CHECK_THAT(table.skipped[1].reason, Catch::Contains("expected 2 fields, got 1"));
  CHECK(table.skipped[2].line == 6);
  CHECK_THAT(table.skipped[2].reason, Catch::Contains("non-finite value 'nan'"));
  CHECK(table.skipped[3].line == 8);
  CHECK_THAT(table.skipped[3].reason, Catch::Contains("empty field in column 2"));

  // without the option the first of them is the error, with its line
  CHECK_THROWS_WITH(parse<double>(text), Catch::Contains("line 4: cannot read 'x4' in column 2"));
  // every row bad: an empty table, not an error
  options.record_lines = false;
  const CsvTable<double> none = parse_table<double>("x,y\n1\n2,a\n", options);
  CHECK(none.data.rows() == 2);
  CHECK(none.data.cols() == 0);
  CHECK(none.lines.empty());
  CHECK(none.skipped.size() == 2);
}
