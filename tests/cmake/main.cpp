// A program that uses knead::knead through knead/knead.hpp alone (which includes the trainer too):
// it builds a small flow, checks a round trip, and saves and loads a flow (knead/io needs
// nlohmann-json, which the package must bring along).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <knead/knead.hpp>
#include <string>

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

  FlowSpec<double> spec;
  spec.hidden = {8};
  spec.batch_norm = true;
  spec.identity_init = false;
  TransformedDistribution maf(StandardNormal<double>(2), make_flow<double>(spec));
  maf.set_training(false);
  const auto path = std::filesystem::temp_directory_path() /
                    ("knead-consumer-" + std::to_string(::getpid()) + ".safetensors");
  save(maf, path);
  LoadedFlow<double> loaded = load<double>(path);
  std::filesystem::remove(path);
  const bool same = loaded.log_prob(x) == maf.log_prob(x);  // bit for bit
  std::printf("consumer: saved and loaded a %lld-parameter MAF, log_prob %s\n",
              static_cast<long long>(loaded.num_parameters()), same ? "identical" : "DIFFERENT");
  return error < 1e-12 && same ? 0 : 1;
}
