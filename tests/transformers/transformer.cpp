#include "knead/transformers/transformer.hpp"

#include <string_view>

#include "knead/transformers/additive.hpp"
#include "knead/transformers/affine.hpp"
#include "support.hpp"

using namespace knead;

namespace {

/// A transformer missing its backward: the concept rejects it (check_transformer would name it).
struct NoBackward {
  using Scalar = double;
  static constexpr std::string_view label = "NoBackward";
  struct Workspace {};
  [[nodiscard]] static Index params_per_dim() { return 1; }
  void validate(std::string_view) const {}
  template <class U, class X, class L>
  void forward(ParamBlocks<const double>, const U&, X&&, L&&, Workspace&) const {}
  template <class X, class U, class L>
  void inverse(ParamBlocks<const double>, const X&, U&&, L&&, Workspace&) const {}
};

inline constexpr std::string_view first = "Affine", second = "Coupling";

}  // namespace

TEST_CASE("The transformer concept accepts knead's transformers and names what is missing",
          "[transformers]") {
  STATIC_REQUIRE(ElementwiseTransformer<AffineTransformer<float>>);
  STATIC_REQUIRE(ElementwiseTransformer<AdditiveTransformer<double>>);
  STATIC_REQUIRE(TransformerHasForward<NoBackward>);
  STATIC_REQUIRE_FALSE(TransformerHasBackward<NoBackward>);
  STATIC_REQUIRE_FALSE(ElementwiseTransformer<NoBackward>);
  STATIC_REQUIRE_FALSE(ElementwiseTransformer<int>);
}

TEST_CASE("ParamBlocks addresses parameter p of element (i, j)", "[transformers]") {
  // a stacking of P = 3 parameters of r = 2 dimensions, n = 2 samples: row p·r + i
  Matrix<double> stacked(6, 2);
  for (Index j = 0; j < 2; ++j)
    for (Index row = 0; row < 6; ++row) stacked(row, j) = double(100 * j + row);
  const auto all = ParamBlocks<const double>::stacked(stacked, 2);
  CHECK(all.param(2)(1, 1) == stacked(5, 1));
  CHECK(all.param(1)(0, 1) == stacked(2, 1));
  const auto one = ParamBlocks<const double>::row(stacked, 2, 1);
  CHECK(one.param(0)(0, 1) == stacked(1, 1));
  CHECK(one.param(2)(0, 0) == stacked(5, 0));
  CHECK(detail::JoinedName<first, second>::value == "AffineCoupling");
}
