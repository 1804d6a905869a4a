// knead: fit, score, sample and inspect normalizing flows on tables, from the shell.
//
//   knead fit DATA -o MODEL.safetensors     fit a flow (densities in the data's units)
//   knead log-prob MODEL DATA [-o OUT]      one log density per row; mean NLL on stderr
//   knead sample MODEL -n N [-o OUT]        N rows drawn from the model, in data units
//   knead plot MODEL DATA -o corner.png     the data beside the model's samples, column pairs
//   knead inspect MODEL                     architecture, preprocessing, training record
//
// Exit status: 0 success, 1 a data or model error (one line on stderr naming the file and what is
// wrong), 2 a usage error, 130 a fit stopped by Ctrl-C (the best model so far is saved).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <iostream>
#include <limits>
#include <string>

#include "fit.hpp"
#include "use_model.hpp"

namespace {

/// A check that states its bound in words (CLI11's PositiveNumber prints the largest double).
CLI::Validator at_least(double lowest, bool strictly) {
  return CLI::Validator(
      [=](std::string& input) -> std::string {
        double value = 0;
        try {
          std::size_t used = 0;
          value = std::stod(input, &used);
          if (used != input.size()) return "Value " + input + " is not a number";
        } catch (const std::exception&) {
          return "Value " + input + " is not a number";
        }
        if (!std::isfinite(value) || (strictly ? value <= lowest : value < lowest))
          return "Value " + input + " must be a finite number " + (strictly ? "greater than " : "at least ") +
                 CLI::detail::to_string(lowest);
        return {};
      },
      strictly ? "> " + CLI::detail::to_string(lowest) : ">= " + CLI::detail::to_string(lowest));
}

/// --delimiter, --header and --no-header, for the commands that read tables.
void add_read_options(CLI::App* command, knead_cli::ReadOptions& read) {
  command
      ->add_option_function<std::string>(
          "--delimiter",
          [&read](const std::string& d) {
            read.delimiter = d == "tab" ? '\t' : d == "space" ? ' ' : d.front();
          },
          "CSV field separator: , ; tab or space (default: detected)")
      ->check(CLI::IsMember({",", ";", "tab", "space"}));
  command->add_flag_callback(
      "--header", [&read] { read.header = knead::data::CsvHeader::present; },
      "the first CSV line names the columns");
  command->add_flag_callback(
      "--no-header", [&read] { read.header = knead::data::CsvHeader::absent; }, "the first CSV line is data");
}

std::string command_line(int argc, char** argv) {
  std::string line;
  for (int i = 0; i < argc; ++i) line += (i ? " " : "") + std::string(argv[i]);
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace knead_cli;
  CLI::App app{"knead: normalizing flows on tables (CSV with a header line or without)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", knead_version);
  // A usage error is one line, naming the command: "knead fit: --output is required (knead fit
  // --help lists the options)".
  app.failure_message([](const CLI::App* parsed, const CLI::Error& e) {
    std::string command = "knead";
    for (const CLI::App* sub : parsed->get_subcommands()) command += " " + sub->get_name();
    return command + ": " + e.what() + " (" + command + " --help lists the options)\n";
  });

  FitOptions fit_options;
  fit_options.command_line = command_line(argc, argv);
  CLI::App* fit_command = app.add_subcommand("fit", "fit a flow to a table and write a model file");
  {
    FitOptions& o = fit_options;
    CLI::App* c = fit_command;
    c->add_option("DATA", o.data,
                  "the table: CSV (header and delimiter detected) or .npy; one sample per row")
        ->required();
    c->add_option("-o,--output", o.output, "the model file to write (safetensors)")->required();
    c->add_option("--flow", o.flow, "flow kind")
        ->check(CLI::IsMember(knead::flow_kind_names()))
        ->capture_default_str();
    c->add_option("--layers", o.layers, "flow layers")->check(at_least(1, false))->capture_default_str();
    c->add_option("--hidden", o.hidden, "hidden sizes of each layer's network, e.g. 128,128")
        ->delimiter(',')
        ->check(at_least(1, false))
        ->capture_default_str();
    c->add_flag("--actnorm", o.act_norm,
                "an ActNorm after each layer (maf, iaf, realnvp, nice), set from the first batch to give "
                "zero mean and unit variance");
    c->add_option("--mixing", o.mixing,
                  "between layers (maf, iaf, realnvp, nice): permute (reverse the dimensions) or lu (a "
                  "learnable LuLinear starting as that reversal)")
        ->check(CLI::IsMember({"permute", "lu"}))
        ->capture_default_str();
    c->add_option("--batch", o.batch, "rows per step")->check(at_least(1, false))->capture_default_str();
    c->add_option("--lr", o.lr, "peak learning rate (Adam)")->check(at_least(0, true))->capture_default_str();
    c->add_option("--schedule", o.schedule, "learning-rate schedule: cosine (to 2 % of --lr) or constant")
        ->check(CLI::IsMember({"cosine", "constant"}))
        ->capture_default_str();
    c->add_option("--weight-decay", o.weight_decay, "decoupled weight decay (AdamW)")
        ->check(at_least(0, false))
        ->capture_default_str();
    c->add_option("--epochs", o.epochs,
                  "passes over the training rows (0: no training; with whiten, the model is the "
                  "full-covariance Gaussian of the training rows)")
        ->check(at_least(0, false))
        ->capture_default_str();
    c->add_option("--patience", o.patience,
                  "stop after this many epochs without a better validation NLL (0: never)")
        ->check(at_least(0, false))
        ->capture_default_str();
    c->add_option(
         "--log-scale-bound", o.log_scale_bound,
         "bound c of each layer's log-scales (soft clamp c tanh(a / c)): a layer scales by at most e^c")
        ->check(at_least(0, true))
        ->capture_default_str();
    c->add_option("--max-grad-norm", o.max_gradient_norm,
                  "clip the global gradient norm to this (0: no clipping)")
        ->check(at_least(0, false))
        ->capture_default_str();
    c->add_option("--val-fraction", o.validation_fraction, "rows of DATA held out for validation")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    c->add_option("--val", o.validation_file, "a validation table (instead of --val-fraction)");
    c->add_option("--test", o.test_file, "a test table, scored after training");
    c->add_option("--columns", o.columns, "columns to model: names or 1-based positions, e.g. x,y or 1,3");
    c->add_option(
         "--logit", o.logit,
         "COLUMN=LOW:HIGH: the column (a name or 1-based position, as in --columns) lies in the open "
         "interval (LOW, HIGH); it is modelled in logit units log(x - LOW) - log(HIGH - x), "
         "standardised there, and mapped back by a sigmoid in the model, so samples always lie "
         "inside and rows on or outside a bound are refused. Repeatable: --logit share=0:1 "
         "--logit angle=-180:180")
        ->allow_extra_args(false)
        ->check(CLI::Validator(
            [](std::string& input) -> std::string {
              try {
                (void)parse_logit(input);
                return {};
              } catch (const std::invalid_argument& e) {
                return e.what();
              }
            },
            "COLUMN=LOW:HIGH"));
    c->add_option("--dequantize", o.dequantize,
                  "integer columns to fit as x + u, u ~ Uniform[0, 1) (fresh every epoch): names or 1-based "
                  "positions among the modelled columns, or auto (every column holding only integers)");
    c->add_option("--preprocess", o.preprocessing,
                  "whiten (z = inverse(L) (x - mean), L L^T the covariance; the default), standardize "
                  "(z = (x - mean) / sd per column; the default with --dequantize) or none")
        ->check(CLI::IsMember({"whiten", "standardize", "none"}));
    c->add_option("--precision", o.precision, "float or double")
        ->check(CLI::IsMember({"float", "double"}))
        ->capture_default_str();
    c->add_option("--seed", o.seed, "seed of the split, the initial weights and the batches")
        ->capture_default_str();
    c->add_option("--threads", o.threads, "threads")->check(CLI::Range(1, 256))->capture_default_str();
    c->add_option("--checkpoint-every", o.checkpoint_every,
                  "write the training state to OUTPUT.checkpoint every N epochs (0: never)")
        ->check(at_least(0, false))
        ->capture_default_str();
    c->add_option("--resume", o.resume,
                  "continue the run saved in this checkpoint (the same command and data; ends as an "
                  "uninterrupted run would)");
    c->add_option("--summary", o.summary, "write the record and the validation/test scores as JSON");
    c->add_option("--loss-plot", o.loss_plot, "draw the training and validation NLL against the step (PNG)");
    c->add_flag("-q,--quiet", o.quiet, "no progress lines");
    add_read_options(c, o.read);
  }

  LogProbOptions log_prob_options;
  CLI::App* log_prob_command =
      app.add_subcommand("log-prob", "log density of each row of a table, in the data's units");
  {
    LogProbOptions& o = log_prob_options;
    CLI::App* c = log_prob_command;
    c->add_option("MODEL", o.model, "a model file written by knead fit")->required();
    c->add_option("DATA", o.data, "the table to score")->required();
    c->add_option("-o,--output", o.output,
                  "where to write the log densities (.npy by its extension, else CSV; - for standard output)")
        ->capture_default_str();
    c->add_option("--summary", o.summary,
                  "write the mean NLL, its standard error and the worst rows as JSON");
    c->add_option("--threads", o.threads, "threads")->check(CLI::Range(1, 256))->capture_default_str();
    c->add_flag("--skip-invalid", o.skip_invalid,
                "skip the rows that cannot be scored (listed on stderr and in --summary); the output "
                "then has a column 'line' with each scored row's line in DATA");
    c->add_option("--dequantize-samples", o.dequantize_samples,
                  "a dequantised model: noise draws per row of the bound log (1/K) sum_k p(x + u_k)")
        ->check(at_least(1, false))
        ->capture_default_str();
    c->add_option("--seed", o.seed, "a dequantised model: seed of the noise")->capture_default_str();
    add_read_options(c, o.read);
  }

  SampleOptions sample_options;
  CLI::App* sample_command = app.add_subcommand("sample", "draw rows from a model, in the data's units");
  {
    SampleOptions& o = sample_options;
    CLI::App* c = sample_command;
    c->add_option("MODEL", o.model, "a model file written by knead fit")->required();
    c->add_option("-n,--count", o.count, "rows to draw")->check(at_least(1, false))->capture_default_str();
    c->add_option("--seed", o.seed, "seed of the draw")->capture_default_str();
    c->add_option("-o,--output", o.output,
                  "where to write the rows (.npy by its extension, else CSV; - for standard output)")
        ->capture_default_str();
    c->add_option("--threads", o.threads, "threads")->check(CLI::Range(1, 256))->capture_default_str();
  }

  PlotOptions plot_options;
  CLI::App* plot_command =
      app.add_subcommand("plot", "a corner plot of a table beside the model's samples (PNG)");
  {
    PlotOptions& o = plot_options;
    CLI::App* c = plot_command;
    c->add_option("MODEL", o.model, "a model file written by knead fit")->required();
    c->add_option("DATA", o.data, "the table to show")->required();
    c->add_option("-o,--output", o.output, "the PNG file to write")->required();
    c->add_option("--columns", o.columns,
                  "columns to show: names or 1-based positions (default: the first six)");
    c->add_option("-n,--count", o.count, "rows of the data shown and samples drawn")
        ->check(at_least(1, false))
        ->capture_default_str();
    c->add_option("--seed", o.seed, "seed of the samples")->capture_default_str();
    add_read_options(c, o.read);
  }

  std::string inspect_model;
  CLI::App* inspect_command = app.add_subcommand("inspect", "describe a model file");
  inspect_command->add_option("MODEL", inspect_model, "a model file written by knead fit")->required();

  if (argc > 1 && argv[1][0] != '-' && std::ranges::none_of(app.get_subcommands({}), [&](const CLI::App* c) {
        return c->check_name(argv[1]);
      })) {
    std::cerr << "knead: unknown command '" << argv[1]
              << "' (the commands: fit, log-prob, sample, plot, inspect; knead --help)\n";
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  CLI::App* chosen = app.get_subcommands().front();
  try {
    if (chosen == fit_command)
      return fit_options.precision == "float" ? fit<float>(fit_options) : fit<double>(fit_options);
    if (chosen == log_prob_command) {
      const ModelFile m(log_prob_options.model);
      return m.is_float() ? log_prob<float>(log_prob_options, m) : log_prob<double>(log_prob_options, m);
    }
    if (chosen == sample_command) {
      const ModelFile m(sample_options.model);
      return m.is_float() ? sample<float>(sample_options, m) : sample<double>(sample_options, m);
    }
    if (chosen == plot_command) {
      const ModelFile m(plot_options.model);
      return m.is_float() ? plot_model<float>(plot_options, m) : plot_model<double>(plot_options, m);
    }
    const ModelFile m(inspect_model);
    return m.is_float() ? inspect<float>(m) : inspect<double>(m);
  } catch (const UsageError& e) {
    std::cerr << "knead " << chosen->get_name() << ": " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "knead " << chosen->get_name() << ": " << e.what() << '\n';
    return 1;
  }
}
