// Builds a small flow through the installed or vendored knead and checks a round trip.
#include <cstdio>
#include <knead/knead.hpp>

int main() {
  using namespace knead;
  TransformedDistribution flow(StandardNormal<double>(2), Chain(Affine<double>(2), Shift<double>(2)));
  for (auto& p : flow.parameters()) p = 0.25;
  Rng rng(1);
  const Matrix<double> x = flow.sample(8, rng);
  const Matrix<double> u = inverse(flow.bijector(), x);
  const double error = (forward(flow.bijector(), u) - x).cwiseAbs().maxCoeff();
  std::printf("consumer: log_prob of first sample %.6f, round-trip error %.2e\n", double(flow.log_prob(x)(0)),
              error);
  return error < 1e-12 ? 0 : 1;
}
