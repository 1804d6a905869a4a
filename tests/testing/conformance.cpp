// The checker must catch broken bijectors, or every conformance test would be meaningless.
#include "knead/testing/conformance.hpp"

#include "knead/bijectors/elementwise_affine.hpp"
#include "support.hpp"

using namespace knead;

namespace {

/// An Affine whose reported forward log-det is off by `log_det_bias` and whose parameter
/// gradient is scaled by `gradient_scale`: each flaw must show in the report.
struct FlawedAffine : Affine<double> {
  using Affine<double>::Affine;
  double log_det_bias = 0.0;
  double gradient_scale = 1.0;
  bool break_round_trip = false;
  void forward_and_log_det(MatrixCRef<double> u, Matrix<double>& x, RowVector<double>& ld) {
    Affine<double>::forward_and_log_det(u, x, ld);
    ld.array() += log_det_bias;
    if (break_round_trip) x.array() += 1e-3;
  }
  void backward(MatrixCRef<double> g, RowVectorCRef<double> gld, Matrix<double>& gin) {
    Affine<double>::backward(g, gld, gin);
    for (auto& v : gradients()) v *= gradient_scale;
  }
};

}  // namespace

TEST_CASE("the conformance checker detects each kind of flaw", "[testing]") {
  Rng rng(3);
  const Matrix<double> z = test::random_batch<double>(3, 4, rng);
  FlawedAffine good(3);
  test::randomise_parameters(good, rng, 0.5);
  CHECK(testing::check_conformance(good, z, rng).ok());

  FlawedAffine bad_log_det = good;
  bad_log_det.log_det_bias = 0.01;
  const auto r1 = testing::check_conformance(bad_log_det, z, rng);
  CHECK_FALSE(r1.ok());
  CHECK(r1.log_det_error > 0.005);

  FlawedAffine bad_gradient = good;
  bad_gradient.gradient_scale = 1.01;
  const auto r2 = testing::check_conformance(bad_gradient, z, rng);
  CHECK_FALSE(r2.ok());
  CHECK(r2.parameter_gradient_error > 1e-3);

  FlawedAffine bad_round_trip = good;
  bad_round_trip.break_round_trip = true;
  const auto r3 = testing::check_conformance(bad_round_trip, z, rng);
  CHECK_FALSE(r3.ok());
  CHECK(r3.round_trip_error > 1e-4);
}
