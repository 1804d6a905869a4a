#pragma once
// Google Benchmark's main for knead's benchmarks that run its kernels: it adds the kernel path
// that runs (knead/linalg/kernel_path.hpp) to the context every report starts with
// ("knead_kernel"), and fails with the message when KNEAD_KERNEL names a path this CPU cannot run.
// Included by one source per program.

#include <benchmark/benchmark.h>

#include <cstdio>
#include <stdexcept>
#include <string>

#include "knead/linalg/kernel_path.hpp"

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  try {
    benchmark::AddCustomContext("knead_kernel",
                                std::string(knead::linalg::to_string(knead::linalg::kernel_path())));
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
