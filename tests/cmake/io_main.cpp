// A program that uses knead::io: it builds a flow with knead/core.hpp, saves it and loads it with
// knead/io.hpp, and checks that the loaded flow computes the same log_prob bit for bit.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <knead/core.hpp>
#include <knead/io.hpp>
#include <string>

int main() {
  using namespace knead;
  FlowSpec<double> spec;
  spec.hidden = {8};
  spec.batch_norm = true;
  spec.identity_init = false;
  TransformedDistribution maf(StandardNormal<double>(2), make_flow<double>(spec));
  maf.set_training(false);
  Rng rng(1);
  const Matrix<double> x = maf.sample(8, rng);
  const auto path = std::filesystem::temp_directory_path() /
                    ("knead-io-consumer-" + std::to_string(::getpid()) + ".safetensors");
  save(maf, path);
  LoadedFlow<double> loaded = load<double>(path);
  std::filesystem::remove(path);
  const bool same = loaded.log_prob(x) == maf.log_prob(x);  // bit for bit
  std::printf("io consumer: saved and loaded a %lld-parameter MAF, log_prob %s\n",
              static_cast<long long>(loaded.num_parameters()), same ? "identical" : "DIFFERENT");
  return same ? 0 : 1;
}
