#pragma once
/// @file
/// The commands that read a model file: `knead log-prob`, `knead sample` and `knead inspect`.

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <string>

#include "corner_plot.hpp"
#include "dequantize.hpp"
#include "evaluation.hpp"
#include "knead/core/threads.hpp"
#include "knead/io/flow_io.hpp"
#include "logit.hpp"
#include "model_file.hpp"
#include "table.hpp"

namespace knead_cli {

struct LogProbOptions {
  std::string model, data, output = "-", summary;
  int threads = 1;
  bool skip_invalid = false;      ///< leave out the rows that cannot be scored, listing them
  Index dequantize_samples = 16;  ///< a dequantised model: K of the bound log (1/K) Σ_k p(x + u_k)
  std::uint64_t seed = 0;         ///< a dequantised model: seed of the noise
  ReadOptions read;
};

struct SampleOptions {
  std::string model, output = "-";
  Index count = 1000;
  std::uint64_t seed = 0;
  int threads = 1;
};

struct PlotOptions {
  std::string model, data, output, columns;
  Index count = 5000;  ///< rows of the data shown (evenly spaced) and samples drawn
  std::uint64_t seed = 0;
  ReadOptions read;
};

/// A model file, parsed once: its record and its flow in the file's own precision.
struct ModelFile {
  std::string path;
  knead::io::SafetensorsFile file;
  ModelRecord record;
  std::string scalar;
  explicit ModelFile(const std::string& p)
      : path(p),
        file(knead::io::SafetensorsFile::load(p)),
        record(read_record(file, p)),
        scalar(file_scalar(file, p)) {
    if (scalar != knead::io::dtype_name(knead::io::dtype_of<float>) &&
        scalar != knead::io::dtype_name(knead::io::dtype_of<double>))
      throw knead::FormatError("'" + p + "' stores its flow as " + scalar + ", not float32 or float64");
  }
  [[nodiscard]] bool is_float() const { return scalar == knead::io::dtype_name(knead::io::dtype_of<float>); }
  template <class T>
  [[nodiscard]] knead::LoadedFlow<T> flow() const {
    knead::LoadedFlow<T> f = knead::io::flow_detail::naming_file(path, [&] { return knead::load<T>(file); });
    f.set_training(false);
    if (f.dim() != Index(record.columns.size()))
      throw knead::FormatError("'" + path + "': the flow has dim " + std::to_string(f.dim()) +
                               " but the record names " + std::to_string(record.columns.size()) + " columns");
    return f;
  }
};

/// --skip-invalid: the skipped rows on stderr (the first few) and as JSON (all).
inline void report_skipped(const Table& table, Json* summary) {
  constexpr std::size_t shown = 5;
  const char* kind = table.position_kind();
  if (!table.skipped.empty()) {
    std::cerr << "skipped " << table.skipped.size() << " rows that cannot be scored:\n";
    for (std::size_t k = 0; k < std::min(shown, table.skipped.size()); ++k)
      std::cerr << "  " << kind << " " << table.skipped[k].line << ": " << table.skipped[k].reason << '\n';
    if (table.skipped.size() > shown)
      std::cerr << "  and " << table.skipped.size() - shown << " more (all are listed by --summary)\n";
  }
  if (summary == nullptr) return;
  Json list = Json::array();
  for (const knead::data::CsvSkippedRow& r : table.skipped)
    list.push_back({{kind, r.line}, {"reason", r.reason}});
  (*summary)["skipped_rows"] = table.skipped.size();
  (*summary)["skipped"] = list;
}

/// `knead log-prob`: log p(x) of each row; for a dequantised model (dequantize.hpp) the bound
/// L_K(x) = log (1/K) Σ_k p(x + u_k) on log P(x) of the integer values. With --skip-invalid the rows
/// that cannot be scored (unreadable, or not integers in a dequantised column) are left out and
/// listed, and the output has a first column with the line (CSV) or row (.npy) of each scored row:
/// a CSV "line,log_prob", a .npy of shape (N, 2). Without it, such a row is an error.
template <class T>
int log_prob(const LogProbOptions& o, const ModelFile& m) {
  knead::set_num_threads(o.threads);
  auto flow = m.flow<T>();
  ReadOptions read = o.read;
  read.skip_bad_rows = o.skip_invalid;
  Table table = read_columns(o.data, m.record.columns, read);
  const std::vector<Index> dequantized = column_positions(m.record.columns, m.record.dequantized);
  if (o.skip_invalid) {
    skip_non_integer_rows(table, dequantized);
    skip_rows_outside<T>(table, m.record.logit);
  } else {
    check_integer_columns(table, dequantized);
    require_inside<T>(table, m.record.logit, o.data);  // a row outside a --logit interval has no log density
  }
  if (table.rows() == 0)
    fail(table.source, ": no row can be scored (", table.skipped.size(), " rows skipped; the first, ",
         table.position_kind(), " ", table.skipped.front().line, ": ", table.skipped.front().reason, ")");
  knead::RowVector<double> rows;
  if (dequantized.empty()) {
    rows = log_prob_of(flow, table.data);
  } else {
    knead::Rng rng(o.seed);
    rows = dequantized_log_prob(flow, table.data, dequantized, o.dequantize_samples, rng);
    std::cerr << "the model dequantises " << quoted_list(m.record.dequantized)
              << ": each value is log (1/K) sum_k p(x + u_k) with K = " << o.dequantize_samples
              << " draws u_k ~ Uniform[0, 1) (seed " << o.seed
              << "), whose expectation is a lower bound on the log probability of the integer values\n";
  }
  const int digits = std::is_same_v<T, float> ? 9 : 17;
  if (o.skip_invalid) {
    knead::Matrix<double> numbered(2, rows.size());
    for (Index j = 0; j < rows.size(); ++j) numbered(0, j) = double(table.position(j));
    numbered.row(1) = rows;
    write_table(o.output, {table.position_kind(), "log_prob"}, numbered, digits);  // .npy: shape (N, 2)
  } else if (is_npy(o.output)) {
    knead::data::write_npy(o.output, rows);  // shape (N,)
  } else {
    write_csv(o.output, {"log_prob"}, rows, digits);
  }
  knead::LogProbSummary s = knead::summarize_log_prob(rows, 5);
  // with rows left out, the worst rows are named by their place in DATA
  if (o.skip_invalid)
    for (Index& r : s.worst_rows) r = Index(table.position(r)) - 1;
  std::cerr << "NLL " << format_summary(s, table.dim()) << '\n';
  Json summary = summary_json(s, table.dim());
  if (!dequantized.empty())
    summary["dequantization"] = {
        {"columns", m.record.dequantized},
        {"samples", o.dequantize_samples},
        {"seed", o.seed},
        {"log_prob",
         "log (1/K) sum_k p(x + u_k), u_k ~ Uniform[0, 1): in expectation a lower bound on the log "
         "probability of the integer values"}};
  if (o.skip_invalid) report_skipped(table, &summary);
  if (!o.summary.empty()) write_text(o.summary, summary.dump(2) + "\n");
  return 0;
}

template <class T>
int sample(const SampleOptions& o, const ModelFile& m) {
  knead::set_num_threads(o.threads);
  auto flow = m.flow<T>();
  knead::Rng rng(o.seed);
  knead::Matrix<double> x = flow.sample(o.count, rng).template cast<double>();
  // a dequantised model samples x + u: floor(x + u) = x gives integers like the data
  floor_columns(x, column_positions(m.record.columns, m.record.dequantized));
  write_table(o.output, m.record.columns, x, std::is_same_v<T, float> ? 9 : 17);
  return 0;
}

/// `knead plot`: a corner plot of the data beside the model's samples (corner_plot.hpp), for the
/// columns chosen (default: the model's first six).
template <class T>
int plot_model(const PlotOptions& o, const ModelFile& m) {
  auto flow = m.flow<T>();
  Table data = read_columns(o.data, m.record.columns, o.read);
  const Index shown = std::min(o.count, data.rows());
  Table picked = data;
  picked.data.resize(data.dim(), shown);
  for (Index j = 0; j < shown; ++j) picked.data.col(j) = data.data.col(j * data.rows() / shown);
  knead::Rng rng(o.seed);
  Table samples = picked;
  samples.data = flow.sample(shown, rng).template cast<double>();
  floor_columns(samples.data, column_positions(m.record.columns, m.record.dequantized));
  std::string columns = o.columns;
  if (columns.empty())
    for (std::size_t i = 0; i < std::min<std::size_t>(6, m.record.columns.size()); ++i)
      columns += (i ? "," : "") + std::to_string(i + 1);
  picked = select_columns(std::move(picked), columns);
  samples = select_columns(std::move(samples), columns);
  CornerPlotOptions options;
  options.title = m.path + " on " + o.data;
  corner_plot(o.output, picked.data, samples.data, picked.names, options);
  return 0;
}

inline std::string join_numbers(const std::vector<double>& values) {
  std::string out;
  char buffer[32];
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::snprintf(buffer, sizeof buffer, "%.6g", values[i]);
    out += (i ? ", " : "") + std::string(buffer);
  }
  return out;
}

