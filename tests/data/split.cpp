#include "knead/data/split.hpp"

#include <algorithm>

#include "support.hpp"

using namespace knead;
using namespace knead::data;

namespace {

/// A 2×n data set whose column j is (j, −j), so every sample is recognisable.
template <class T>
Matrix<T> labelled(Index n) {
  Matrix<T> m(2, n);
  for (Index j = 0; j < n; ++j) m.col(j) << T(j), T(-j);
  return m;
}

template <class T>
std::vector<Index> ids(const Matrix<T>& m) {
  std::vector<Index> out;
  for (Index j = 0; j < m.cols(); ++j) out.push_back(Index(m(0, j)));
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("split_dataset deals out every sample exactly once", "[data]", float, double) {
  const Matrix<TestType> data = labelled<TestType>(100);
  const DatasetSplit<TestType> s = split_dataset(data, 0.1, 0.2, 7);
  CHECK(s.train.rows() == 2);
  CHECK(s.train.cols() == 70);
  CHECK(s.validation.cols() == 10);
  CHECK(s.test.cols() == 20);
  std::vector<Index> all = ids(s.train);
  for (const auto* part : {&s.validation, &s.test})
    for (Index id : ids(*part)) all.push_back(id);
  std::vector<Index> sorted = all;
  std::sort(sorted.begin(), sorted.end());
  for (Index j = 0; j < 100; ++j) CHECK(sorted[std::size_t(j)] == j);
  // Columns move whole, and the order is shuffled.
  CHECK(s.test.row(1) == -s.test.row(0));
  CHECK_FALSE(std::is_sorted(all.begin(), all.end()));
}

TEST_CASE("split_dataset is deterministic per seed and rounds the fractions", "[data]") {
  const Matrix<double> data = labelled<double>(50);
  const DatasetSplit<double> a = split_dataset(data, 0.25, 0.25, 1), b = split_dataset(data, 0.25, 0.25, 1);
  CHECK(a.train == b.train);
  CHECK(a.validation == b.validation);
  CHECK(a.test == b.test);
  CHECK(split_dataset(data, 0.25, 0.25, 2).train != a.train);
  CHECK(a.validation.cols() == 13);  // round(12.5) = 13
  CHECK(a.train.cols() == 24);

  const DatasetSplit<double> train_only = split_dataset(data.leftCols(5), 0.0, 0.0, 3);
  CHECK(train_only.train.cols() == 5);
  CHECK(train_only.validation.cols() == 0);
  CHECK(train_only.validation.rows() == 2);
  CHECK(train_only.test.cols() == 0);
}

TEST_CASE("split_dataset rejects bad fractions", "[data][errors]") {
  using Catch::Contains;
  const Matrix<double> data = labelled<double>(10);
  CHECK_THROWS_AS(split_dataset(data, -0.1, 0.2, 1), std::invalid_argument);
  CHECK_THROWS_WITH(split_dataset(data, -0.1, 0.2, 1),
                    Contains("split_dataset") && Contains("validation_fraction") && Contains("-0.1"));
  CHECK_THROWS_WITH(split_dataset(data, 0.1, 1.0, 1), Contains("test_fraction") && Contains("got 1"));
  CHECK_THROWS_WITH(split_dataset(data, std::nan(""), 0.1, 1),
                    Contains("validation_fraction") && Contains("nan"));
  CHECK_THROWS_WITH(split_dataset(data, 0.5, 0.5, 1), Contains("must be below 1") && Contains("0.5 + 0.5"));
  CHECK_THROWS_WITH(split_dataset(data, 0.01, 0.2, 1),
                    Contains("validation_fraction 0.01 of 10 samples") && Contains("empty"));
  CHECK_THROWS_WITH(split_dataset(data.leftCols(2), 0.45, 0.45, 1),
                    Contains("no sample left for training") && Contains("2 samples"));
  CHECK_THROWS_WITH(split_dataset(Matrix<double>(2, 0), 0.1, 0.1, 1),
                    Contains("split_dataset") && Contains("empty"));
}
