#include "knead/train/minibatch.hpp"

#include <algorithm>
#include <limits>
#include <numeric>
#include <set>
#include <span>
#include <vector>

#include "support.hpp"

using namespace knead;

namespace {

/// A 2×n matrix whose column j is (j, −j), so a gathered column tells its index.
Matrix<double> indexed(Index n) {
  Matrix<double> m(2, n);
  for (Index j = 0; j < n; ++j) m.col(j) << double(j), -double(j);
  return m;
}

}  // namespace

TEST_CASE("Each epoch of minibatches is a fresh permutation of the columns", "[train][minibatch]") {
  const Index n = 10, b = 3;
  const Matrix<double> data = indexed(n);
  MinibatchSampler sampler(n, b, 42);
  CHECK(sampler.batch_size() == 3);
  std::vector<std::vector<Index>> epochs;
  Matrix<double> batch;
  for (int e = 0; e < 4; ++e) {
    std::vector<Index> seen;
    for (Index k = 0; k < n / b; ++k) {
      sampler.next<double>(data, batch);
      REQUIRE(batch.rows() == 2);
      REQUIRE(batch.cols() == b);
      for (Index c = 0; c < b; ++c) {
        CHECK(batch(1, c) == -batch(0, c));  // whole columns are copied
        seen.push_back(Index(batch(0, c)));
      }
    }
    CHECK(sampler.epoch() == e + 1);
    CHECK(std::set<Index>(seen.begin(), seen.end()).size() == seen.size());  // no repeats within an epoch
    epochs.push_back(seen);
  }
  CHECK(epochs[0] != epochs[1]);  // reshuffled (equal with probability 1/604800)
}

TEST_CASE("The same seed gives the same batches, another seed others", "[train][minibatch]") {
  MinibatchSampler a(50, 8, 7), b(50, 8, 7), c(50, 8, 8);
  std::vector<Index> from_a, from_b, from_c;
  for (int k = 0; k < 20; ++k) {
    for (const Index i : a.next_indices()) from_a.push_back(i);
    for (const Index i : b.next_indices()) from_b.push_back(i);
    for (const Index i : c.next_indices()) from_c.push_back(i);
  }
  CHECK(from_a == from_b);
  CHECK(from_a != from_c);
}

TEST_CASE("A batch size above the number of samples takes every sample", "[train][minibatch]") {
  const Matrix<double> data = indexed(5);
  MinibatchSampler sampler(5, 64, 1);
  CHECK(sampler.batch_size() == 5);
  Matrix<double> batch;
  sampler.next<double>(data, batch);
  std::vector<double> firsts(batch.row(0).begin(), batch.row(0).end());
  std::ranges::sort(firsts);
  CHECK(firsts == std::vector<double>{0, 1, 2, 3, 4});
}

TEST_CASE("The shuffle is uniform", "[train][minibatch]") {
  // over many shuffles of 5 items, each item lands first about 1/5 of the time
  Rng rng(3);
  std::vector<int> first(5, 0);
  const int trials = 20000;
  for (int t = 0; t < trials; ++t) {
    std::vector<Index> order{0, 1, 2, 3, 4};
    detail::shuffle(order, rng);
    ++first[std::size_t(order[0])];
  }
  for (const int count : first) CHECK(double(count) / trials == Approx(0.2).margin(0.015));  // > 5 σ
}

TEST_CASE("split_validation holds out a random fraction of the columns", "[train][minibatch]") {
  const Matrix<double> data = indexed(20);
  Rng rng(5), same(5);
  const DataSplit<double> split = split_validation<double>(data, 0.25, rng);
  CHECK(split.validation.cols() == 5);
  CHECK(split.train.cols() == 15);
  std::set<double> all;
  for (Index j = 0; j < 15; ++j) all.insert(split.train(0, j));
  for (Index j = 0; j < 5; ++j) all.insert(split.validation(0, j));
  CHECK(all.size() == 20);  // a partition of the columns
  for (Index j = 1; j < 15; ++j) CHECK(split.train(0, j - 1) < split.train(0, j));  // original order kept
  CHECK(split_validation<double>(data, 0.25, same).validation == split.validation);
  // a tiny fraction still holds out one sample
  Rng r2(1);
  CHECK(split_validation<double>(data, 0.001, r2).validation.cols() == 1);
}

TEST_CASE("Training data is checked for shape and finiteness", "[train][minibatch][errors]") {
  Matrix<double> data = indexed(6);
  CHECK_NOTHROW(detail::check_data<double>("F", "training data", data, 2));
  CHECK_THROWS_WITH(detail::check_data<double>("F", "training data", data, 3),
                    Catch::Contains("F: training data has 2 rows") && Catch::Contains("expected 3 rows"));
  CHECK_THROWS_WITH(detail::check_data<double>("F", "training data", Matrix<double>(2, 0), 2),
                    Catch::Contains("F: training data is empty"));
  data(1, 4) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(detail::check_data<double>("F", "training data", data, 2),
                    Catch::Contains("F: training data has a non-finite value nan in column 4"));
}

TEST_CASE("The sampler and the split reject bad arguments", "[train][minibatch][errors]") {
  CHECK_THROWS_WITH(MinibatchSampler(0, 4, 1),
                    Catch::Contains("MinibatchSampler") && Catch::Contains("got 0"));
  CHECK_THROWS_WITH(MinibatchSampler(10, -1, 1), Catch::Contains("MinibatchSampler") &&
                                                     Catch::Contains("batch_size") && Catch::Contains("-1"));
  MinibatchSampler sampler(10, 4, 1);
  Matrix<double> batch;
  CHECK_THROWS_WITH(sampler.next<double>(indexed(9), batch), Catch::Contains("MinibatchSampler::next") &&
                                                                 Catch::Contains("10") &&
                                                                 Catch::Contains("got 9"));
  Rng rng(1);
  CHECK_THROWS_WITH(split_validation<double>(indexed(4), 1.0, rng),
                    Catch::Contains("split_validation") && Catch::Contains("1"));
  CHECK_THROWS_WITH(split_validation<double>(indexed(4), 0.0, rng),
                    Catch::Contains("split_validation") && Catch::Contains("0"));
  CHECK_THROWS_WITH(split_validation<double>(indexed(1), 0.5, rng),
                    Catch::Contains("split_validation") && Catch::Contains("none for training"));
}

