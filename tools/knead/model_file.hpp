#pragma once
/// @file
/// The model files `knead` writes: a knead flow file (knead::save) whose flow gives densities in the
/// data's own units, with a record of how it was made in the metadata entry "cli.record".
///
/// The flow is trained on preprocessed data z; the file holds that flow followed (in the noise →
/// data direction) by the fixed affine map back to data units, so knead::load gives a flow whose
/// log_prob is the density of x and whose samples are in data units:
///
/// - whiten (the default): z = L⁻¹(x − μ) with μ the training mean and L L^T the training
///   covariance (maximum likelihood, divided by N); the map x = L z + μ is a `TriangularAffine`
///   (log-diagonal log L_ii, the entries below the diagonal, shift μ), and
///       log p_x(x) = log p_z(L⁻¹(x − μ)) − Σ_i log L_ii.
///   A flow that starts as the identity therefore starts as the full-covariance Gaussian N(μ, L L^T).
/// - standardize: z = (x − μ)/σ per column; the map x = σ ⊙ z + μ is an `Affine` (log-scale log σ,
///   shift μ), and log p_x(x) = log p_z((x − μ)/σ) − Σ_i log σ_i.
/// - none: z = x.
///
/// Columns fitted with `--logit` (logit.hpp) are preprocessed in logit units and mapped into their
/// intervals by a final `Sigmoid`. The record (JSON) says which
/// columns the model reads, the preprocessing (μ, and σ or L), the logit intervals, and the training
/// run: data file, its CRC-32, rows, epochs, best validation NLL (data units), the command line and
/// the knead version.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "knead/bijectors/dynamic_chain.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/bijectors/triangular_affine.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "knead/io/flow_io.hpp"
#include "knead/io/safetensors.hpp"

namespace knead_cli {

using Json = nlohmann::ordered_json;
using knead::Index;
inline constexpr const char* record_key = "cli.record";
// the project's version (CMakeLists.txt's project(VERSION)), passed by tools/CMakeLists.txt
#ifndef KNEAD_TOOL_VERSION
#error "KNEAD_TOOL_VERSION (the project's version string) must be defined by the build"
#endif
inline constexpr const char* knead_version = KNEAD_TOOL_VERSION;

/// How data columns map to the flow's coordinates.
struct Preprocessing {
  std::string kind = "whiten";  ///< "whiten" (z = L⁻¹(x − μ)), "standardize" (z = (x − μ)/σ), "none"
  std::vector<double> mean, scale;  ///< μ (whiten, standardize) and σ (standardize)
  std::vector<double> cholesky;     ///< whiten: L, D × D row by row (zeros above the diagonal)
  double ridge = 0;                 ///< whiten: ε of L Lᵀ = Σ + ε diag(Σ) (0 unless Σ is singular)

  /// Σ_i log L_ii or Σ_i log σ_i: NLL in data units = NLL in the flow's units + this.
  [[nodiscard]] double log_det() const {
    double sum = 0;
    if (kind == "standardize")
      for (const double sd : scale) sum += std::log(sd);
    if (kind == "whiten")
      for (std::size_t i = 0; i < mean.size(); ++i) sum += std::log(cholesky[i * mean.size() + i]);
    return sum;
  }
};

/// A column modelled through the logit (`knead fit --logit COLUMN=LOW:HIGH`): its open interval.
struct LogitInterval {
  std::string column;
  double low = 0, high = 0;
};

struct ModelRecord {
  std::vector<std::string> columns;  ///< the data columns the flow reads, in order
  Preprocessing preprocessing;
  std::vector<LogitInterval> logit;  ///< the --logit columns (recorded only when there are some)
  Json training = Json::object();    ///< what fit records of its run
  /// The integer columns fitted as x + u, u ~ Uniform[0, 1) (fit --dequantize; see dequantize.hpp),
  /// stored as {"dequantization": {"columns": [...], "noise": ...}} when there are any.
  std::vector<std::string> dequantized;
  [[nodiscard]] Json to_json() const {
    Json j;
    j["columns"] = columns;
    j["preprocessing"] = {
        {"kind", preprocessing.kind}, {"mean", preprocessing.mean}, {"scale", preprocessing.scale}};
    if (!logit.empty()) {
      j["logit"] = Json::array();
      for (const LogitInterval& l : logit)
        j["logit"].push_back({{"column", l.column}, {"low", l.low}, {"high", l.high}});
    }
    if (!dequantized.empty())
      j["dequantization"] = {{"columns", dequantized}, {"noise", "u ~ Uniform[0, 1) added to each value"}};
    if (preprocessing.kind == "whiten") {
      j["preprocessing"]["cholesky"] = preprocessing.cholesky;
      j["preprocessing"]["ridge"] = preprocessing.ridge;
    }
    j["training"] = training;
    return j;
  }
};

/// The CRC-32 of a file's bytes as 8 hexadecimal digits (read in 1 MB blocks).
inline std::string file_crc32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) knead::detail::fail<std::runtime_error>("crc32", "cannot read '", path, "'");
  std::vector<std::uint8_t> block(1 << 20);
  std::uint32_t crc = 0;
  while (in) {
    in.read(reinterpret_cast<char*>(block.data()), std::streamsize(block.size()));
    const auto got = std::size_t(in.gcount());
    crc = knead::io::detail::crc32(std::span<const std::uint8_t>(block.data(), got), crc);
  }
  return knead::io::detail::crc32_text(crc);
}

