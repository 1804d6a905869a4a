// A program that uses knead::core alone: it includes knead/core.hpp and compiles with Eigen as its
// only dependency (run.sh and the CMake consumers put a stand-in nlohmann/json.hpp that stops the
// build first on its include path). It builds a MAF with the flow builder, checks the round trip
// and that sample_and_log_prob agrees with log_prob, and uses a data helper.
#include <cmath>
#include <cstdio>
#include <knead/core.hpp>

int main() {
  using namespace knead;
  FlowSpec<double> spec;
  spec.kind = FlowKind::maf;
  spec.dim = 2;
  spec.layers = 3;
  spec.hidden = {16};
  spec.identity_init = false;
  TransformedDistribution flow(StandardNormal<double>(2), make_flow<double>(spec));
  const Matrix<double> data = data::two_moons<double>(64, 0.05, /*seed=*/1);
  const Matrix<double> u = inverse(flow.bijector(), data);
  const double round_trip = (forward(flow.bijector(), u) - data).cwiseAbs().maxCoeff();
  Rng rng(3);
  auto [x, log_q] = flow.sample_and_log_prob(32, rng);
  const double agreement = (flow.log_prob(x) - log_q).cwiseAbs().maxCoeff();
  const double mean_log_p = flow.log_prob(data).mean();
  std::printf(
      "core consumer: MAF of %lld parameters, round-trip error %.2e, sample_and_log_prob vs log_prob %.2e, "
      "mean log_p %.4f\n",
      static_cast<long long>(flow.num_parameters()), round_trip, agreement, mean_log_p);
  return round_trip < 1e-10 && agreement < 1e-10 && std::isfinite(mean_log_p) ? 0 : 1;
}
