#pragma once
/// @file
/// Scores of a table under a model: per-row log densities (knead::log_prob_rows, in chunks under
/// NoGrad) summarised as the mean NLL with its standard error, bits per dimension, the median and
/// the worst rows (knead::summarize_log_prob), for the terminal and for JSON.

#include <cmath>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "knead/train/evaluate.hpp"

namespace knead_cli {

/// log p(x_j) of every column of `x` (data units) under `flow`, as double.
template <class Flow>
knead::RowVector<double> log_prob_of(Flow& flow, const knead::Matrix<double>& x) {
  using T = typename Flow::Scalar;
  const knead::Matrix<T> data = x.cast<T>();
  return knead::log_prob_rows(flow, data);
}

template <class Flow>
knead::LogProbSummary summarize(Flow& flow, const knead::Matrix<double>& x) {
  return knead::summarize_log_prob(log_prob_of(flow, x), 5);
}

inline double bits_per_dim(double nll, knead::Index dim) { return nll / (double(dim) * std::log(2.0)); }

/// "1.2345 ± 0.0067 nats (1.7810 bits/dim; n = 1000; median 1.1000; worst row 17: 9.3100)"; rows
/// count from 1, as in the file. One row has no standard error ("1.2345 nats, one row: no standard
/// error (…)"), rather than "± inf".
inline std::string format_summary(const knead::LogProbSummary& s, knead::Index dim) {
  char text[256];
  if (s.count < 2)
    std::snprintf(text, sizeof text,
                  "%.4f nats, one row: no standard error (%.4f bits/dim; n = %ld; median %.4f", s.mean_nll,
                  bits_per_dim(s.mean_nll, dim), long(s.count), s.median_nll);
  else
    std::snprintf(text, sizeof text, "%.4f ± %.4f nats (%.4f bits/dim; n = %ld; median %.4f", s.mean_nll,
                  s.standard_error, bits_per_dim(s.mean_nll, dim), long(s.count), s.median_nll);
  std::string out = text;
  if (!s.worst_rows.empty()) {
    std::snprintf(text, sizeof text, "; worst row %ld: %.4f", long(s.worst_rows.front()) + 1,
                  -s.worst_log_prob.front());
    out += text;
  }
  return out + ")";
}

inline nlohmann::ordered_json summary_json(const knead::LogProbSummary& s, knead::Index dim) {
  nlohmann::ordered_json j{{"rows", s.count},
                           {"mean_nll", s.mean_nll},
                           {"standard_error", s.standard_error},
                           {"bits_per_dim", bits_per_dim(s.mean_nll, dim)},
                           {"median_nll", s.median_nll}};
  nlohmann::ordered_json worst = nlohmann::ordered_json::array();
  for (std::size_t k = 0; k < s.worst_rows.size(); ++k)
    worst.push_back({{"row", s.worst_rows[k] + 1}, {"nll", -s.worst_log_prob[k]}});
  j["worst_rows"] = worst;
  return j;
}

}  // namespace knead_cli
