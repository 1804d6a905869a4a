#include "knead/core/bijector.hpp"

#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/bijectors/maf.hpp"
#include "knead/distributions/diagonal_normal.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "support.hpp"

using namespace knead;

// A pass writes the object's workspaces, so it cannot be called through a const reference: the
// type system refuses to let two threads share one object through `const&`. (Concepts, so that an
// invalid call makes the requirement false instead of the program ill-formed.)
template <class B>
concept ForwardThrough = requires(B& b, MatrixCRef<double> in, Matrix<double>& out, RowVector<double>& ld) {
  b.forward_and_log_det(in, out, ld);
};
template <class B>
concept InverseThrough = requires(B& b, MatrixCRef<double> in, Matrix<double>& out, RowVector<double>& ld) {
  b.inverse_and_log_det(in, out, ld);
};
template <class B>
concept FreeForwardThrough = requires(B& b, MatrixCRef<double> in) {
  knead::forward(b, in);
};
template <class D>
concept BaseLogProbThrough = requires(D& d, MatrixCRef<double> in, RowVector<double>& out) {
  d.log_prob(in, out);
};
template <class D>
concept BaseSampleThrough = requires(D& d, Index n, Rng& rng, Matrix<double>& out) {
  d.sample(n, rng, out);
};
template <class F>
concept FlowLogProbThrough = requires(F& f, MatrixCRef<double> x) {
  f.log_prob(x);
};
template <class F>
concept FlowSampleThrough = requires(F& f, Index n, Rng& rng) {
  f.sample(n, rng);
};
template <class F>
concept FlowSampleAndLogProbThrough = requires(F& f, Index n, Rng& rng) {
  f.sample_and_log_prob(n, rng);
};
template <class F>
concept ReadsThroughConst = requires(F& f) {
  { f.dim() } -> std::convertible_to<Index>;
  { f.num_parameters() } -> std::convertible_to<Index>;
};

static_assert(ForwardThrough<Maf<double>> && !ForwardThrough<const Maf<double>>);
static_assert(InverseThrough<Maf<double>> && !InverseThrough<const Maf<double>>);
static_assert(FreeForwardThrough<Maf<double>> && !FreeForwardThrough<const Maf<double>>);
static_assert(Bijector<Maf<double>> && !Bijector<const Maf<double>>);

static_assert(BaseLogProbThrough<DiagonalNormal<double>> &&
              !BaseLogProbThrough<const DiagonalNormal<double>>);
static_assert(BaseSampleThrough<DiagonalNormal<double>> && !BaseSampleThrough<const DiagonalNormal<double>>);
static_assert(Distribution<DiagonalNormal<double>> && !Distribution<const DiagonalNormal<double>>);

using AffineFlowForConstChecks = TransformedDistribution<StandardNormal<double>, Affine<double>>;
static_assert(FlowLogProbThrough<AffineFlowForConstChecks> &&
              !FlowLogProbThrough<const AffineFlowForConstChecks>);
static_assert(FlowSampleThrough<AffineFlowForConstChecks> &&
              !FlowSampleThrough<const AffineFlowForConstChecks>);
static_assert(FlowSampleAndLogProbThrough<AffineFlowForConstChecks> &&
              !FlowSampleAndLogProbThrough<const AffineFlowForConstChecks>);

// what only reads stays const
static_assert(ReadsThroughConst<const AffineFlowForConstChecks> && ReadsThroughConst<const Maf<double>>);

TEST_CASE("The derived calls invert each other and negate the log-det", "[core][bijector]") {
  Rng rng(11);
  Affine<double> affine(3);
  test::randomise_parameters(affine, rng, 0.7);
  const Matrix<double> u = test::random_batch<double>(3, 5, rng);
  const auto [x, forward_ld] = forward_and_log_det(affine, u);
  const auto [back, inverse_ld] = inverse_and_log_det(affine, x);
  CHECK((back - u).cwiseAbs().maxCoeff() < 1e-12);
  CHECK((forward_ld + inverse_ld).cwiseAbs().maxCoeff() < 1e-12);
  CHECK((forward(affine, u) - x).cwiseAbs().maxCoeff() == 0.0);
  CHECK((inverse_log_det(affine, x) - inverse_ld).cwiseAbs().maxCoeff() == 0.0);
}
