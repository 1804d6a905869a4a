#pragma once
/// @file
/// `knead fit --logit COLUMN=LOW:HIGH`: a column known to lie in the open interval (LOW, HIGH) (a
/// fraction, a percentage, an angle) is modelled in logit units y = log(x − LOW) − log(HIGH − x).
/// The standardisation is fitted on y, and the model file's flow ends, in the noise → data
/// direction, with a knead::Sigmoid mapping y back into (LOW, HIGH):
///
///     noise → trained flow → standardising Affine → Sigmoid → data,
///
///     log p_x(x) = log p_y(y) + Σ_bounded [log(HIGH − LOW) − log(x − LOW) − log(HIGH − x)],
///
/// so log-prob is in data units and every sample lies strictly inside its interval. A value on or
/// outside a bound has density 0; as knead::Sigmoid's inverse refuses it, `fit` (training,
/// validation and test rows) and `log-prob` refuse it, naming the file, line, column and value.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "knead/bijectors/dynamic_chain.hpp"
#include "knead/bijectors/sigmoid.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/data/csv.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "model_file.hpp"
#include "table.hpp"

namespace knead_cli {

/// A mistake in the command line found only once the data is read (a --logit column the table
/// lacks): main() reports it as a usage error (exit status 2).
struct UsageError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// Parses "COLUMN=LOW:HIGH" (COLUMN a name or a 1-based position, as --columns takes; the last '='
/// ends it). @throws std::invalid_argument saying what is wrong: no '=' or ':', a bound that is not a
/// finite number, LOW ≥ HIGH, or a width HIGH − LOW beyond the largest double.
inline LogitInterval parse_logit(const std::string& text) {
  const std::size_t equals = text.rfind('=');
  const std::size_t colon = equals == std::string::npos ? std::string::npos : text.find(':', equals);
  if (equals == std::string::npos || equals == 0 || colon == std::string::npos)
    fail("'", text, "' is not COLUMN=LOW:HIGH (e.g. share=0:1)");
  const auto number = [&](std::string_view field) {
    double value = 0;
    const auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), value);
    if (field.empty() || error != std::errc() || end != field.data() + field.size() || !std::isfinite(value))
      fail("'", text, "': the bound '", field, "' is not a finite number");
    return value;
  };
  const std::string_view bounds(text);
  LogitInterval interval{text.substr(0, equals), number(bounds.substr(equals + 1, colon - equals - 1)),
                         number(bounds.substr(colon + 1))};
  if (!(interval.low < interval.high))
    fail("'", text, "': LOW must be below HIGH, got ", shortest(interval.low), " and ",
         shortest(interval.high));
  if (!std::isfinite(interval.high - interval.low)) fail("'", text, "': the width HIGH - LOW is not finite");
  return interval;
}

/// The --logit intervals with each COLUMN resolved to one of `file_columns` (the columns of the file,
/// before --columns) and then checked to be among the columns of `modelled`. @throws UsageError for
/// a column the file lacks, one not modelled, or one given twice.
inline std::vector<LogitInterval> resolve_logit(const std::vector<std::string>& specs,
                                                const std::vector<std::string>& file_columns,
                                                const Table& modelled) {
  std::vector<LogitInterval> resolved;
  // select_columns resolves names and positions as --columns does; a table without rows suffices
  const knead::data::CsvTable<double> names{
      file_columns, knead::Matrix<double>(Index(file_columns.size()), 0), {}, {}};
  for (const std::string& spec : specs) {
    LogitInterval interval = parse_logit(spec);
    try {
      interval.column = knead::data::select_columns(names, {interval.column}).names.at(0);
    } catch (const std::invalid_argument& e) {
      std::string_view what = e.what();  // "select_columns: no column 'x'; there are …"
      if (const std::size_t colon = what.find(": "); colon != std::string_view::npos)
        what.remove_prefix(colon + 2);
      throw UsageError("--logit " + spec + ": " + std::string(what) + " in " + modelled.source);
    }
    if (std::find(modelled.names.begin(), modelled.names.end(), interval.column) == modelled.names.end())
      throw UsageError("--logit " + spec + ": column '" + interval.column +
                       "' is not modelled (see --columns)");
    for (const LogitInterval& earlier : resolved)
      if (earlier.column == interval.column)
        throw UsageError("--logit " + spec + ": column '" + interval.column + "' has two intervals");
    resolved.push_back(std::move(interval));
  }
  return resolved;
}

/// Where row `row` (from 0) of the table read from `path` is: "line L" of a CSV file (counting the
/// blank and comment lines the reader skips, and its header) or "row R" of a .npy file.
inline std::string row_location(const std::string& path, Index row, Index rows) {
  if (is_npy(path)) return "row " + std::to_string(row + 1);
  namespace csv = knead::data::csv_detail;
  constexpr char comment = knead::data::CsvOptions{}.comment;
  std::ifstream in(path, std::ios::binary);
  const std::string text = csv::read_all(in, path);
  // the data rows are the last `rows` content lines; a header, if any, comes before them
  std::size_t content = 0;
  csv::Lines counter(text);
  while (const auto line = counter.next()) content += csv::is_skipped(*line, comment) ? 0 : 1;
  if (content < std::size_t(rows)) return "row " + std::to_string(row + 1);  // changed after reading
  const std::size_t wanted = content - std::size_t(rows) + std::size_t(row);
  std::size_t seen = 0;
  csv::Lines lines(text);
  while (const auto line = lines.next())
    if (!csv::is_skipped(*line, comment) && seen++ == wanted) return "line " + std::to_string(lines.number());
  return "row " + std::to_string(row + 1);
}

