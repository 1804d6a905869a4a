#pragma once
/// @file
/// Splitting a data set into training, validation and test sets.

#include <cmath>
#include <cstdint>
#include <string_view>

#include "knead/core/errors.hpp"
#include "knead/data/random.hpp"

namespace knead::data {

/// Three disjoint subsets of the columns of a D×N data set.
template <class T>
struct DatasetSplit {
  Matrix<T> train, validation, test;
};

/// Shuffles the columns of `data` (seeded, the same on every platform) and deals them out:
/// round(validation_fraction·N) to validation, round(test_fraction·N) to test, the rest to train.
///
/// Throws std::invalid_argument if a fraction is not finite or outside [0, 1), if the fractions
/// sum to 1 or more, if a positive fraction rounds to an empty set, or if no sample is left for
/// training. A fraction of exactly 0 gives a D×0 set.
template <class Derived>
DatasetSplit<typename Derived::Scalar> split_dataset(const Eigen::MatrixBase<Derived>& data,
                                                     double validation_fraction, double test_fraction,
                                                     std::uint64_t seed) {
  using T = typename Derived::Scalar;
  constexpr std::string_view function = "split_dataset";
  if (data.cols() < 1) detail::fail(function, "the data set is empty (0 columns)");
  const auto check_fraction = [&](const char* name, double f) {
    if (!std::isfinite(f) || f < 0 || f >= 1) detail::fail(function, name, " must be in [0, 1), got ", f);
  };
  check_fraction("validation_fraction", validation_fraction);
  check_fraction("test_fraction", test_fraction);
  if (validation_fraction + test_fraction >= 1)
    detail::fail(function, "validation_fraction + test_fraction must be below 1, got ", validation_fraction,
                 " + ", test_fraction);

  const Index n = data.cols();
  const auto count = [&](const char* name, double f) {
    const auto k = static_cast<Index>(std::llround(f * double(n)));
    if (f > 0 && k == 0) detail::fail(function, name, " ", f, " of ", n, " samples gives an empty set");
    return k;
  };
  const Index n_validation = count("validation_fraction", validation_fraction);
  const Index n_test = count("test_fraction", test_fraction);
  const Index n_train = n - n_validation - n_test;
  if (n_train < 1)
    detail::fail(function, "no sample left for training: ", n, " samples, ", n_validation,
                 " for validation and ", n_test, " for test");

  Rng rng(seed);
  const std::vector<Index> order = random_permutation(n, rng);
  DatasetSplit<T> split{Matrix<T>(data.rows(), n_train), Matrix<T>(data.rows(), n_validation),
                        Matrix<T>(data.rows(), n_test)};
  for (Index j = 0; j < n; ++j) {
    const Index source = order[std::size_t(j)];
    if (j < n_train)
      split.train.col(j) = data.col(source);
    else if (j < n_train + n_validation)
      split.validation.col(j - n_train) = data.col(source);
    else
      split.test.col(j - n_train - n_validation) = data.col(source);
  }
  return split;
}

}  // namespace knead::data
