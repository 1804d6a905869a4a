// Flow benchmarks: density (log_prob), train step (log_prob + gradient + Adam), sampling and
// sampling with log-densities, for MAF, IAF and RealNVP flows of 5 layers (MADE / coupling nets
// with two hidden layers, the order reversed between layers), float, at 1 and 2 threads.
// Counters: items_per_second = samples per second. The evaluations (density, sampling) run under
// knead::NoGrad, as PyTorch evaluates under torch.no_grad() in compare_torch.py.
//
// Arguments: config (0..3, see configs below), threads.

#include <benchmark/benchmark.h>

#include <array>

#include "kernel_path_main.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/core/threads.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "knead/flows/builder.hpp"
#include "knead/optim/adam.hpp"

namespace {

using T = float;
using Flow = knead::TransformedDistribution<knead::StandardNormal<T>, knead::DynamicChain<T>>;

struct Config {
  knead::Index dim, hidden, train_batch, eval_batch;
};
// 0: D=2 h64   1: D=2 h512   2: D=64 h512   3: D=8 h64   4: D=8 h128, batch 256 (the knead tool's
// default flow and batch: bench/tool_speed.py compares `knead fit` with it; not in compare_torch.py)
constexpr std::array<Config, 5> configs{
    {{2, 64, 512, 4096}, {2, 512, 512, 4096}, {64, 512, 256, 1024}, {8, 64, 512, 4096}, {8, 128, 256, 4096}}};

Flow make(knead::FlowKind kind, const Config& c) {
  knead::FlowSpec<T> spec;
  spec.kind = kind;
  spec.dim = c.dim;
  spec.layers = 5;
  spec.hidden = {c.hidden, c.hidden};
  spec.identity_init = false;
  spec.seed = 1;
  return Flow(knead::StandardNormal<T>(c.dim), knead::make_flow(spec));
}

const Config& setup(benchmark::State& state) {
  knead::set_num_threads(int(state.range(1)));
  return configs[std::size_t(state.range(0))];
}

knead::Matrix<T> data(const Config& c, knead::Index n) {
  knead::Rng rng(7);
  knead::Matrix<T> x;
  knead::standard_normal(rng, x, c.dim, n);
  return x;
}

/// Times `call`, one call = `batch` samples, after one untimed call. Google Benchmark calls the
/// benchmark function anew (a new flow) for every run it times, and a flow's first call sizes its
/// workspaces (allocations, page faults: several times a steady call at D=2 h64); the steady state
/// is what these benchmarks measure.
template <class Call>
void run(benchmark::State& state, knead::Index batch, Call&& call) {
  call();
  for (auto _ : state) {
    call();
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

template <knead::FlowKind Kind>
void BM_density(benchmark::State& state) {
  const Config& c = setup(state);
  Flow flow = make(Kind, c);
  const knead::Matrix<T> x = data(c, c.eval_batch);
  knead::RowVector<T> lp;
  run(state, c.eval_batch, [&] {
    const knead::NoGrad no_grad;  // as PyTorch's torch.no_grad() in compare_torch.py
    flow.log_prob(x, lp);
    benchmark::DoNotOptimize(lp.data());
  });
}

template <knead::FlowKind Kind>
void BM_train_step(benchmark::State& state) {
  const Config& c = setup(state);
  Flow flow = make(Kind, c);
  knead::Adam<T> adam(flow, {1e-4});
  const knead::Matrix<T> x = data(c, c.train_batch);
  run(state, c.train_batch, [&] {
    flow.zero_gradients();
    T loss = flow.mean_nll_and_backward(x);
    adam.step(flow);
    benchmark::DoNotOptimize(loss);
  });
}

template <knead::FlowKind Kind>
void BM_sample(benchmark::State& state) {
  const Config& c = setup(state);
  Flow flow = make(Kind, c);
  knead::Rng rng(3);
  knead::Matrix<T> x;
  run(state, c.eval_batch, [&] {
    const knead::NoGrad no_grad;  // as PyTorch's torch.no_grad() in compare_torch.py
    flow.sample(c.eval_batch, rng, x);
    benchmark::DoNotOptimize(x.data());
  });
}

template <knead::FlowKind Kind>
void BM_sample_and_log_prob(benchmark::State& state) {
  const Config& c = setup(state);
  Flow flow = make(Kind, c);
  knead::Rng rng(3);
  knead::Matrix<T> x;
  knead::RowVector<T> lp;
  run(state, c.eval_batch, [&] {
    const knead::NoGrad no_grad;  // as PyTorch's torch.no_grad() in compare_torch.py
    flow.sample_and_log_prob(c.eval_batch, rng, x, lp);
    benchmark::DoNotOptimize(x.data());
    benchmark::DoNotOptimize(lp.data());
  });
}

void args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"config", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime();
  for (const int threads : {1, 2})
    for (const int config : {0, 1, 2, 3}) b->Args({config, threads});
}

using knead::FlowKind;
BENCHMARK_TEMPLATE(BM_density, FlowKind::maf)->Apply(args);
BENCHMARK_TEMPLATE(BM_density, FlowKind::iaf)->Apply(args);
BENCHMARK_TEMPLATE(BM_density, FlowKind::realnvp)->Apply(args);
BENCHMARK_TEMPLATE(BM_train_step, FlowKind::maf)->Apply(args);
// the knead tool's default flow, one thread (bench/tool_speed.py)
BENCHMARK_TEMPLATE(BM_train_step, FlowKind::maf)
    ->ArgNames({"config", "threads"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Args({4, 1});
BENCHMARK_TEMPLATE(BM_train_step, FlowKind::iaf)->Apply(args);
BENCHMARK_TEMPLATE(BM_train_step, FlowKind::realnvp)->Apply(args);
BENCHMARK_TEMPLATE(BM_sample, FlowKind::maf)->Apply(args);
BENCHMARK_TEMPLATE(BM_sample, FlowKind::iaf)->Apply(args);
BENCHMARK_TEMPLATE(BM_sample, FlowKind::realnvp)->Apply(args);
BENCHMARK_TEMPLATE(BM_sample_and_log_prob, FlowKind::maf)->Apply(args);
BENCHMARK_TEMPLATE(BM_sample_and_log_prob, FlowKind::iaf)->Apply(args);
BENCHMARK_TEMPLATE(BM_sample_and_log_prob, FlowKind::realnvp)->Apply(args);

}  // namespace
