// The README's minimal example, compiled and run by CI so that it stays true.
#include <cstdio>
#include <knead/knead.hpp>

int main() {
  using namespace knead;
  // A flow on R²: four MAF layers with reversals between them, on a standard normal base.
  FlowSpec<double> spec{.kind = FlowKind::maf, .dim = 2, .layers = 4, .hidden = {64, 64}};
  TransformedDistribution flow(StandardNormal<double>(2), make_flow(spec));

  const Matrix<double> data = data::two_moons<double>(10000, 0.05, /*seed=*/1);  // 2 × N
  Trainer trainer(flow, TrainerOptions{.batch_size = 512, .max_steps = 300, .progress = nullptr});
  trainer.fit(data);

  Rng rng(42);                                            // every draw takes an explicit engine
  const Matrix<double> x = flow.sample(1000, rng);        // 2 × 1000, one sample per column
  const RowVector<double> log_p = flow.log_prob(x);       // one value per column
  auto [y, log_q] = flow.sample_and_log_prob(1000, rng);  // no inverse pass needed
  std::printf("mean log density of 1000 samples: %.3f; sample_and_log_prob agrees with log_prob to %.1e\n",
              log_p.mean(), (flow.log_prob(y) - log_q).cwiseAbs().maxCoeff());
}
