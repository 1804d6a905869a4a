// train_2d: fits a normalizing flow to a 2-D point cloud by maximum likelihood and draws what it
// learned: the data, samples, the log-density, the "taffy pulling" stages and the loss curves,
// plus summary.json with the settings, the NLLs and the flow's throughput.
//
//   train_2d --dataset moons --flow maf --layers 4 --out out/moons
//   train_2d --dataset moons --flow maf --layers 2 --base mog:8 --out out/moons_mog
//
// NLLs are nats per point in the coordinates the flow is trained in (--scaling: standardised with
// the training split's mean and standard deviation by default; summary.json says which) and, in
// summary.json, also in the data's own coordinates. The flow is
// trained in float unless --precision double is given (a loaded flow keeps the file's precision).

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "common.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/core/threads.hpp"
#include "knead/distributions/any_distribution.hpp"
#include "knead/distributions/diagonal_normal.hpp"
#include "knead/distributions/mixture_of_gaussians.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "knead/flows/builder.hpp"
#include "knead/io/flow_io.hpp"
#include "knead/optim/adam.hpp"
#include "knead/train/trainer.hpp"

namespace {

using example::Index;

template <class T>
using Flow = knead::TransformedDistribution<knead::AnyDistribution<T>, knead::DynamicChain<T>>;

struct Options {
  std::string dataset = "moons";
  std::string flow = "maf";
  std::string base = "standard";  // standard, diagonal or mog:K
  Index layers = 4;
  std::vector<Index> hidden = {128, 128};
  bool batch_norm = false;
  bool act_norm = false;
  std::string mixing = "permute";  // between layers: permute (the reversal) or lu (a LuLinear)
  Index steps = 5000;
  Index batch = 512;
  double lr = 1e-3;
  std::uint64_t seed = 0;
  Index train_size = 20000;
  double noise = 0.05;
  Index patience = 0;
  double guard_bound = 5.0;
  double weight_decay = 0.0;
  bool quiet = false;
  int threads = 1;
  std::string precision;  // "float" or "double"; empty: float, or the precision of the --load file
  Index checkpoint_every = 0;
  std::string resume;
  std::string scaling = "auto";
  std::string out = "out";
  std::string load;  // a flow saved by knead::save, used instead of a new one
};

/// The mean of −log p(x) over the columns of `data` in evaluation mode: what Trainer::evaluate
/// computes (the same chunks and sum), without a Trainer, which a flow without parameters cannot have.
template <class Flow>
double mean_nll(Flow& flow, const knead::Matrix<typename Flow::Scalar>& data) {
  const knead::NoGrad no_grad;
  const Index chunk = knead::TrainerOptions().validation_batch_size;
  knead::RowVector<typename Flow::Scalar> log_prob;
  double sum = 0;
  for (Index j = 0; j < data.cols(); j += chunk) {
    const Index c = std::min(chunk, data.cols() - j);
    flow.log_prob(data.middleCols(j, c), log_prob);
    for (Index k = 0; k < c; ++k) sum -= static_cast<double>(log_prob(k));
  }
  return sum / double(data.cols());
}

/// The number of components K of a --base "mog:K" (K ≥ 1), 0 for "standard" and "diagonal", and
/// -1 for anything else.
Index base_components(const std::string& base) {
  if (base == "standard" || base == "diagonal") return 0;
  if (!base.starts_with("mog:") || base.size() == 4 || base.size() > 10) return -1;
  Index k = 0;
  for (const char c : base.substr(4)) {
    if (c < '0' || c > '9') return -1;
    k = 10 * k + (c - '0');
  }
  return k >= 1 ? k : -1;
}

/// The base distribution a --base names, on R^dim; the mixture's means are drawn with `seed`.
template <class T>
knead::AnyDistribution<T> make_base(const std::string& base, Index dim, std::uint64_t seed) {
  const Index k = base_components(base);
  if (k > 0) return knead::MixtureOfGaussians<T>(dim, k, seed);
  if (base == "diagonal") return knead::DiagonalNormal<T>(dim);
  return knead::StandardNormal<T>(dim);
}

/// What a flow is, as summary.json records it.
struct Architecture {
  std::string flow;           ///< the kind whose layers it stacks (a --flow name), else "saved flow"
  std::string base;           ///< the base distribution, as --base names it
  Index layers = 0;           ///< the number of those layers
  std::vector<Index> hidden;  ///< the hidden sizes of the first layer's network (none: empty)
  bool batch_norm = false;
  bool act_norm = false;
  std::string mixing = "permute";  ///< "lu" when a LuLinear mixes between layers
};

/// The architecture of a flow file, read from its `knead.flow` metadata (docs/format.md): the parts
/// of its chain that are layers of a flow kind (Maf: maf, Invert of a Maf: iaf, AffineCoupling:
/// realnvp, AdditiveCoupling: nice, PReLU: mlp); Permutes, BatchNorms and other parts are not layers.
Architecture architecture_of(const std::string& path) {
  const auto file = knead::io::SafetensorsFile::load(path);
  const nlohmann::json flow = nlohmann::json::parse(file.metadata().at("knead.flow"));
  const nlohmann::json& bijector = flow.at("bijector");
  const nlohmann::json parts =
      bijector.at("type") == "Chain" ? bijector.at("parts") : nlohmann::json::array({bijector});
  Architecture a;
  const nlohmann::json& base = flow.at("base");
  const std::string base_type = base.at("type");
  a.base = base_type == "StandardNormal"   ? "standard"
           : base_type == "DiagonalNormal" ? "diagonal"
                                           : "mog:" + std::to_string(base.at("components").get<Index>());
  std::string kind;
  bool one_kind = true;
  for (const nlohmann::json& part : parts) {
    const std::string type = part.at("type");
    const bool inverse_maf = type == "Invert" && part.at("inner").at("type") == "Maf";
    const std::string layer_kind = type == "Maf"                ? "maf"
                                   : inverse_maf                ? "iaf"
                                   : type == "AffineCoupling"   ? "realnvp"
                                   : type == "AdditiveCoupling" ? "nice"
                                   : type == "PReLU"            ? "mlp"
                                                                : "";
    a.batch_norm = a.batch_norm || type == "BatchNorm";
    a.act_norm = a.act_norm || type == "ActNorm";
    if (type == "LuLinear") a.mixing = "lu";
    if (layer_kind.empty()) continue;
    if (a.layers == 0) {
      kind = layer_kind;
      const nlohmann::json& network = inverse_maf ? part.at("inner") : part;
      if (network.contains("hidden")) a.hidden = network.at("hidden").get<std::vector<Index>>();
    }
    one_kind = one_kind && layer_kind == kind;
    ++a.layers;
  }
  a.flow = a.layers > 0 && one_kind ? kind : "saved flow";
  return a;
}

template <class T>
int run(const Options& o) {
  std::filesystem::create_directories(o.out);
  knead::set_num_threads(o.threads);
  const example::Dataset data64 = example::load_dataset(o.dataset, o.train_size, o.noise, o.seed,
                                                        example::parse_scaling(o.scaling, o.dataset));
  const knead::Matrix<T> train = data64.train.cast<T>(), validation = data64.validation.cast<T>(),
                         test = data64.test.cast<T>();

  knead::FlowSpec<T> spec;
  spec.kind = knead::parse_flow_kind(o.flow);
  spec.dim = 2;
  spec.layers = o.layers;
  spec.hidden = o.hidden;
  spec.batch_norm = o.batch_norm;
  spec.act_norm = o.act_norm;
  spec.mixing = knead::parse_mixing(o.mixing);
  spec.seed = o.seed;
  if (o.guard_bound > 0)
    spec.guard.bound = o.guard_bound;
  else
    spec.guard.kind = knead::LogScaleGuardKind::none;
  Flow<T> flow = o.load.empty() ? Flow<T>(make_base<T>(o.base, 2, o.seed), knead::make_flow(spec))
                                : knead::load_as<Flow<T>>(o.load, knead::ScalarConversion::allow);

  knead::TrainingHistory history;
  if (!o.resume.empty() || o.steps > 0) {
    if (flow.num_parameters() == 0)
      throw std::invalid_argument(
          "the flow has no parameters: there is nothing to train; give --steps 0 "
          "(without --resume) to evaluate and draw it");
    knead::TrainerOptions options;
    options.batch_size = o.batch;
    options.max_steps = std::max<Index>(o.steps, 1);  // the Trainer needs 1 (a --resume with --steps 0)
    options.seed = o.seed;
    options.validation_every = std::max<Index>(1, std::min<Index>(250, o.steps / 20));
    options.patience = o.patience;
    options.max_gradient_norm = 100.0;
    options.progress = o.quiet ? nullptr : &std::cerr;
    options.checkpoint_every = o.checkpoint_every;
    if (o.checkpoint_every > 0) options.checkpoint_path = o.out + "/checkpoint.safetensors";
    knead::AdamOptions adam;
    adam.lr = knead::LrSchedule::cosine(o.lr, std::max<Index>(o.steps, 1), 0, o.lr * 0.02);
    adam.weight_decay = o.weight_decay;
    knead::Trainer trainer(flow, knead::Adam<T>(flow.num_parameters(), adam), options);
    history = o.resume.empty() ? trainer.fit(train, validation) : trainer.resume(o.resume, train, validation);
  }
  flow.set_training(false);
  knead::save(flow, o.out + "/model.safetensors");

  const double train_nll = mean_nll(flow, train);
  const double val_nll = mean_nll(flow, validation);
  const double test_nll = mean_nll(flow, test);
  const double test_nll_data = test_nll - data64.standardizer.log_det();
  const auto [samples_per_s, densities_per_s] = example::throughput(flow, 20000, o.seed + 7);

  // pictures
  knead::Rng rng(o.seed + 99);
  const knead::Matrix<T> samples = flow.sample(std::min<Index>(20000, train.cols()), rng);
  const plot::Limits view = example::view_of(data64.train);
  const std::string tag = (o.load.empty() ? o.flow : "saved flow") + " on " + o.dataset;
  example::scatter_png(o.out + "/data.png", data64.train, view, "training data", plot::colors::series[0]);
  example::scatter_png(o.out + "/samples.png", samples, view, "samples: " + tag, plot::colors::series[1]);
  example::density_png(o.out + "/density.png", flow, view, "log density: " + tag);
  example::taffy_png(o.out + "/taffy.png", flow, 4000, o.seed + 5);
  std::vector<std::pair<double, double>> validation_curve;
  for (const auto& v : history.validation) validation_curve.emplace_back(double(v.step), v.nll);
  if (!history.train_loss.empty())  // nothing to draw for a loaded flow evaluated with --steps 0
    example::loss_png(o.out + "/loss.png", history.train_loss, validation_curve, "training: " + tag);

  // a loaded flow is described by its file, not by --flow, --base, --layers, --hidden, --batchnorm
  // --actnorm and --mixing
  const Architecture arch =
      o.load.empty() ? Architecture{o.flow, o.base, o.layers, o.hidden, o.batch_norm, o.act_norm, o.mixing}
                     : architecture_of(o.load);
  nlohmann::json summary = {{"dataset", o.dataset},
                            {"flow", arch.flow},
                            {"base", arch.base},
                            {"layers", arch.layers},
                            {"hidden", arch.hidden},
                            {"batchnorm", arch.batch_norm},
                            {"actnorm", arch.act_norm},
                            {"mixing", arch.mixing},
                            {"steps", history.steps},
                            {"batch", o.batch},
                            {"lr", o.lr},
                            {"seed", o.seed},
                            {"precision", std::string(std::is_same_v<T, float> ? "float" : "double")},
                            {"threads", o.threads},
                            {"parameters", flow.num_parameters()},
                            {"train_points", train.cols()},
                            {"train_seconds", history.seconds},
                            {"stop_reason", knead::to_string(history.stop_reason)},
                            {"nll_coordinates", data64.coordinates},
                            {"train_nll", train_nll},
                            {"val_nll", val_nll},
                            {"test_nll", test_nll},
                            {"test_set", data64.test_description},
                            {"test_nll_data_coordinates", test_nll_data},
                            {"samples_per_second", samples_per_s},
                            {"densities_per_second", densities_per_s}};
  if (!o.load.empty()) summary["loaded_from"] = o.load;
  example::write_json(o.out + "/summary.json", summary);
  std::printf(
      "%s: test NLL %.4f nats (training coordinates; %.4f in data coordinates), train %.4f, validation %.4f, "
      "%.1f s, %.0f samples/s, %.0f densities/s -> %s/\n",
      tag.c_str(), test_nll, test_nll_data, train_nll, val_nll, history.seconds, samples_per_s,
      densities_per_s, o.out.c_str());
  return 0;
}

/// The precision to train or evaluate in: --precision, else the scalar of the --load file, else float.
std::string precision_of(const Options& o) {
  if (!o.precision.empty() || o.load.empty()) return o.precision.empty() ? "float" : o.precision;
  const auto file = knead::io::SafetensorsFile::load(o.load);
  const auto it = file.metadata().find("knead.scalar");
  return it != file.metadata().end() && it->second == "F64" ? "double" : "float";
}

/// The help of --flow: each flow kind's name and description.
std::string flow_help() {
  std::string help = "the flow:";
  for (const auto& kind : knead::flow_kinds<double>)
    help += "\n  " + std::string(kind.name) + ": " + std::string(kind.description);
  return help;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Fit a normalizing flow to a 2-D point cloud and draw what it learned"};
  Options o;
  app.add_option("--dataset", o.dataset, "moons, siggraph, or the path of a CSV file with two columns");
  app.add_option("--flow", o.flow, flow_help())->check(CLI::IsMember(knead::flow_kind_names()));
  app.add_option("--base", o.base,
                 "base distribution: standard (N(0, I)), diagonal (learnable N(μ, diag σ²)) or mog:K "
                 "(a learnable mixture of K diagonal Gaussians)")
      ->check(CLI::Validator(
          [](const std::string& base) {
            return base_components(base) < 0
                       ? "must be standard, diagonal or mog:K with K from 1 to 999999, got '" + base + "'"
                       : std::string();
          },
          "BASE"));
  app.add_option("--layers", o.layers, "number of flow layers")->check(example::positive_number);
  app.add_option("--hidden", o.hidden, "hidden layer sizes of each layer's network, e.g. 64,64")
      ->delimiter(',');
  app.add_flag("--batchnorm", o.batch_norm, "a BatchNorm between layers");
  app.add_flag("--actnorm", o.act_norm, "an ActNorm after each layer, set from the first batch");
  app.add_option("--mixing", o.mixing,
                 "between layers: permute (reverse the dimensions) or lu (a learnable LuLinear "
                 "starting as that reversal)")
      ->check(CLI::IsMember({"permute", "lu"}));
  app.add_option("--steps", o.steps, "Adam steps (0: no training)")->check(example::non_negative_number);
  app.add_option("--batch", o.batch, "minibatch size")->check(example::positive_number);
  app.add_option("--lr", o.lr, "peak learning rate of the cosine schedule")->check(example::positive_number);
  app.add_option("--seed", o.seed, "seed of the data, the initial weights and the batches");
  app.add_option("--train-size", o.train_size,
                 "points generated for moons/siggraph (90% train, 10% validation)")
      ->check(CLI::Range(Index(10), Index(100000000)));
  app.add_option("--scaling", o.scaling,
                 "coordinates to train in: standard (per-dimension σ), uniform (one σ), none (centred "
                 "only), auto (uniform for siggraph, else standard)")
      ->check(CLI::IsMember({"auto", "standard", "uniform", "none"}));
  app.add_option("--noise", o.noise, "noise of the two moons")->check(example::non_negative_number);
  app.add_option("--patience", o.patience, "early stopping after this many validations without improvement");
  app.add_option("--guard-bound", o.guard_bound,
                 "bound c of the soft clamp c·tanh(a/c) of log-scales (0: none)")
      ->check(example::non_negative_number);
  app.add_option("--weight-decay", o.weight_decay, "Adam's decoupled weight decay")
      ->check(example::non_negative_number);
  app.add_option("--checkpoint-every", o.checkpoint_every,
                 "save the training state to OUT/checkpoint.safetensors every N steps (0: never)")
      ->check(example::non_negative_number);
  app.add_option(
      "--resume", o.resume,
      "continue the run saved in this checkpoint (give the same options as the run that wrote it)");
  app.add_option("--threads", o.threads, "threads for the batch (knead::set_num_threads)")
      ->check(CLI::Range(1, 256));
  app.add_option("--precision", o.precision, "float or double (default: float, or the --load file's)")
      ->check(CLI::IsMember({"float", "double"}));
  app.add_flag("--quiet", o.quiet, "no progress line");
  app.add_option("--out", o.out, "output directory (the trained flow is saved as model.safetensors)");
  app.add_option("--load", o.load,
                 "start from a flow saved by knead::save (with --steps 0: evaluate and draw it)");
  CLI11_PARSE(app, argc, argv);
  try {
    return precision_of(o) == "double" ? run<double>(o) : run<float>(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_2d: %s\n", e.what());
    return 1;
  }
}
