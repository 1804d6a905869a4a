#pragma once
/// @file
/// The tables `knead` reads and writes: samples as rows, dimensions as columns. Inside, a table is
/// a D×N matrix (one sample per column), as knead's flows take it.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "knead/core/errors.hpp"
#include "knead/core/types.hpp"
#include "knead/data/csv.hpp"
#include "knead/data/npy.hpp"
#include "knead/io/file.hpp"

namespace knead_cli {

using knead::Index;

/// Throws std::invalid_argument with the parts written one after another; main() prefixes the
/// command ("knead fit: ").
template <class... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream text;
  (text << ... << parts);
  throw std::invalid_argument(text.str());
}

/// A table read from a file: D×N values and the names of its D columns (from the header, or
/// "column 1" … "column D" without one).
struct Table {
  std::string source;
  std::vector<std::string> names;
  knead::Matrix<double> data;
  /// The file's line (CSV) or row (.npy), from 1, of each row; empty: row j is at j + 1.
  std::vector<std::size_t> lines;
  std::vector<knead::data::CsvSkippedRow> skipped;  ///< rows left out (ReadOptions::skip_bad_rows)
  /// What `lines` counts: "line" (of a CSV file) or "row" (of a .npy file).
  const char* position_kind_name = "line";
  [[nodiscard]] Index dim() const { return data.rows(); }
  [[nodiscard]] Index rows() const { return data.cols(); }
  /// What the rows are counted in: "line" (of a CSV file) or "row" (of a .npy file).
  [[nodiscard]] const char* position_kind() const { return position_kind_name; }
  /// The line (CSV) or row (.npy), from 1, of row j (from 0).
  [[nodiscard]] std::size_t position(Index j) const {
    return lines.empty() ? std::size_t(j + 1) : lines[std::size_t(j)];
  }
  /// Where row j (from 0) is, for messages: "line 7" of a CSV file, "row 7" of a .npy file.
  [[nodiscard]] std::string where(Index j) const {
    return position_kind() + (" " + std::to_string(position(j)));
  }
};

/// The shortest text that reads back as `value` (a value just past a bound is not shown as the bound).
inline std::string shortest(double value) {
  char text[64];
  return std::string(text, std::to_chars(text, text + sizeof text, value).ptr);
}

/// Leaves out the rows j of `table` for which reason(j) is not empty, adding them to table.skipped
/// with that reason (kept in line order), and keeps the others in order.
template <class Reason>
void leave_out_rows(Table& table, Reason&& reason) {
  if (table.lines.empty()) {  // the rows keep their places in the file: number them first
    table.lines.resize(std::size_t(table.rows()));
    std::iota(table.lines.begin(), table.lines.end(), std::size_t(1));
  }
  Index kept = 0;
  for (Index j = 0; j < table.rows(); ++j) {
    std::string why = reason(j);
    if (!why.empty()) {
      table.skipped.push_back({table.position(j), std::move(why)});
      continue;
    }
    table.data.col(kept) = table.data.col(j);  // kept ≤ j: moves rows down in place
    table.lines[std::size_t(kept)] = table.lines[std::size_t(j)];
    ++kept;
  }
  table.data.conservativeResize(table.dim(), kept);
  table.lines.resize(std::size_t(kept));
  std::sort(table.skipped.begin(), table.skipped.end(),
            [](const auto& a, const auto& b) { return a.line < b.line; });
}

/// Splits "a,b,c" at commas; empty items are kept (and refused by select_columns).
inline std::vector<std::string> split_list(std::string_view list) {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = list.find(',', start);
    items.emplace_back(
        list.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) return items;
    start = comma + 1;
  }
}

/// The columns of `table` named in `list` ("x,y", or 1-based positions "1,3", which may be mixed),
/// in that order; an empty list keeps every column. @throws std::invalid_argument naming an unknown
/// column or one chosen twice (a repeated column has no density).
inline Table select_columns(Table table, std::string_view list) {
  if (list.empty()) return table;
  knead::data::CsvTable<double> all{std::move(table.names), std::move(table.data), {}, {}};
  knead::data::CsvTable<double> chosen = knead::data::select_columns(all, split_list(list));
  for (std::size_t i = 0; i < chosen.names.size(); ++i)
    for (std::size_t k = 0; k < i; ++k)
      if (chosen.names[i] == chosen.names[k])
        fail("--columns: column '", chosen.names[i], "' is chosen twice");
  return {std::move(table.source), std::move(chosen.names),  std::move(chosen.data),
          std::move(table.lines),  std::move(table.skipped), table.position_kind_name};
}

