#pragma once
/// @file
/// Uniform dequantisation of integer-valued columns: `knead fit --dequantize`, and what `log-prob`,
/// `sample` and `plot` do with a model fitted that way.
///
/// A flow has a density; integer data has probabilities, and a density fitted to integers grows
/// without bound on them. So training sees y = x + u, u ~ Uniform[0, 1) drawn independently for
/// each value of a dequantised column (fresh noise every epoch), and the model's density p is that
/// of the dequantised data y. Since floor(y) = x, the probability of an integer row is the mass of
/// its unit cell (k dequantised columns; any other column stays a density):
///
///     P(x) = ∫_[0,1)^k p(x + u) du.
///
/// `log-prob` reports, for K draws u_1 … u_K ~ Uniform[0, 1)^k,
///
///     L_K(x) = log (1/K) Σ_k p(x + u_k),
///
/// the importance-weighted bound with the uniform proposal: E[(1/K) Σ_k p(x + u_k)] = P(x), so by
/// Jensen's inequality E[L_K(x)] ≤ log P(x); E[L_K] does not decrease with K and tends to log P(x)
/// as K grows. K = 1 is the variational bound E_u[log p(x + u)]. A single value of L_K may exceed
/// log P(x); its mean over many rows is below it up to the Monte-Carlo error.
///
/// `sample` floors the dequantised columns, so samples are integers like the data (the model's
/// own probabilities P are those of the floored samples).

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "evaluation.hpp"
#include "knead/data/random.hpp"
#include "table.hpp"

namespace knead_cli {

/// The positions of `chosen` (names of the model's columns) in `columns`.
inline std::vector<Index> column_positions(const std::vector<std::string>& columns,
                                           const std::vector<std::string>& chosen) {
  std::vector<Index> positions;
  for (const std::string& name : chosen)
    for (std::size_t i = 0; i < columns.size(); ++i)
      if (columns[i] == name) positions.push_back(Index(i));
  return positions;
}

/// "'a', 'b'"
inline std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) out += (i ? ", '" : "'") + names[i] + "'";
  return out;
}

inline bool is_integer(double value) { return std::floor(value) == value; }

/// The first row of `table` with a non-integer value in one of `columns`, or −1; `column` gets the
/// column.
inline Index first_non_integer(const Table& table, const std::vector<Index>& columns, Index& column) {
  for (Index j = 0; j < table.rows(); ++j)
    for (const Index i : columns)
      if (!is_integer(table.data(i, j))) {
        column = i;
        return j;
      }
  return -1;
}

/// Fails naming the file, line, column and value if a dequantised column of `table` holds a value
/// that is not an integer.
inline void check_integer_columns(const Table& table, const std::vector<Index>& columns) {
  Index column = 0;
  const Index j = first_non_integer(table, columns, column);
  if (j >= 0)
    fail(table.source, " ", table.where(j), ", column '", table.names[std::size_t(column)], "' (", column + 1,
         "): ", shortest(table.data(column, j)),
         " is not an integer (the column is dequantised: it must hold integers)");
}

/// Leaves out the rows of `table` with a value that is not an integer in one of `columns` (outside
/// the support of a dequantised model), adding them to table.skipped.
inline void skip_non_integer_rows(Table& table, const std::vector<Index>& columns) {
  if (columns.empty()) return;
  leave_out_rows(table, [&](Index j) -> std::string {
    for (const Index i : columns)
      if (!is_integer(table.data(i, j)))
        return "column " + std::to_string(i + 1) + " ('" + table.names[std::size_t(i)] +
               "') is dequantised and " + shortest(table.data(i, j)) + " is not an integer";
    return {};
  });
}