TEST_CASE("A restored sampler state continues the exact sequence of batches",
          "[train][minibatch][checkpoint]") {
  // 23 samples in batches of 5: 4 batches per epoch; stop mid-epoch, at an epoch's end, and at the start
  for (const int taken : {0, 3, 4, 9}) {
    CAPTURE(taken);
    MinibatchSampler original(23, 5, 31);
    for (int k = 0; k < taken; ++k) (void)original.next_indices();
    const MinibatchSamplerState state = original.state();
    CHECK(state.batch_size == 5);
    CHECK(state.epoch == original.epoch());
    MinibatchSampler restored(23, 5, 999);  // another seed: everything must come from the state
    restored.set_state(state);
    CHECK(restored.epoch() == original.epoch());
    for (int k = 0; k < 15; ++k) {
      const std::span<const Index> a = original.next_indices();
      const std::span<const Index> b = restored.next_indices();
      CHECK(std::vector<Index>(a.begin(), a.end()) == std::vector<Index>(b.begin(), b.end()));
    }
    CHECK(restored.epoch() == original.epoch());
  }
}

TEST_CASE("A sampler state from another sampler or a corrupt one is rejected", "[train][minibatch][errors]") {
  MinibatchSampler source(10, 4, 1);
  (void)source.next_indices();
  const MinibatchSamplerState good = source.state();
  MinibatchSampler target(10, 4, 2);
  const std::vector<Index> first_of_target = [] {
    MinibatchSampler copy(10, 4, 2);
    const auto b = copy.next_indices();
    return std::vector<Index>(b.begin(), b.end());
  }();
  const auto rejects = [&](MinibatchSampler& s, MinibatchSamplerState state, const std::string& text) {
    CHECK_THROWS_WITH(s.set_state(state),
                      Catch::Contains("MinibatchSampler::set_state") && Catch::Contains(text));
  };
  MinibatchSampler other_size(12, 4, 1), other_batch(10, 3, 1);
  rejects(other_size, good, "the state is for 10 samples, this sampler has 12");
  rejects(other_batch, good, "batches of 4 samples, this sampler draws 3");
  MinibatchSamplerState s = good;
  s.next = 11;
  rejects(target, s, "position 11 is outside [0, 10]");
  s = good;
  s.epoch = -1;
  rejects(target, s, "epoch must be non-negative, got -1");
  s = good;
  s.order[3] = s.order[4];
  rejects(target, s, "not a permutation of 0..9: entry 4");
  s = good;
  s.order[0] = 10;
  rejects(target, s, "entry 0 is 10");
  s = good;
  s.engine = "1 2 3";
  rejects(target, s, "not the text form of a std::mt19937_64");
  s = good;
  s.engine += " 17";
  rejects(target, s, "not the text form");
  // nothing was changed by the failed calls
  const auto b = target.next_indices();
  CHECK(std::vector<Index>(b.begin(), b.end()) == first_of_target);
}

TEST_CASE("LastBatch::keep takes every column once per epoch with a shorter last batch",
          "[train][minibatch]") {
  const Index n = 10, b = 4;
  MinibatchSampler keep(n, b, 42, LastBatch::keep);
  MinibatchSampler drop(n, b, 42);
  CHECK(keep.batches_per_epoch() == 3);
  CHECK(drop.batches_per_epoch() == 2);
  std::vector<std::vector<Index>> epochs;
  for (Index e = 1; e <= 3; ++e) {
    std::vector<Index> order, dropped;
    for (const Index size : {4, 4, 2}) {
      const std::span<const Index> batch = keep.next_indices();
      CHECK(Index(batch.size()) == size);
      order.insert(order.end(), batch.begin(), batch.end());
      CHECK(keep.epoch() == e);
    }
    for (int k = 0; k < 2; ++k) {
      const std::span<const Index> batch = drop.next_indices();
      dropped.insert(dropped.end(), batch.begin(), batch.end());
    }
    // the same permutations as LastBatch::drop draws from the seed, all of it used
    CHECK(std::vector<Index>(order.begin(), order.begin() + 8) == dropped);
    std::vector<Index> sorted = order;
    std::ranges::sort(sorted);
    std::vector<Index> all(static_cast<std::size_t>(n));
    std::iota(all.begin(), all.end(), Index(0));
    CHECK(sorted == all);
    epochs.push_back(order);
  }
  CHECK(epochs[0] != epochs[1]);  // a new shuffle each epoch
  CHECK(epochs[1] != epochs[2]);
}

TEST_CASE("A restored LastBatch::keep state continues mid-epoch", "[train][minibatch]") {
  MinibatchSampler a(10, 4, 7, LastBatch::keep);
  for (int k = 0; k < 5; ++k) (void)a.next_indices();  // inside the second epoch
  MinibatchSampler b(10, 4, 99, LastBatch::keep);
  b.set_state(a.state());
  for (int k = 0; k < 7; ++k) {
    const std::span<const Index> x = a.next_indices(), y = b.next_indices();
    CHECK(std::vector<Index>(x.begin(), x.end()) == std::vector<Index>(y.begin(), y.end()));
  }
  CHECK(a.epoch() == b.epoch());
}