/// The flow of the model file: `trained` (on preprocessed data) then x = σ ⊙ z + μ (standardize)
/// or x = L z + μ (whiten).
template <class T>
knead::TransformedDistribution<knead::StandardNormal<T>, knead::DynamicChain<T>> data_unit_flow(
    const knead::DynamicChain<T>& trained, const Preprocessing& preprocessing) {
  knead::DynamicChain<T> chain = trained;
  if (preprocessing.kind == "standardize") {
    const Index d = chain.dim();
    knead::Vector<T> log_scale(d), shift(d);
    for (Index i = 0; i < d; ++i) {
      log_scale(i) = T(std::log(preprocessing.scale[std::size_t(i)]));
      shift(i) = T(preprocessing.mean[std::size_t(i)]);
    }
    chain.push_back(knead::Affine<T>(log_scale, shift));
  }
  if (preprocessing.kind == "whiten") {
    // TriangularAffine's parameters: [log L_ii (D)][L_ij, i > j, column by column][μ (D)]
    const auto d = std::size_t(chain.dim());
    knead::TriangularAffine<T> map{Index(d)};
    const std::span<T> p = map.parameters();
    std::size_t at = 0;
    for (std::size_t i = 0; i < d; ++i) p[at++] = T(std::log(preprocessing.cholesky[i * d + i]));
    for (std::size_t j = 0; j < d; ++j)
      for (std::size_t i = j + 1; i < d; ++i) p[at++] = T(preprocessing.cholesky[i * d + j]);
    for (std::size_t i = 0; i < d; ++i) p[at++] = T(preprocessing.mean[i]);
    chain.push_back(std::move(map));
  }
  return {knead::StandardNormal<T>(chain.dim()), std::move(chain)};
}

/// The record stored in a model file. @throws knead::FormatError if the file has none (a flow file
/// not written by `knead fit`) or it is malformed.
inline ModelRecord read_record(const knead::io::SafetensorsFile& file, const std::string& path) {
  const auto it = file.metadata().find(record_key);
  if (it == file.metadata().end())
    throw knead::FormatError("'" + path + "' is a flow file without knead fit's record (metadata '" +
                             record_key + "'): load it with knead::load");
  try {
    const Json j = Json::parse(it->second);
    ModelRecord r;
    r.columns = j.at("columns").get<std::vector<std::string>>();
    r.preprocessing.kind = j.at("preprocessing").at("kind").get<std::string>();
    r.preprocessing.mean = j.at("preprocessing").at("mean").get<std::vector<double>>();
    r.preprocessing.scale = j.at("preprocessing").at("scale").get<std::vector<double>>();
    if (j.contains("logit"))
      for (const Json& l : j.at("logit")) {
        LogitInterval interval{l.at("column").get<std::string>(), l.at("low").get<double>(),
                               l.at("high").get<double>()};
        if (std::find(r.columns.begin(), r.columns.end(), interval.column) == r.columns.end() ||
            !(interval.low < interval.high))
          throw knead::FormatError("'" + path + "': metadata '" + record_key + "' has the logit interval " +
                                   l.dump() + " of no column or with low >= high");
        r.logit.push_back(std::move(interval));
      }
    if (r.preprocessing.kind == "whiten") {
      r.preprocessing.cholesky = j.at("preprocessing").at("cholesky").get<std::vector<double>>();
      r.preprocessing.ridge = j.at("preprocessing").at("ridge").get<double>();
      const std::size_t d = r.preprocessing.mean.size();
      if (r.preprocessing.cholesky.size() != d * d)
        throw knead::FormatError("'" + path + "': metadata '" + record_key + "': the whitening factor has " +
                                 std::to_string(r.preprocessing.cholesky.size()) + " entries, expected " +
                                 std::to_string(d * d));
    }
    r.training = j.at("training");
    if (j.contains("dequantization"))
      r.dequantized = j.at("dequantization").at("columns").get<std::vector<std::string>>();
    for (const std::string& name : r.dequantized)
      if (std::find(r.columns.begin(), r.columns.end(), name) == r.columns.end())
        throw knead::FormatError("'" + path + "': the dequantised column '" + name +
                                 "' is not a column of the model");
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw knead::FormatError("'" + path + "': metadata '" + record_key + "' is malformed: " + e.what());
  }
}

/// The scalar type a flow file stores ("float32" or "float64").
inline std::string file_scalar(const knead::io::SafetensorsFile& file, const std::string& path) {
  const auto it = file.metadata().find("knead.scalar");
  if (it == file.metadata().end()) throw knead::FormatError("'" + path + "' is not a knead flow file");
  return it->second;
}

}  // namespace knead_cli
