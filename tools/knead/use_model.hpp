#pragma once
/// @file
/// The commands that read a model file: `knead log-prob`, `knead sample` and `knead inspect`.

#include <cstdint>
#include <iostream>
#include <string>

#include "corner_plot.hpp"
#include "evaluation.hpp"
#include "knead/core/threads.hpp"
#include "knead/io/flow_io.hpp"
#include "model_file.hpp"
#include "table.hpp"

namespace knead_cli {

struct LogProbOptions {
  std::string model, data, output = "-", summary;
  int threads = 1;
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

template <class T>
int log_prob(const LogProbOptions& o, const ModelFile& m) {
  knead::set_num_threads(o.threads);
  auto flow = m.flow<T>();
  const Table table = read_columns(o.data, m.record.columns, o.read);
  const knead::RowVector<double> rows = log_prob_of(flow, table.data);
  if (is_npy(o.output))
    knead::data::write_npy(o.output, rows);  // shape (N,)
  else
    write_csv(o.output, {"log_prob"}, rows, std::is_same_v<T, float> ? 9 : 17);
  const knead::LogProbSummary s = knead::summarize_log_prob(rows, 5);
  std::cerr << "NLL " << format_summary(s, table.dim()) << '\n';
  if (!o.summary.empty()) write_text(o.summary, summary_json(s, table.dim()).dump(2) + "\n");
  return 0;
}

template <class T>
int sample(const SampleOptions& o, const ModelFile& m) {
  knead::set_num_threads(o.threads);
  auto flow = m.flow<T>();
  knead::Rng rng(o.seed);
  const knead::Matrix<double> x = flow.sample(o.count, rng).template cast<double>();
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
    std::cout << "flow: " << t.value("layers", 0) << " " << t.value("flow", std::string("?"))
              << " layers, hidden " << t.at("hidden").dump() << '\n';
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
  std::cout << "training:\n";
  for (const auto& [key, value] : t.items())
    std::cout << "  " << key << ": " << (value.is_string() ? value.template get<std::string>() : value.dump())
              << '\n';
  return 0;
}

}  // namespace knead_cli
