#pragma once
/// @file
/// The tables `knead` reads and writes: samples as rows, dimensions as columns. Inside, a table is
/// a D×N matrix (one sample per column), as knead's flows take it.

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "knead/core/errors.hpp"
#include "knead/core/types.hpp"
#include "knead/data/csv.hpp"
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
  [[nodiscard]] Index dim() const { return data.rows(); }
  [[nodiscard]] Index rows() const { return data.cols(); }
};

/// Splits "a,b,c" at commas; empty items are kept (and refused by the caller).
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

/// The columns of `table` named in `list` ("x,y" or 1-based positions "1,3", which may be mixed),
/// in that order. An empty list keeps every column. @throws std::invalid_argument naming an
/// unknown column, a position out of range or a column chosen twice.
inline Table select_columns(Table table, std::string_view list) {
  if (list.empty()) return table;
  std::vector<Index> chosen;
  for (const std::string& item : split_list(list)) {
    Index found = -1;
    for (std::size_t i = 0; i < table.names.size(); ++i)
      if (table.names[i] == item) found = Index(i);
    if (found < 0) {
      long position = 0;
      const auto [end, error] = std::from_chars(item.data(), item.data() + item.size(), position);
      if (error == std::errc() && end == item.data() + item.size()) {
        if (position < 1 || position > long(table.dim()))
          fail("--columns: column position ", position, " is outside 1..", table.dim(), " of ", table.source);
        found = Index(position - 1);
      }
    }
    if (found < 0) {
      std::string known;
      for (std::size_t i = 0; i < table.names.size() && i < 12; ++i)
        known += (i ? ", " : "") + table.names[i];
      if (table.names.size() > 12) known += ", …";
      fail("--columns: no column named '", item, "' in ", table.source, " (its columns: ", known, ")");
    }
    if (std::find(chosen.begin(), chosen.end(), found) != chosen.end())
      fail("--columns: column '", table.names[std::size_t(found)], "' is chosen twice");
    chosen.push_back(found);
  }
  Table out;
  out.source = table.source;
  out.data.resize(Index(chosen.size()), table.rows());
  for (std::size_t k = 0; k < chosen.size(); ++k) {
    out.data.row(Index(k)) = table.data.row(chosen[k]);
    out.names.push_back(table.names[std::size_t(chosen[k])]);
  }
  return out;
}

/// Reads a CSV file (header detected; a comma, or the delimiter given).
inline Table read_table(const std::string& path, char delimiter = ',') {
  if (!std::filesystem::exists(path)) fail("no file '", path, "'");
  knead::data::CsvOptions options;
  options.delimiter = delimiter;
  knead::data::CsvTable<double> csv = knead::data::read_csv_table<double>(path, options);
  Table table;
  table.source = "'" + path + "'";
  table.data = std::move(csv.data);
  table.names = std::move(csv.names);
  if (table.names.empty())
    for (Index i = 0; i < table.dim(); ++i) table.names.push_back("column " + std::to_string(i + 1));
  return table;
}

/// Reads the columns `names` of a file, by name when the file has them all in its header and by
/// position otherwise (a headerless file must then have exactly that many columns). `what` names
/// the data in messages.
inline Table read_columns(const std::string& path, const std::vector<std::string>& names,
                          char delimiter = ',') {
  Table table = read_table(path, delimiter);
  const bool all_named = std::all_of(names.begin(), names.end(), [&](const std::string& n) {
    return std::find(table.names.begin(), table.names.end(), n) != table.names.end();
  });
  if (all_named && table.names != names) {
    std::string list;
    for (std::size_t i = 0; i < names.size(); ++i) list += (i ? "," : "") + names[i];
    return select_columns(std::move(table), list);
  }
  if (table.dim() != Index(names.size()))
    fail(table.source, " has ", table.dim(), " columns but the model has ", names.size(),
         " and the file's header does not name them all");
  table.names = names;
  return table;
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
  knead::io::write_file_atomically(
      path, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

}  // namespace knead_cli
