#pragma once
/// @file
/// Per-row log densities of a table under a model, and their summary: mean NLL with its standard
/// error, bits per dimension, the median and the worst rows.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "knead/core/no_grad.hpp"
#include "knead/io/file.hpp"

namespace knead_cli {

/// log p(x_j) for every column of `x` (data units, as double), in chunks under NoGrad, so memory
/// stays bounded by the chunk whatever the number of rows.
template <class Flow>
std::vector<double> log_prob_rows(Flow& flow, const knead::Matrix<double>& x, knead::Index chunk = 16384) {
  using T = typename Flow::Scalar;
  const knead::NoGrad no_grad;
  std::vector<double> out(std::size_t(x.cols()));
  knead::Matrix<T> part;
  knead::RowVector<T> log_prob;
  for (knead::Index j = 0; j < x.cols(); j += chunk) {
    const knead::Index c = std::min(chunk, x.cols() - j);
    part = x.middleCols(j, c).cast<T>();
    flow.log_prob(part, log_prob);
    for (knead::Index k = 0; k < c; ++k) out[std::size_t(j + k)] = double(log_prob(k));
  }
  return out;
}

struct Summary {
  std::size_t count = 0;
  double mean_nll = 0;
  double standard_error = 0;  ///< sample standard deviation of −log p over √n
  double median_nll = 0;
  std::vector<std::pair<std::size_t, double>> worst;  ///< (row from 0, −log p), highest NLL first
};

inline Summary summarize(const std::vector<double>& log_prob, std::size_t worst = 5) {
  Summary s;
  s.count = log_prob.size();
  if (s.count == 0) return s;
  double sum = 0;
  for (double v : log_prob) sum -= v;
  s.mean_nll = sum / double(s.count);
  double squares = 0;
  for (double v : log_prob) squares += (-v - s.mean_nll) * (-v - s.mean_nll);
  s.standard_error = s.count > 1 ? std::sqrt(squares / double(s.count - 1) / double(s.count)) : 0.0;
  std::vector<std::size_t> order(s.count);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return log_prob[a] < log_prob[b] || (log_prob[a] == log_prob[b] && a < b);
  });
  const std::size_t half = s.count / 2;
  s.median_nll =
      s.count % 2 ? -log_prob[order[half]] : -(log_prob[order[half - 1]] + log_prob[order[half]]) / 2;
  for (std::size_t k = 0; k < std::min(worst, s.count); ++k)
    s.worst.emplace_back(order[k], -log_prob[order[k]]);
  return s;
}

/// "1.2345 ± 0.0067 nats (1.78 bits/dim; n = 1000; median 1.10; worst row 17: 9.31)"; rows count from 1.
inline std::string format_summary(const Summary& s, knead::Index dim) {
  char text[256];
  std::snprintf(text, sizeof text, "%.4f ± %.4f nats (%.4f bits/dim; n = %zu; median %.4f", s.mean_nll,
                s.standard_error, s.mean_nll / (double(dim) * std::log(2.0)), s.count, s.median_nll);
  std::string out = text;
  if (!s.worst.empty()) {
    std::snprintf(text, sizeof text, "; worst row %zu: %.4f", s.worst.front().first + 1,
                  s.worst.front().second);
    out += text;
  }
  return out + ")";
}

inline nlohmann::ordered_json summary_json(const Summary& s, knead::Index dim) {
  nlohmann::ordered_json j{{"rows", s.count},
                           {"mean_nll", s.mean_nll},
                           {"standard_error", s.standard_error},
                           {"bits_per_dim", s.mean_nll / (double(dim) * std::log(2.0))},
                           {"median_nll", s.median_nll}};
  nlohmann::ordered_json worst = nlohmann::ordered_json::array();
  for (const auto& [row, nll] : s.worst) worst.push_back({{"row", row + 1}, {"nll", nll}});
  j["worst_rows"] = worst;
  return j;
}

/// Writes `text` to `path` atomically (nothing half-written is ever left behind).
inline void write_text(const std::string& path, const std::string& text) {
  knead::io::write_file_atomically(
      path, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

}  // namespace knead_cli
