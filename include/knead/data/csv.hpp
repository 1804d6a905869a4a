#pragma once
/// @file
/// Reading numeric data from CSV files: one sample per row, one dimension per column.
///
/// Fields are separated by a delimiter and may be padded with spaces or tabs. The delimiter is
/// given (CsvOptions::delimiter) or detected from the first lines of the file (see
/// csv_detail::detect_delimiter): ',', ';', a tab, or runs of spaces and tabs. A field may be
/// quoted ("1.5", or "name, with comma" in a header; "" inside quotes is one quote; quotes do not
/// span lines). Windows line ends, blank lines, comment lines (CsvOptions::comment, '#' by default,
/// as the first character after any padding) and a UTF-8 byte order mark at the start are accepted.
/// The first line may be a header of column names. Every value must be a finite number of the target
/// type. A file that fails to load produces an exception and no data: the result is returned by value
/// only once every row has been checked.
///
/// The text is read whole and parsed in one pass: each value goes from std::from_chars straight into
/// one flat buffer that becomes the matrix; a row that the fast path does not take as it is (quotes,
/// an error) is parsed again field by field, which also builds the error message.
///
/// Errors: std::runtime_error when the file cannot be opened or read; std::invalid_argument for bad
/// content (an empty file, a wrong number of fields, an unparsable or non-finite value), naming the
/// source, the line number (from 1) and the column (from 1). Every row must have as many fields as
/// the header (or, without one, the first row) and, when CsvOptions::columns is given, as many as
/// the caller expects; when the extra fields look like the fractional digits of decimal commas
/// ("1,5" for 1.5 in a comma-separated file) the message says so. A headerless file whose decimal
/// commas happen to give the expected count on every row cannot be told from integer data.
///
/// With CsvOptions::skip_bad_rows a data row that would be one of these errors (a wrong number of
/// fields, an unparsable, empty or non-finite value) is left out instead and listed in
/// CsvTable::skipped with its line number and the reason; the header and the file as a whole must
/// still be well formed. CsvOptions::record_lines keeps the line number of every row read.

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <istream>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "knead/core/errors.hpp"
#include "knead/core/types.hpp"