template <class T>
int inspect(const ModelFile& m) {
  auto flow = m.flow<T>();
  const Json& t = m.record.training;
  std::cout << "model: " << m.path << '\n';
  std::cout << "scalar: " << m.scalar << "; parameters: " << flow.num_parameters() << '\n';
  if (t.contains("flow"))
    std::cout << "flow: " << t.value("layers", 0) << " " << t.value("flow", std::string("?")) << " layers"
              << (t.value("act_norm", false) ? " with an ActNorm after each" : "")
              << (t.value("mixing", std::string("permute")) == "lu" ? ", mixed by LuLinear layers" : "")
              << ", hidden " << t.at("hidden").dump() << '\n';
  std::cout << "columns (" << m.record.columns.size() << "): ";
  for (std::size_t i = 0; i < m.record.columns.size(); ++i)
    std::cout << (i ? ", " : "") << m.record.columns[i];
  std::cout << '\n';
  std::cout << "preprocessing: " << m.record.preprocessing.kind;
  if (m.record.preprocessing.kind == "standardize")
    std::cout << " (mean " << join_numbers(m.record.preprocessing.mean) << "; scale "
              << join_numbers(m.record.preprocessing.scale) << ")";
  if (m.record.preprocessing.kind == "whiten")
    std::cout << " (mean " << join_numbers(m.record.preprocessing.mean)
              << "; x = L z + mean with L the Cholesky factor of the training covariance, log|det L| "
              << m.record.preprocessing.log_det() << ", ridge " << m.record.preprocessing.ridge << ")";
  std::cout << '\n';
  if (!m.record.logit.empty()) std::cout << "logit: " << describe_logit(m.record.logit) << '\n';
  if (!m.record.dequantized.empty())
    std::cout << "dequantised: " << quoted_list(m.record.dequantized)
              << " (integers fitted as x + u, u ~ Uniform[0, 1): the density is that of the dequantised "
                 "data; log-prob gives a lower bound on the log probability of the integers, sample "
                 "floors them)\n";
  std::cout << "training:\n";
  for (const auto& [key, value] : t.items())
    std::cout << "  " << key << ": " << (value.is_string() ? value.template get<std::string>() : value.dump())
              << '\n';
  return 0;
}

}  // namespace knead_cli
