#pragma once
/// @file
/// Reading numeric data from CSV files: one sample per row, one dimension per column.
///
/// Fields are separated by a delimiter (a comma by default) and may be padded with spaces or tabs;
/// Windows line ends, blank lines and a UTF-8 byte order mark at the start are accepted. The first line may
/// be a header of column names. Every value must be a finite number of the target type. A file that fails to
/// load produces an exception and no data: the result is returned by value only once every row has been
/// checked.
///
/// Errors: std::runtime_error when the file cannot be opened or read; std::invalid_argument for bad
/// content (an empty file, a wrong number of fields, an unparsable or non-finite value), naming the
/// source, the line number (from 1) and the column (from 1). Every row must have as many fields as
/// the header (or, without one, the first row) and, when CsvOptions::columns is given, as many as
/// the caller expects; when the extra fields look like the fractional digits of decimal commas
/// ("1,5" for 1.5 in a comma-separated file) the message says so. A headerless file whose decimal
/// commas happen to give the expected count on every row cannot be told from integer data.

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <istream>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "knead/core/errors.hpp"
#include "knead/core/types.hpp"

namespace knead::data {

/// Whether the first line holds column names. `detect` treats it as a header when none of its
/// fields is a number (so "x,y" is a header and "1.5,abc" is a malformed data row).
enum class CsvHeader { detect, present, absent };

struct CsvOptions {
  CsvHeader header = CsvHeader::detect;
  /// Separates the fields; a space or tab splits at every run of spaces and tabs instead.
  char delimiter = ',';
  /// The number of columns the caller expects (0: any); a file with another count is refused.
  std::size_t columns = 0;
};

/// The data of a CSV file as a D×N matrix (column j = row j of the file) and its column names
/// (empty when the file has no header).
template <class T>
struct CsvTable {
  std::vector<std::string> names;
  Matrix<T> data;
};

namespace csv_detail {

inline std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

inline bool is_blank(char c) { return c == ' ' || c == '\t'; }

/// Splits at each delimiter; a space or tab delimiter splits at every run of spaces and tabs.
inline std::vector<std::string_view> split_fields(std::string_view line, char delimiter) {
  std::vector<std::string_view> fields;
  if (is_blank(delimiter)) {
    line = trim(line);
    for (std::size_t start = 0; start < line.size();) {
      std::size_t end = start;
      while (end < line.size() && !is_blank(line[end])) ++end;
      fields.push_back(trim(line.substr(start, end - start)));
      while (end < line.size() && is_blank(line[end])) ++end;
      start = end;
    }
    return fields;
  }
  for (std::size_t start = 0;;) {
    const std::size_t end = line.find(delimiter, start);
    fields.push_back(
        trim(line.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start)));
    if (end == std::string_view::npos) return fields;
    start = end + 1;
  }
}

/// The whole field as a double (a leading '+' allowed), or nothing if it is not a number.
inline std::optional<double> parse_number(std::string_view field) {
  if (field.size() > 1 && field[0] == '+' && field[1] != '-') field.remove_prefix(1);
  double value = 0;
  const auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), value);
  // Out of range: strtod rounds to ±infinity (reported as non-finite below, like "inf") or,
  // for a tiny magnitude, to zero or a subnormal number.
  if (error == std::errc::result_out_of_range && end == field.data() + field.size())
    return std::strtod(std::string(field).c_str(), nullptr);
  if (error != std::errc() || end != field.data() + field.size() || field.empty()) return std::nullopt;
  return value;
}

/// A field as an error message shows it: whole up to 60 characters, else its first 60, "…" and its
/// length (a malformed file may hold a field of megabytes).
inline std::string shown_field(std::string_view field) {
  constexpr std::size_t shown = 60;
  if (field.size() <= shown) return std::string(field);
  std::size_t cut = shown;
  while (cut > 0 && (static_cast<unsigned char>(field[cut]) & 0xC0) == 0x80)
    --cut;  // not inside a UTF-8 character
  return std::string(field.substr(0, cut)) + "… (" + std::to_string(field.size()) + " characters)";
}

/// Whether a row of `got` fields where `expected` were wanted looks like numbers written with a
/// decimal comma split at the delimiter: a ',' delimiter, more fields than expected, and a field of
/// digits only (the fractional digits, such as "5" of "1,5") after one that ends in a digit.
inline bool looks_like_decimal_commas(const std::vector<std::string_view>& fields, std::size_t expected,
                                      char delimiter) {
  if (delimiter != ',' || fields.size() <= expected) return false;
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  for (std::size_t c = 1; c < fields.size(); ++c) {
    const std::string_view integer = fields[c - 1], fraction = fields[c];
    if (!integer.empty() && is_digit(integer.back()) && !fraction.empty() &&
        fraction.find_first_not_of("0123456789") == std::string_view::npos)
      return true;
  }
  return false;
}

