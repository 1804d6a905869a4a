// Kernel micro-benchmarks: the mask-aware masked linear layer against the dense product (W⊙M)·X
// with Eigen, on MADE's layers at D = 64, hidden 512, batch 256 (float). GFLOP/s counts the
// useful (unmasked) multiply-adds as 2 FLOPs each, for both, so the numbers compare directly.

#include <benchmark/benchmark.h>

#include "kernel_path_main.hpp"
#include "knead/nn/made.hpp"

namespace {

using T = float;
constexpr knead::Index dim = 64, hidden = 512, batch = 256;

struct Layer {
  knead::Matrix<T> w, mask, x, y;
  knead::Vector<T> b;
  knead::linalg::MaskedLinearPlan plan;
  double useful_flops = 0;
};

Layer make_layer(int which) {
  const knead::Made<T> made(dim, {hidden, hidden}, {}, 1);
  Layer l;
  l.mask = made.mlp().masks()[std::size_t(which)];
  l.w = knead::Matrix<T>::Random(l.mask.rows(), l.mask.cols());
  l.b = knead::Vector<T>::Random(l.mask.rows());
  l.x = knead::Matrix<T>::Random(l.mask.cols(), batch);
  l.y.resize(l.mask.rows(), batch);
  l.plan = knead::linalg::MaskedLinearPlan(l.mask);
  l.useful_flops = 2.0 * double(l.mask.sum()) * batch;
  return l;
}

void report(benchmark::State& state, const Layer& l) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(l.useful_flops * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
  state.counters["density"] = double(l.mask.sum()) / double(l.mask.size());
}

void BM_masked_linear(benchmark::State& state) {
  Layer l = make_layer(int(state.range(0)));
  for (auto _ : state) {
    l.plan.forward(l.w.data(), l.w.rows(), l.b.data(), l.mask.data(), l.x.data(), l.x.rows(), l.y.data(),
                   l.y.rows(), batch, state.range(0) < 2);
    benchmark::DoNotOptimize(l.y.data());
    benchmark::ClobberMemory();
  }
  report(state, l);
}

void BM_dense_masked_product(benchmark::State& state) {
  Layer l = make_layer(int(state.range(0)));
  knead::Matrix<T> wm(l.w.rows(), l.w.cols());
  for (auto _ : state) {
    wm = l.w.cwiseProduct(l.mask);
    l.y.noalias() = wm * l.x;
    l.y.colwise() += l.b;
    if (state.range(0) < 2) l.y = l.y.cwiseMax(T(0));
    benchmark::DoNotOptimize(l.y.data());
    benchmark::ClobberMemory();
  }
  report(state, l);
}

void BM_dense_product_premasked(benchmark::State& state) {  // (W⊙M) formed once: the GEMM alone
  Layer l = make_layer(int(state.range(0)));
  const knead::Matrix<T> wm = l.w.cwiseProduct(l.mask);
  for (auto _ : state) {
    l.y.noalias() = wm * l.x;
    benchmark::DoNotOptimize(l.y.data());
    benchmark::ClobberMemory();
  }
  report(state, l);
}

void BM_masked_backward(benchmark::State& state) {  // ∂L/∂x and ∂L/∂W of one layer
  Layer l = make_layer(int(state.range(0)));
  knead::Matrix<T> gx(l.x.rows(), batch), gw = knead::Matrix<T>::Zero(l.w.rows(), l.w.cols());
  const knead::Matrix<T> g = knead::Matrix<T>::Random(l.w.rows(), batch);
  for (auto _ : state) {
    l.plan.backward_input(l.w.data(), l.w.rows(), l.mask.data(), g.data(), g.rows(), gx.data(), gx.rows(),
                          batch);
    l.plan.backward_weight(l.mask.data(), g.data(), g.rows(), l.x.data(), l.x.rows(), batch, gw.data(),
                           gw.rows());
    benchmark::DoNotOptimize(gx.data());
    benchmark::DoNotOptimize(gw.data());
    benchmark::ClobberMemory();
  }
  report(state, l);
  state.counters["GFLOP/s"] =
      benchmark::Counter(2 * l.useful_flops * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}

void BM_dense_backward(benchmark::State& state) {
  Layer l = make_layer(int(state.range(0)));
  knead::Matrix<T> gx(l.x.rows(), batch), gw = knead::Matrix<T>::Zero(l.w.rows(), l.w.cols()),
                                          wm(l.w.rows(), l.w.cols());
  const knead::Matrix<T> g = knead::Matrix<T>::Random(l.w.rows(), batch);
  for (auto _ : state) {
    wm = l.w.cwiseProduct(l.mask);
    gx.noalias() = wm.transpose() * g;
    gw.noalias() += (g * l.x.transpose()).cwiseProduct(l.mask);
    benchmark::DoNotOptimize(gx.data());
    benchmark::DoNotOptimize(gw.data());
    benchmark::ClobberMemory();
  }
  report(state, l);
  state.counters["GFLOP/s"] =
      benchmark::Counter(2 * l.useful_flops * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}

// layer 0: input → hidden (512×64), 1: hidden → hidden (512×512), 2: hidden → output (128×512)
BENCHMARK(BM_masked_linear)->DenseRange(0, 2)->ArgName("layer");
BENCHMARK(BM_dense_masked_product)->DenseRange(0, 2)->ArgName("layer");
BENCHMARK(BM_dense_product_premasked)->DenseRange(0, 2)->ArgName("layer");
BENCHMARK(BM_masked_backward)->DenseRange(0, 2)->ArgName("layer");
BENCHMARK(BM_dense_backward)->DenseRange(0, 2)->ArgName("layer");

}  // namespace