/// How tables are read: CSV options (the .npy format says everything itself).
struct ReadOptions {
  std::optional<char> delimiter;  ///< none: detected from the first lines
  knead::data::CsvHeader header = knead::data::CsvHeader::detect;
  /// Leave out the rows that cannot be read (Table::skipped) instead of failing: rows of a CSV file
  /// that do not parse, and rows of either format holding NaN or an infinity.
  bool skip_bad_rows = false;
};

inline bool is_npy(const std::string& path) { return std::filesystem::path(path).extension() == ".npy"; }

/// Reads a table: NumPy .npy (shape (N,) or (N, D)) by its extension, CSV otherwise. Columns
/// without a name are called "column 1" … "column D".
inline Table read_table(const std::string& path, const ReadOptions& options = {}) {
  if (!std::filesystem::exists(path)) fail("no file '", path, "'");
  Table table;
  table.source = "'" + path + "'";
  if (is_npy(path)) {
    table.position_kind_name = "row";
    if (!options.skip_bad_rows) {
      table.data = knead::data::read_npy<double>(path).data;
    } else {  // rows holding NaN or an infinity are left out, as a CSV reader leaves them out
      table.data = knead::data::read_npy<double>(path, knead::data::NonFiniteValues::keep).data;
      leave_out_rows(table, [&](Index j) -> std::string {
        for (Index i = 0; i < table.dim(); ++i)
          if (!std::isfinite(table.data(i, j)))
            return "column " + std::to_string(i + 1) + " has the non-finite value " +
                   shortest(table.data(i, j));
        return {};
      });
    }
  } else {
    knead::data::CsvOptions csv;
    csv.delimiter = options.delimiter;
    csv.header = options.header;
    csv.skip_bad_rows = options.skip_bad_rows;
    csv.record_lines = true;
    knead::data::CsvTable<double> read = knead::data::read_csv_table<double>(path, csv);
    table.data = std::move(read.data);
    table.names = std::move(read.names);
    table.lines = std::move(read.lines);
    table.skipped = std::move(read.skipped);
  }
  if (table.names.empty())
    for (Index i = 0; i < table.dim(); ++i) table.names.push_back("column " + std::to_string(i + 1));
  return table;
}

/// Reads the columns `names` of a file, by name when the file has them all in its header and by
/// position otherwise (a headerless file must then have exactly that many columns).
inline Table read_columns(const std::string& path, const std::vector<std::string>& names,
                          const ReadOptions& options = {}) {
  Table table = read_table(path, options);
  const bool all_named = std::all_of(names.begin(), names.end(), [&](const std::string& n) {
    return std::find(table.names.begin(), table.names.end(), n) != table.names.end();
  });
  if (all_named && table.names != names) {
    knead::data::CsvTable<double> all{std::move(table.names), std::move(table.data), {}, {}};
    knead::data::CsvTable<double> chosen = knead::data::select_columns(all, names);
    return {std::move(table.source), std::move(chosen.names),  std::move(chosen.data),
            std::move(table.lines),  std::move(table.skipped), table.position_kind_name};
  }
  if (table.dim() != Index(names.size()))
    fail(table.source, " has ", table.dim(), " columns but the model has ", names.size(),
         " and the file's header does not name them all");
  table.names = names;
  return table;
}

/// Writes `text` to `path` atomically (nothing half-written is ever left behind).
inline void write_text(const std::string& path, const std::string& text) {
  knead::io::write_file_atomically(
      path, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

/// Writes `values` (D×N) as a CSV table with a header line of `names`, atomically; "-" writes to
/// standard output. Values are written with 9 (float) or 17 (double) significant digits, enough
/// to read back the same number.
inline void write_csv(const std::string& path, const std::vector<std::string>& names,
                      const knead::Matrix<double>& values, int digits) {
  std::string text;
  text.reserve(std::size_t(values.size()) * std::size_t(digits + 8) + 64);
  for (std::size_t i = 0; i < names.size(); ++i) text += (i ? "," : "") + names[i];
  text += '\n';
  char buffer[64];
  for (Index j = 0; j < values.cols(); ++j) {
    for (Index i = 0; i < values.rows(); ++i) {
      const int n = std::snprintf(buffer, sizeof buffer, "%.*g", digits, values(i, j));
      if (i > 0) text += ',';
      text.append(buffer, std::size_t(n));
    }
    text += '\n';
  }
  if (path == "-") {
    if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0)
      throw std::runtime_error("cannot write to standard output");
    return;
  }
  write_text(path, text);
}

/// Writes `values` (D×N): as .npy (float64, shape (N, D)) when `path` ends in .npy, else as CSV.
inline void write_table(const std::string& path, const std::vector<std::string>& names,
                        const knead::Matrix<double>& values, int digits) {
  if (is_npy(path))
    knead::data::write_npy(path, values);
  else
    write_csv(path, names, values, digits);
}

}  // namespace knead_cli
