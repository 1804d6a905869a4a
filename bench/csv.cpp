// read_csv's throughput on a generated file: 1,000,000 rows × 8 columns of "%.9g" doubles with a
// header (about 110 MB), written once to the temporary directory and removed at exit. The reported
// bytes_per_second is the file's size over the wall time of one read_csv call (reading the file,
// parsing, building the matrix).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "knead/data/csv.hpp"

namespace {

/// The generated file; written by the first benchmark that needs it.
class GeneratedCsv {
 public:
  static const GeneratedCsv& get() {
    static const GeneratedCsv file;
    return file;
  }
  const std::string& path() const { return path_; }
  std::size_t bytes() const { return bytes_; }
  ~GeneratedCsv() { std::filesystem::remove(path_); }

 private:
  static constexpr int rows = 1'000'000, columns = 8;
  GeneratedCsv()
      : path_((std::filesystem::temp_directory_path() /
               ("knead_bench_csv_" + std::to_string(::getpid()) + ".csv"))
                  .string()) {
    std::mt19937_64 rng(42);
    std::normal_distribution<double> normal(0.0, 10.0);
    std::string text = "c1,c2,c3,c4,c5,c6,c7,c8\n";
    char field[32];
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < columns; ++c) {
        const int n = std::snprintf(field, sizeof field, "%.9g", normal(rng));
        text.append(field, std::size_t(n)).push_back(c + 1 == columns ? '\n' : ',');
      }
    std::ofstream(path_, std::ios::binary).write(text.data(), std::streamsize(text.size()));
    bytes_ = text.size();
  }
  std::string path_;
  std::size_t bytes_ = 0;
};

template <class T>
void BM_read_csv(benchmark::State& state) {
  const GeneratedCsv& file = GeneratedCsv::get();
  for (auto _ : state) {
    const knead::Matrix<T> data = knead::data::read_csv<T>(file.path());
    benchmark::DoNotOptimize(data.data());
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(file.bytes()));
  state.counters["file_MB"] = double(file.bytes()) / 1e6;
}

BENCHMARK(BM_read_csv<double>)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_read_csv<float>)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