/// The hint added to a field-count error when the row looks like decimal commas.
inline std::string_view decimal_comma_hint(const std::vector<std::string_view>& fields, std::size_t expected,
                                           char delimiter) {
  return looks_like_decimal_commas(fields, expected, delimiter)
             ? " (a decimal comma such as '1,5' for 1.5 may be the cause: write numbers with a decimal "
               "point, or separate the fields with ';')"
             : "";
}

template <class T>
CsvTable<T> read_csv_lines(std::istream& in, const CsvOptions& options, std::string_view source) {
  constexpr std::string_view function = "read_csv";
  if (std::string_view("\r\n0123456789.+-eE").find(options.delimiter) != std::string_view::npos)
    knead::detail::fail(function, "the delimiter cannot be a line end or a character of a number, got '",
                        options.delimiter, "'");
  CsvTable<T> table;
  std::vector<T> values;  // row after row
  std::size_t columns = 0, rows = 0, line_number = 0;
  bool first = true;
  std::string line;
  while (std::getline(in, line)) {
    ++line_number;
    // a UTF-8 byte order mark (EF BB BF), which some editors write at the start of a file
    if (line_number == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
    if (trim(line).empty()) continue;
    const std::vector<std::string_view> fields = split_fields(line, options.delimiter);
    if (first) {
      first = false;
      columns = fields.size();
      if (options.columns != 0 && columns != options.columns)
        knead::detail::fail(function, source, " line ", line_number, ": expected ", options.columns,
                            " columns, the first line has ", columns, " fields",
                            decimal_comma_hint(fields, options.columns, options.delimiter));
      bool header = options.header == CsvHeader::present;
      if (options.header == CsvHeader::detect) {
        header = true;
        for (std::string_view f : fields) header = header && !parse_number(f);
      }
      if (header) {
        for (std::string_view f : fields) table.names.emplace_back(f);
        continue;
      }
    }
    if (fields.size() != columns)
      knead::detail::fail(function, source, " line ", line_number, ": expected ", columns, " fields, got ",
                          fields.size(), table.names.empty() ? " (the first row has " : " (the header has ",
                          columns, ")", decimal_comma_hint(fields, columns, options.delimiter));
    for (std::size_t c = 0; c < fields.size(); ++c) {
      if (fields[c].empty())
        knead::detail::fail(function, source, " line ", line_number, ": empty field in column ", c + 1);
      const std::optional<double> value = parse_number(fields[c]);
      if (!value)
        knead::detail::fail(function, source, " line ", line_number, ": cannot read '",
                            shown_field(fields[c]), "' in column ", c + 1, " as a number");
      // A finite double may still overflow a float.
      if (!std::isfinite(*value) || !std::isfinite(static_cast<T>(*value)))
        knead::detail::fail(function, source, " line ", line_number, ": non-finite value '",
                            shown_field(fields[c]), "' in column ", c + 1);
      values.push_back(static_cast<T>(*value));
    }
    ++rows;
  }
  if (in.bad())
    knead::detail::fail<std::runtime_error>(function, source, ": read error after line ", line_number);
  if (first) knead::detail::fail(function, source, " is empty (no header and no data rows)");
  if (rows == 0) knead::detail::fail(function, source, " has a header but no data rows");
  // The file is row-major N×D; the matrix is D×N with one sample per column.
  table.data = Eigen::Map<const Matrix<T>>(values.data(), Index(columns), Index(rows));
  return table;
}

}  // namespace csv_detail

/// Reads a CSV stream; `source` names it in error messages.
template <class T>
CsvTable<T> read_csv_table(std::istream& in, const CsvOptions& options = {},
                           std::string_view source = "<stream>") {
  return csv_detail::read_csv_lines<T>(in, options, source);
}

/// Reads a CSV file; throws std::runtime_error if it cannot be opened.
template <class T>
CsvTable<T> read_csv_table(const std::string& path, const CsvOptions& options = {}) {
  std::ifstream in(path);
  if (!in) knead::detail::fail<std::runtime_error>("read_csv", "cannot open '", path, "'");
  return csv_detail::read_csv_lines<T>(in, options, "'" + path + "'");
}

/// The data of a CSV stream as a D×N matrix (columns of the file are dimensions).
template <class T>
Matrix<T> read_csv(std::istream& in, const CsvOptions& options = {}, std::string_view source = "<stream>") {
  return read_csv_table<T>(in, options, source).data;
}

/// The data of a CSV file as a D×N matrix (columns of the file are dimensions).
template <class T>
Matrix<T> read_csv(const std::string& path, const CsvOptions& options = {}) {
  return read_csv_table<T>(path, options).data;
}

}  // namespace knead::data