namespace knead::data {

/// Whether the first line holds column names. `detect` treats it as a header when none of its
/// fields is a number (so "x,y" is a header and "1.5,abc" is a malformed data row).
enum class CsvHeader { detect, present, absent };

struct CsvOptions {
  CsvHeader header = CsvHeader::detect;
  /// Separates the fields; a space splits at every run of spaces and tabs instead. Without a value
  /// it is detected from the first lines of the file.
  std::optional<char> delimiter = std::nullopt;
  /// The number of columns the caller expects (0: any); a file with another count is refused.
  std::size_t columns = 0;
  /// A line whose first character after any padding is this one is skipped ('\0': no comments).
  char comment = '#';
  /// Leave out the data rows that cannot be read (listed in CsvTable::skipped) instead of failing.
  bool skip_bad_rows = false;
  /// Fill CsvTable::lines with the line number of each row read.
  bool record_lines = false;
};

/// A data row left out by CsvOptions::skip_bad_rows: its line (from 1) and why.
struct CsvSkippedRow {
  std::size_t line = 0;
  std::string reason;
};

/// The data of a CSV file as a D×N matrix (column j = row j of the file) and its column names
/// (empty when the file has no header).
template <class T>
struct CsvTable {
  std::vector<std::string> names;
  Matrix<T> data;
  std::vector<std::size_t> lines;      ///< line of each column of `data` (CsvOptions::record_lines)
  std::vector<CsvSkippedRow> skipped;  ///< rows left out (CsvOptions::skip_bad_rows)
};

namespace csv_detail {

/// Padding around a field: spaces, tabs and the '\r' of a Windows line end.
inline bool is_padding(char c) { return c == ' ' || c == '\t' || c == '\r'; }

inline std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

/// A space as the delimiter splits at every run of spaces and tabs; any other delimiter splits at
/// each of its occurrences.
inline bool splits_at_runs(char delimiter) { return delimiter == ' '; }

/// Padding that is not the delimiter (a tab delimiter is not padding).
inline bool is_padding(char c, char delimiter) {
  return is_padding(c) && (splits_at_runs(delimiter) || c != delimiter);
}

/// The end of a field that starts at `at`: past its closing quote if it starts with one ("" inside
/// is an escaped quote; an unterminated quote runs to the end of the line), then on to the next
/// delimiter (or, for a blank delimiter, the next run of padding).
inline std::size_t field_end(std::string_view line, std::size_t at, char delimiter) {
  if (at < line.size() && line[at] == '"') {
    for (++at; at < line.size(); ++at)
      if (line[at] == '"') {
        if (at + 1 < line.size() && line[at + 1] == '"')
          ++at;
        else {
          ++at;
          break;
        }
      }
  }
  if (splits_at_runs(delimiter)) {
    while (at < line.size() && !is_padding(line[at])) ++at;
    return at;
  }
  const std::size_t end = line.find(delimiter, at);
  return end == std::string_view::npos ? line.size() : end;
}

/// Splits at each delimiter outside quotes; a space delimiter splits at every run of spaces and
/// tabs. The fields are trimmed and keep their quotes.
inline std::vector<std::string_view> split_fields(std::string_view line, char delimiter) {
  std::vector<std::string_view> fields;
  const auto skip_padding = [&](std::size_t at) {
    while (at < line.size() && is_padding(line[at], delimiter)) ++at;
    return at;
  };
  if (splits_at_runs(delimiter)) {
    for (std::size_t start = skip_padding(0); start < line.size();) {
      const std::size_t end = field_end(line, start, delimiter);
      fields.push_back(line.substr(start, end - start));
      start = skip_padding(end);
    }
    return fields;
  }
  for (std::size_t start = 0;;) {
    const std::size_t end = field_end(line, skip_padding(start), delimiter);
    fields.push_back(trim(line.substr(start, end - start)));
    if (end == line.size()) return fields;
    start = end + 1;
  }
}

/// The text of a field without its quotes ("" inside becomes "), or nothing if a quote is not
/// closed at the end of the field.
inline std::optional<std::string> unquote(std::string_view field) {
  if (field.empty() || field[0] != '"') return std::string(field);
  if (field.size() < 2 || field.back() != '"') return std::nullopt;
  std::string text;
  for (std::size_t i = 1; i + 1 < field.size(); ++i) {
    if (field[i] == '"') {
      if (field[i + 1] != '"' || i + 2 == field.size()) return std::nullopt;
      ++i;
    }
    text.push_back(field[i]);
  }
  return text;
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

/// The lines of a text one after the other, with their numbers (from 1).
class Lines {
 public:
  explicit Lines(std::string_view text) : text_(text) {}
  /// The next line without its '\n', or nothing at the end of the text.
  std::optional<std::string_view> next() {
    if (at_ >= text_.size()) return std::nullopt;
    const std::size_t end = std::min(text_.find('\n', at_), text_.size());
    const std::string_view line = text_.substr(at_, end - at_);
    at_ = end + 1;
    ++number_;
    return line;
  }
  std::size_t number() const { return number_; }

 private:
  std::string_view text_;
  std::size_t at_ = 0, number_ = 0;
};

/// Whether a line holds neither data nor a header: blank, or a comment.
inline bool is_skipped(std::string_view line, char comment) {
  const std::string_view content = trim(line);
  return content.empty() || (comment != '\0' && content.front() == comment);
}

/// The delimiter of a file whose first content lines (not blank, not comments) are `lines`: the first
/// of ',', ';', tab and whitespace that splits every one of them into the same number of fields,
/// more than one, and the last of them into numbers only; failing that, the first that gives the same
/// count on all; failing that (a single column, or ragged rows) ','.
inline char detect_delimiter(const std::vector<std::string_view>& lines) {
  constexpr std::array<char, 4> candidates = {',', ';', '\t', ' '};
  std::optional<char> consistent;
  for (const char delimiter : candidates) {
    const std::size_t count = split_fields(lines.front(), delimiter).size();
    bool same = count > 1;
    for (std::size_t i = 1; same && i < lines.size(); ++i)
      same = split_fields(lines[i], delimiter).size() == count;
    if (!same) continue;
    bool numeric = true;
    for (std::string_view field : split_fields(lines.back(), delimiter)) {
      const std::optional<std::string> text = unquote(field);
      numeric = numeric && text && parse_number(*text);
    }
    if (numeric) return delimiter;
    if (!consistent) consistent = delimiter;
  }
  return consistent.value_or(',');
}

/// Reads a whole stream in blocks of 1 MiB (`expected_bytes`: a size to reserve first).
inline std::string read_all(std::istream& in, std::string_view source, std::size_t expected_bytes = 0) {
  constexpr std::size_t block = std::size_t{1} << 20;
  std::string text;
  text.reserve(expected_bytes + block);
  while (in) {
    const std::size_t size = text.size();
    text.resize(size + block);
    in.read(text.data() + size, std::streamsize(block));
    text.resize(size + std::size_t(in.gcount()));
  }
  if (in.bad()) knead::detail::fail<std::runtime_error>("read_csv", source, ": read error");
  return text;
}

template <class T>
class Parser {
 public:
  Parser(const CsvOptions& options, std::string_view source) : options_(options), source_(source) {}

  CsvTable<T> parse(std::string_view text) {
    check_options();
    // a UTF-8 byte order mark (EF BB BF), which some editors write at the start of a file
    if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
    delimiter_ = options_.delimiter ? *options_.delimiter : detect(text);

    // First pass: the first content line (header or data) and the number of content lines, so that
    // the matrix is allocated once at its final size. Every row that parses has `columns_` fields of
    // at least one character each, so a text of B bytes holds at most B / columns_ rows: a hostile
    // line count cannot make the allocation larger than that.
    CsvTable<T> table;
    std::size_t content_lines = 0;
    std::optional<std::string_view> first_line;
    Lines counter(text);
    while (const std::optional<std::string_view> line = counter.next()) {
      if (is_skipped(*line, options_.comment)) continue;
      if (!first_line) {
        first_line = line;
        line_number_ = counter.number();
      }
      ++content_lines;
    }
    if (!first_line) fail_here(" is empty (no header and no data rows)");
    const bool header = read_first_line(*first_line, table.names);
    const std::size_t rows = content_lines - (header ? 1 : 0);
    if (rows == 0) fail_here(" has a header but no data rows");
    const std::size_t capacity = std::min(rows, text.size() / columns_ + 1);
    // The file is row-major N×D; the matrix is D×N with one sample per column, so row after row of
    // the file fills it in memory order.
    table.data.resize(Index(columns_), Index(capacity));
    T* out = table.data.data();
    std::size_t parsed = 0;
    bool first = true;
    Lines lines(text);
    while (const std::optional<std::string_view> line = lines.next()) {
      if (is_skipped(*line, options_.comment)) continue;
      line_number_ = lines.number();
      if (std::exchange(first, false) && header) continue;
      if (parsed == capacity)
        fail_line("more rows than the text can hold (internal check failed: a bug in knead)");
      if (!parse_row_fast(*line, out)) {
        std::optional<std::string> problem = parse_row_checked(*line, out, header);
        if (problem) {
          if (!options_.skip_bad_rows) fail_line(*problem);
          table.skipped.push_back({line_number_, std::move(*problem)});
          continue;
        }
      }
      if (options_.record_lines) table.lines.push_back(line_number_);
      out += columns_;
      ++parsed;
    }
    if (parsed < capacity) table.data.conservativeResize(Index(columns_), Index(parsed));
    return table;
  }

 private:
  static constexpr std::string_view function = "read_csv";

  template <class... Parts>
  [[noreturn]] void fail_here(const Parts&... parts) const {
    knead::detail::fail(function, source_, parts...);
  }
  template <class... Parts>
  [[noreturn]] void fail_line(const Parts&... parts) const {
    knead::detail::fail(function, source_, " line ", line_number_, ": ", parts...);
  }

  void check_options() const {
    if (options_.delimiter &&
        std::string_view("\r\n0123456789.+-eE\"").find(*options_.delimiter) != std::string_view::npos)
      knead::detail::fail(function,
                          "the delimiter cannot be a line end, a quote or a character of a number, got '",
                          *options_.delimiter, "'");
    const char comment = options_.comment;
    if (comment != '\0' &&
        (std::string_view(" \t\r\n0123456789.+-\"").find(comment) != std::string_view::npos ||
         (options_.delimiter && comment == *options_.delimiter)))
      knead::detail::fail(function,
                          "the comment character cannot be padding, a line end, a quote, the delimiter or "
                          "a character of a number, got '",
                          comment, "'");
  }

  char detect(std::string_view text) const {
    constexpr std::size_t sampled = 16;
    std::vector<std::string_view> first_lines;
    Lines lines(text);
    while (first_lines.size() < sampled) {
      const std::optional<std::string_view> line = lines.next();
      if (!line) break;
      if (!is_skipped(*line, options_.comment)) first_lines.push_back(*line);
    }
    return first_lines.empty() ? ',' : detect_delimiter(first_lines);
  }

  /// Sets the column count from the first content line; true if it is a header (its names stored).
  bool read_first_line(std::string_view line, std::vector<std::string>& names) {
    const std::vector<std::string_view> fields = split_fields(line, delimiter_);
    columns_ = fields.size();
    if (options_.columns != 0 && columns_ != options_.columns)
      fail_line("expected ", options_.columns, " columns, the first line has ", columns_, " fields",
                decimal_comma_hint(fields, options_.columns, delimiter_));
    bool header = options_.header == CsvHeader::present;
    if (options_.header == CsvHeader::detect) {
      header = true;
      for (std::string_view f : fields) {
        const std::optional<std::string> text = unquote(f);
        header = header && !(text && parse_number(*text));
      }
    }
    if (!header) return false;
    for (std::size_t c = 0; c < fields.size(); ++c) {
      std::optional<std::string> name = unquote(fields[c]);
      if (!name)
        fail_line("unterminated quote in column ", c + 1, " of the header: ", shown_field(fields[c]));
      names.push_back(std::move(*name));
    }
    return true;
  }

  /// Writes the row's values to out[0..columns_) if every field is a plain finite number and the
  /// count is right; false otherwise (quotes, an out-of-range or malformed value:
  /// parse_row_checked decides), having written at most columns_ values.
  bool parse_row_fast(std::string_view line, T* out) const {
    const char* p = line.data();
    const char* const end = p + line.size();
    const bool blank_delimited = splits_at_runs(delimiter_);
    for (std::size_t c = 0;; ++c) {
      while (p < end && is_padding(*p, delimiter_)) ++p;
      if (blank_delimited && p == end) return c == columns_;
      if (c == columns_) return false;
      if (p < end && *p == '+' && p + 1 < end && p[1] != '-') ++p;
      double value = 0;
      const auto [number_end, error] = std::from_chars(p, end, value);
      if (error != std::errc() || !std::isfinite(value) || !std::isfinite(static_cast<T>(value)))
        return false;
      p = number_end;
      const char* const after_number = p;
      while (p < end && is_padding(*p, delimiter_)) ++p;
      out[c] = static_cast<T>(value);
      if (p == end) return c + 1 == columns_;
      if (blank_delimited) {
        if (p == after_number) return false;  // "4x": no padding after the number
      } else if (*p == delimiter_) {
        ++p;
      } else {
        return false;
      }
    }
  }

  /// Parses a row field by field, writing its values to out[0..columns_); returns what is wrong with
  /// it, if anything (then some of out[0..columns_) may have been written).
  std::optional<std::string> parse_row_checked(std::string_view line, T* out, bool has_header) const {
    const std::vector<std::string_view> fields = split_fields(line, delimiter_);
    if (fields.size() != columns_)
      return knead::detail::concatenate("expected ", columns_, " fields, got ", fields.size(),
                                        has_header ? " (the header has " : " (the first row has ", columns_,
                                        ")", decimal_comma_hint(fields, columns_, delimiter_));
    for (std::size_t c = 0; c < fields.size(); ++c) {
      const std::optional<std::string> text = unquote(fields[c]);
      if (!text)
        return knead::detail::concatenate("unterminated quote in column ", c + 1, ": ",
                                          shown_field(fields[c]));
      if (text->empty()) return knead::detail::concatenate("empty field in column ", c + 1);
      const std::optional<double> value = parse_number(trim(*text));
      if (!value)
        return knead::detail::concatenate("cannot read '", shown_field(fields[c]), "' in column ", c + 1,
                                          " as a number");
      // A finite double may still overflow a float.
      if (!std::isfinite(*value) || !std::isfinite(static_cast<T>(*value)))
        return knead::detail::concatenate("column ", c + 1, " has the non-finite value '",
                                          shown_field(fields[c]), "'");
      out[c] = static_cast<T>(*value);
    }
    return std::nullopt;
  }

  const CsvOptions& options_;
  std::string_view source_;
  char delimiter_ = ',';
  std::size_t columns_ = 0, line_number_ = 0;
};

}  // namespace csv_detail

/// Reads CSV text held in memory; `source` names it in error messages.
template <class T>
CsvTable<T> read_csv_text(std::string_view text, const CsvOptions& options = {},
                          std::string_view source = "<text>") {
  return csv_detail::Parser<T>(options, source).parse(text);
}

/// Reads a CSV stream; `source` names it in error messages.
template <class T>
CsvTable<T> read_csv_table(std::istream& in, const CsvOptions& options = {},
                           std::string_view source = "<stream>") {
  return read_csv_text<T>(csv_detail::read_all(in, source), options, source);
}

/// Reads a CSV file; throws std::runtime_error if it cannot be opened or read.
template <class T>
CsvTable<T> read_csv_table(const std::string& path, const CsvOptions& options = {}) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error))
    knead::detail::fail<std::runtime_error>("read_csv", "cannot open '", path, "': it is a folder");
  std::ifstream in(path, std::ios::binary);
  if (!in) knead::detail::fail<std::runtime_error>("read_csv", "cannot open '", path, "'");
  const std::string source = "'" + path + "'";
  const std::uintmax_t size = std::filesystem::file_size(path, error);
  return read_csv_text<T>(csv_detail::read_all(in, source, error ? 0 : std::size_t(size)), options, source);
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

