// The README's minimal example, compiled and run by CI so that it stays true.
#include <cstdio>
#include <knead/knead.hpp>

// Static chains cost nothing at run time and keep every type visible.
void static_chain() {
  using namespace knead;
  Chain chain{Maf<float>(8, {.hidden = {128, 128}}), Permute<float>::reverse(8), make_iaf<float>(8)};
  Rng rng(7);
  Matrix<float> u;
  standard_normal(rng, u, 8, 256);                    // 8 × 256 noise
  auto [x, log_det] = forward_and_log_det(chain, u);  // x and log|det ∂x/∂u|, one per column
  const Matrix<float> grad_x = Matrix<float>::Ones(8, 256);
  const RowVector<float> grad_log_det = RowVector<float>::Ones(256);
  Matrix<float> grad_u;
  chain.backward(grad_x, grad_log_det, grad_u);  // adds ∂L/∂θ into chain.gradients(), writes ∂L/∂u
  std::printf("static chain: %ld parameters, mean log-det %.3f\n", long(chain.num_parameters()),
              log_det.mean());
}

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
  static_chain();
}