/// The position in `table` of the column an interval names.
inline Index logit_column(const Table& table, const LogitInterval& interval) {
  const auto at = std::find(table.names.begin(), table.names.end(), interval.column);
  if (at == table.names.end()) fail(table.source, " has no column '", interval.column, "'");
  return Index(at - table.names.begin());
}

/// Whether x lies strictly inside the interval in the model's scalar type T.
template <class T>
bool inside_in(const LogitInterval& interval, double x) {
  return T(interval.low) < T(x) && T(x) < T(interval.high);
}

/// "the value X is not inside the --logit interval (LOW, HIGH)"
inline std::string not_inside(const LogitInterval& interval, double x) {
  return "the value " + shortest(x) + " is not inside the --logit interval (" + shortest(interval.low) +
         ", " + shortest(interval.high) + ")";
}

/// Refuses a row of `table` (read from `path`) whose value in a --logit column is not strictly
/// inside its interval in the model's scalar type T, naming the file, line, column and value.
template <class T>
void require_inside(const Table& table, const std::vector<LogitInterval>& logit, const std::string& path) {
  for (const LogitInterval& interval : logit) {
    const Index c = logit_column(table, interval);
    for (Index j = 0; j < table.rows(); ++j) {
      const double x = table.data(c, j);
      if (inside_in<T>(interval, x)) continue;
      const bool rounds_to_bound = interval.low < x && x < interval.high;
      fail(table.source, " ", row_location(path, j, table.rows()), ", column '", interval.column,
           "': ", not_inside(interval, x),
           rounds_to_bound ? " in float precision, where it rounds to a bound" : " (its density is 0)");
    }
  }
}

/// Leaves out (log-prob --skip-invalid) the rows of `table` whose value in a --logit column is not
/// strictly inside its interval in T, as require_inside would refuse them.
template <class T>
void skip_rows_outside(Table& table, const std::vector<LogitInterval>& logit) {
  for (const LogitInterval& interval : logit) {
    const Index c = logit_column(table, interval);
    leave_out_rows(table, [&](Index j) -> std::string {
      const double x = table.data(c, j);
      return inside_in<T>(interval, x) ? std::string()
                                       : "column '" + interval.column + "': " + not_inside(interval, x);
    });
  }
}

/// The Sigmoid mapping logit units into the intervals of the --logit columns of `columns`, leaving
/// the other columns unchanged. @throws UsageError for an interval that is empty or not finite in T.
template <class T>
knead::Sigmoid<T> logit_sigmoid(const std::vector<LogitInterval>& logit,
                                const std::vector<std::string>& columns) {
  const Index dim = Index(columns.size());
  knead::Vector<T> low = knead::Vector<T>::Constant(dim, -std::numeric_limits<T>::infinity());
  knead::Vector<T> high = knead::Vector<T>::Constant(dim, std::numeric_limits<T>::infinity());
  for (const LogitInterval& interval : logit) {
    const auto i = Index(std::find(columns.begin(), columns.end(), interval.column) - columns.begin());
    KNEAD_ASSERT(i < dim, "logit_sigmoid", "no column '", interval.column, "'");
    low(i) = T(interval.low);
    high(i) = T(interval.high);
    try {
      (void)knead::Sigmoid<T>(1, low(i), high(i));
    } catch (const std::invalid_argument& e) {
      throw UsageError("--logit " + interval.column + "=" + shortest(interval.low) + ":" +
                       shortest(interval.high) + ": " + e.what());
    }
  }
  return knead::Sigmoid<T>(low, high);
}

/// Maps the --logit columns of `table` to logit units in place, with the Sigmoid's own inverse
/// (every value must be inside its interval: require_inside). Returns the mean over the rows of
/// log|dy/dx|, the logit's log-Jacobian: a mean NLL in data units is the one in logit units minus it.
inline double to_logit_units(Table& table, const std::vector<LogitInterval>& logit) {
  if (logit.empty()) return 0.0;
  knead::Sigmoid<double> sigmoid = logit_sigmoid<double>(logit, table.names);
  const knead::NoGrad no_grad;
  knead::Matrix<double> y;
  knead::RowVector<double> log_det;
  sigmoid.inverse_and_log_det(table.data, y, log_det);
  table.data = std::move(y);
  return log_det.mean();
}

/// `model` (in logit units) followed by the Sigmoid of the --logit columns; `model` itself without any.
template <class T>
knead::TransformedDistribution<knead::StandardNormal<T>, knead::DynamicChain<T>> with_logit_stage(
    knead::TransformedDistribution<knead::StandardNormal<T>, knead::DynamicChain<T>> model,
    const std::vector<LogitInterval>& logit, const std::vector<std::string>& columns) {
  if (logit.empty()) return model;
  knead::DynamicChain<T> chain = model.bijector();
  chain.push_back(logit_sigmoid<T>(logit, columns));
  return {knead::StandardNormal<T>(chain.dim()), std::move(chain)};
}

/// "share in (0, 1), angle in (-180, 180)" for `knead inspect`.
inline std::string describe_logit(const std::vector<LogitInterval>& logit) {
  std::string out;
  for (const LogitInterval& l : logit)
    out += (out.empty() ? "" : ", ") + l.column + " in (" + shortest(l.low) + ", " + shortest(l.high) + ")";
  return out;
}

}  // namespace knead_cli