/// The columns of `table` listed in `columns`, in that order (a column may be listed twice). Each
/// entry is a name of the header or, when no column has that name, a column number from 1 ("2" is
/// the second column). An unknown name, a number out of range or an empty list throws
/// std::invalid_argument naming the entry and the columns there are.
template <class T>
CsvTable<T> select_columns(const CsvTable<T>& table, const std::vector<std::string>& columns) {
  constexpr std::string_view function = "select_columns";
  const std::size_t count = std::size_t(table.data.rows());
  const auto available = [&] {
    std::string list;
    for (const std::string& name : table.names) list += (list.empty() ? "'" : ", '") + name + "'";
    return table.names.empty() ? "columns 1 to " + std::to_string(count) + " (the file has no header)"
                               : "the columns " + list;
  };
  if (columns.empty()) knead::detail::fail(function, "no columns given; there are ", available());
  CsvTable<T> selected;
  selected.data.resize(Index(columns.size()), table.data.cols());
  for (std::size_t k = 0; k < columns.size(); ++k) {
    const std::string& wanted = columns[k];
    const auto named = std::find(table.names.begin(), table.names.end(), wanted);
    std::size_t index = std::size_t(named - table.names.begin());
    if (named == table.names.end()) {
      std::size_t number = 0;
      const auto [end, error] = std::from_chars(wanted.data(), wanted.data() + wanted.size(), number);
      if (error != std::errc() || end != wanted.data() + wanted.size() || number == 0 || number > count)
        knead::detail::fail(function, "no column '", csv_detail::shown_field(wanted), "'; there are ",
                            available());
      index = number - 1;
    }
    if (!table.names.empty()) selected.names.push_back(table.names[index]);
    selected.data.row(Index(k)) = table.data.row(Index(index));
  }
  return selected;
}

}  // namespace knead::data
