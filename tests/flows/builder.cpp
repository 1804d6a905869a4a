#include "knead/flows/builder.hpp"

#include "support.hpp"

using namespace knead;

TEMPLATE_TEST_CASE("every flow kind builds a conforming bijector", "[flows]", float, double) {
  Rng rng(17);
  for (const FlowKind kind :
       {FlowKind::maf, FlowKind::iaf, FlowKind::realnvp, FlowKind::nice, FlowKind::mlp}) {
    for (const Index dim : {2, 3}) {
      CAPTURE(to_string(kind), dim);
      FlowSpec<TestType> spec;
      spec.kind = kind;
      spec.dim = dim;
      spec.layers = 2;
      spec.hidden = {6};
      spec.identity_init = false;
      spec.seed = 3;
      auto flow = make_flow(spec);
      CHECK(parse_flow_kind(to_string(kind)) == kind);
      CHECK(flow.num_parameters() > 0);
      test::require_conformance(flow, test::random_batch<TestType>(dim, 3, rng), rng);
    }
  }
}

TEST_CASE("identity-initialised flows start as the identity", "[flows]") {
  Rng rng(2);
  for (const FlowKind kind : {FlowKind::maf, FlowKind::iaf, FlowKind::realnvp}) {
    FlowSpec<double> spec;
    spec.kind = kind;
    spec.hidden = {8, 8};
    const auto flow = make_flow(spec);
    const Matrix<double> z = test::random_batch<double>(2, 5, rng);
    // an even number of reversals between 4 layers would not cancel: 3 reversals = one reversal
    const auto [x, ld] = forward_and_log_det(flow, z);
    CHECK((x - z.colwise().reverse()).cwiseAbs().maxCoeff() < 1e-12);
    CHECK(ld.cwiseAbs().maxCoeff() < 1e-12);
  }
}

TEST_CASE("flow builder rejects bad specifications", "[flows][errors]") {
  CHECK_THROWS_WITH(parse_flow_kind("glow"), Catch::Contains("parse_flow_kind") && Catch::Contains("glow"));
  FlowSpec<double> spec;
  spec.layers = 0;
  CHECK_THROWS_WITH(make_flow(spec), Catch::Contains("make_flow") && Catch::Contains("layers"));
  spec.layers = 2;
  spec.kind = FlowKind::realnvp;
  spec.dim = 1;
  CHECK_THROWS_WITH(make_flow(spec), Catch::Contains("dim >= 2"));
}