/// The columns `--dequantize` names (a list of names or 1-based positions among the model's
/// columns, or "auto": every column whose values in `table` are all integers), in the table's
/// order. A column named explicitly must hold integers only.
inline std::vector<Index> dequantized_columns(const Table& table, const std::string& list) {
  std::vector<Index> columns;
  if (list.empty()) return columns;
  if (list == "auto") {
    for (Index i = 0; i < table.dim(); ++i) {
      bool integers = true;
      for (Index j = 0; j < table.rows() && integers; ++j) integers = is_integer(table.data(i, j));
      if (integers) columns.push_back(i);
    }
    return columns;
  }
  std::vector<bool> chosen(std::size_t(table.dim()), false);
  for (const std::string& item : split_list(list)) {
    Index position = -1;
    for (std::size_t i = 0; i < table.names.size(); ++i)
      if (table.names[i] == item) position = Index(i);
    if (position < 0) {
      std::size_t number = 0;
      const auto [end, error] = std::from_chars(item.data(), item.data() + item.size(), number);
      if (error == std::errc() && end == item.data() + item.size() && number >= 1 &&
          number <= std::size_t(table.dim()))
        position = Index(number) - 1;
    }
    if (position < 0)
      fail("--dequantize: no column '", item, "' among the modelled columns ", quoted_list(table.names),
           " (names or 1-based positions, or auto)");
    if (chosen[std::size_t(position)])
      fail("--dequantize: column '", table.names[std::size_t(position)], "' is named twice");
    chosen[std::size_t(position)] = true;
  }
  for (Index i = 0; i < table.dim(); ++i)
    if (chosen[std::size_t(i)]) columns.push_back(i);
  check_integer_columns(table, columns);
  return columns;
}

/// Adds u ~ Uniform[0, 1) to every value of `columns` of `x` (D×N), row after row.
inline void add_uniform_noise(knead::Matrix<double>& x, const std::vector<Index>& columns, knead::Rng& rng) {
  for (Index j = 0; j < x.cols(); ++j)
    for (const Index i : columns) x(i, j) += knead::data::uniform01(rng);
}

/// The noise of one use during fit: stream 0 for the validation table, 1 for the test table, and
/// 1 + e for epoch e of training, each its own engine seeded from --seed and the stream.
inline knead::Rng noise_rng(std::uint64_t seed, Index stream) {
  return knead::Rng(seed * 0x9E3779B97F4A7C15ULL + 0xD1B54A32D192ED03ULL * std::uint64_t(stream + 1));
}

/// `table` with its dequantised columns plus noise of `stream` (see noise_rng).
inline Table with_noise(const Table& table, const std::vector<Index>& columns, std::uint64_t seed,
                        Index stream) {
  Table noisy = table;
  knead::Rng rng = noise_rng(seed, stream);
  add_uniform_noise(noisy.data, columns, rng);
  return noisy;
}

inline void floor_columns(knead::Matrix<double>& x, const std::vector<Index>& columns) {
  for (const Index i : columns) x.row(i) = x.row(i).array().floor();
}

/// L_K(x) = log (1/K) Σ_k p(x + u_k) of each column of `x` (data units; integers in `columns`),
/// with the noise drawn from `rng`; the log-sum-exp is taken about the running maximum so that no
/// term underflows to 0 before the sum.
template <class Flow>
knead::RowVector<double> dequantized_log_prob(Flow& flow, const knead::Matrix<double>& x,
                                              const std::vector<Index>& columns, Index samples,
                                              knead::Rng& rng) {
  const Index n = x.cols();
  knead::RowVector<double> top =
      knead::RowVector<double>::Constant(n, -std::numeric_limits<double>::infinity());
  knead::RowVector<double> sum = knead::RowVector<double>::Zero(n);  // Σ_k exp(l_k − top)
  for (Index k = 0; k < samples; ++k) {
    knead::Matrix<double> y = x;
    add_uniform_noise(y, columns, rng);
    const knead::RowVector<double> l = log_prob_of(flow, y);
    for (Index j = 0; j < n; ++j) {
      if (l(j) == -std::numeric_limits<double>::infinity()) continue;  // p = 0 adds nothing
      if (l(j) > top(j)) {
        sum(j) = sum(j) * std::exp(top(j) - l(j)) + 1.0;
        top(j) = l(j);
      } else {
        sum(j) += std::exp(l(j) - top(j));
      }
    }
  }
  return (top.array() + sum.array().log() - std::log(double(samples))).matrix();
}

}  // namespace knead_cli
