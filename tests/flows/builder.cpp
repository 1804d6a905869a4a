#include "knead/flows/builder.hpp"

#include "support.hpp"

using namespace knead;

namespace {

FlowSpec<double> small_spec(FlowKind kind, Index dim) {
  FlowSpec<double> spec;
  spec.kind = kind;
  spec.dim = dim;
  spec.layers = 2;
  spec.hidden = {6};
  spec.identity_init = false;
  spec.seed = 3;
  return spec;
}

const FlowKind all_kinds[] = {FlowKind::maf, FlowKind::iaf, FlowKind::realnvp, FlowKind::nice, FlowKind::mlp};

}  // namespace

TEST_CASE("every flow kind builds a conforming bijector", "[flows]") {
  Rng rng(17);
  for (const FlowKind kind : all_kinds) {
    for (const Index dim : {2, 3}) {
      CAPTURE(to_string(kind), dim);
      auto flow = make_flow(small_spec(kind, dim));
      CHECK(parse_flow_kind(to_string(kind)) == kind);
      CHECK(flow.num_parameters() > 0);
      test::require_conformance(flow, test::random_batch<double>(dim, 3, rng), rng);
    }
  }
}

// Float finite differences straddle the ReLU kinks of the conditioners, so a float flow is
// checked against its double twin (same parameters), whose gradients the test above verifies.
TEST_CASE("float flows agree with their double twins", "[flows]") {
  Rng rng(23);
  for (const FlowKind kind : all_kinds) {
    CAPTURE(to_string(kind));
    const FlowSpec<double> spec = small_spec(kind, 3);
    auto twin = make_flow(spec);
    FlowSpec<float> float_spec{spec.kind,       spec.dim, spec.layers, spec.hidden,
                               spec.batch_norm, {},       false,       spec.seed};
    auto flow = make_flow(float_spec);
    REQUIRE(flow.num_parameters() == twin.num_parameters());
    for (std::size_t i = 0; i < twin.parameters().size(); ++i)
      twin.parameters()[i] = double(flow.parameters()[i]);
    const Matrix<double> z = test::random_batch<double>(3, 5, rng);
    const Matrix<double> w = test::random_batch<double>(3, 5, rng);
    const RowVector<double> v = test::random_batch<double>(1, 5, rng);
    for (const bool forward : {true, false}) {
      Matrix<double> out;
      RowVector<double> ld;
      Matrix<float> out_f;
      RowVector<float> ld_f;
      if (forward) {
        twin.forward_and_log_det(z, out, ld);
        flow.forward_and_log_det(z.cast<float>(), out_f, ld_f);
      } else {
        twin.inverse_and_log_det(z, out, ld);
        flow.inverse_and_log_det(z.cast<float>(), out_f, ld_f);
      }
      CHECK((out_f.cast<double>() - out).cwiseAbs().maxCoeff() < 1e-4 * (1 + out.cwiseAbs().maxCoeff()));
      CHECK((ld_f.cast<double>() - ld).cwiseAbs().maxCoeff() < 1e-4 * (1 + ld.cwiseAbs().maxCoeff()));
      zero_gradients(twin);
      zero_gradients(flow);
      Matrix<double> grad_in;
      Matrix<float> grad_in_f;
      twin.backward(w, v, grad_in);
      flow.backward(w.cast<float>(), v.cast<float>(), grad_in_f);
      const Eigen::Map<const Vector<double>> g(twin.gradients().data(), twin.num_parameters());
      const Eigen::Map<const Vector<float>> g_f(flow.gradients().data(), flow.num_parameters());
      CHECK(testing::relative_error(g_f.cast<double>(), g) < 1e-3);
      CHECK((grad_in_f.cast<double>() - grad_in).cwiseAbs().maxCoeff() <
            1e-3 * (1 + grad_in.cwiseAbs().maxCoeff()));
    }
  }
}

TEST_CASE("identity-initialised flows start as the identity", "[flows]") {
  Rng rng(2);
  for (const FlowKind kind : {FlowKind::maf, FlowKind::iaf, FlowKind::realnvp}) {
    FlowSpec<double> spec;
    spec.kind = kind;
    spec.hidden = {8, 8};
    auto flow = make_flow(spec);
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

TEST_CASE("the flow-kind table names every kind once and drives parsing, names and errors", "[flows]") {
  const std::vector<std::string> expected = {"maf", "iaf", "realnvp", "nice", "mlp"};
  CHECK(flow_kind_names() == expected);
  REQUIRE(std::size(flow_kinds<float>) == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    CAPTURE(expected[i]);
    const FlowKind kind = parse_flow_kind(expected[i]);
    CHECK(kind == all_kinds[i]);
    CHECK(to_string(kind) == expected[i]);
    CHECK(flow_kinds<float>[i].name == flow_kinds<double>[i].name);
    CHECK(flow_kinds<float>[i].kind == kind);
    const std::string_view description = flow_kinds<double>[i].description;
    CHECK(!description.empty());
    CHECK(description.find('\n') == std::string_view::npos);
  }
  CHECK_THROWS_WITH(parse_flow_kind("glow"),
                    "parse_flow_kind: unknown flow 'glow' (expected maf, iaf, realnvp, nice or mlp)");
  CHECK_THROWS_WITH(parse_flow_kind("MAF"), Catch::Contains("unknown flow 'MAF'"));
  CHECK(to_string(FlowKind(99)) == "?");
}

TEST_CASE("make_flow refuses a FlowKind value outside the table", "[flows][errors]") {
  FlowSpec<double> spec;
  spec.kind = FlowKind(99);
  CHECK_THROWS_WITH(make_flow(spec), Catch::Contains("make_flow") && Catch::Contains("99"));
}

TEST_CASE("each flow kind has the documented layer sequence", "[flows]") {
  const auto names = [](FlowKind kind, bool batch_norm, bool act_norm = false) {
    FlowSpec<double> spec;
    spec.kind = kind;
    spec.dim = 4;
    spec.layers = 3;
    spec.hidden = {5};
    spec.batch_norm = batch_norm;
    spec.act_norm = act_norm;
    DynamicChain<double> chain = make_flow(spec);
    std::vector<std::string> out;
    for (Index i = 0; i < chain.size(); ++i) out.push_back(chain.part(i).name());
    return out;
  };
  using V = std::vector<std::string>;
  CHECK(names(FlowKind::maf, false) == V{"Maf", "Permute", "Maf", "Permute", "Maf"});
  CHECK(names(FlowKind::iaf, false) == V{"Invert<Maf>", "Permute", "Invert<Maf>", "Permute", "Invert<Maf>"});
  CHECK(names(FlowKind::realnvp, true) == V{"AffineCoupling", "BatchNorm", "Permute", "AffineCoupling",
                                            "BatchNorm", "Permute", "AffineCoupling"});
  CHECK(names(FlowKind::nice, false) ==
        V{"Scale", "AdditiveCoupling", "Permute", "AdditiveCoupling", "Permute", "AdditiveCoupling"});
  CHECK(names(FlowKind::mlp, true) == V{"TriangularAffine", "PReLU", "TriangularAffine", "PReLU",
                                        "TriangularAffine", "PReLU", "TriangularAffine"});
  CHECK(names(FlowKind::maf, false, true) ==
        V{"Maf", "ActNorm", "Permute", "Maf", "ActNorm", "Permute", "Maf", "ActNorm"});
  CHECK(names(FlowKind::realnvp, true, true) == V{"AffineCoupling", "ActNorm", "BatchNorm", "Permute",
                                                  "AffineCoupling", "ActNorm", "BatchNorm", "Permute",
                                                  "AffineCoupling", "ActNorm"});
  CHECK(names(FlowKind::mlp, false, true) == names(FlowKind::mlp, false));
}

TEST_CASE("Mixing::lu puts a LuLinear where the reversal was, starting as the same flow",
          "[flows][lu_linear]") {
  Rng rng(29);
  for (const FlowKind kind : {FlowKind::maf, FlowKind::iaf, FlowKind::realnvp, FlowKind::nice}) {
    CAPTURE(to_string(kind));
    FlowSpec<double> spec = small_spec(kind, 3);
    spec.layers = 3;
    DynamicChain<double> permuted = make_flow(spec);
    spec.mixing = Mixing::lu;
    DynamicChain<double> mixed = make_flow(spec);
    REQUIRE(mixed.size() == permuted.size());
    Index lu_layers = 0;
    for (Index i = 0; i < mixed.size(); ++i) {
      const bool was_permute = permuted.part(i).name() == "Permute";
      CHECK(mixed.part(i).name() == (was_permute ? "LuLinear" : permuted.part(i).name()));
      lu_layers += was_permute ? 1 : 0;
    }
    CHECK(lu_layers == 2);
    CHECK(mixed.num_parameters() == permuted.num_parameters() + 2 * 3 * 4);  // D(D+1) each
    // W = P at the start: the same map and log-det, to rounding of the conditioners' products
    const Matrix<double> x = test::random_batch<double>(3, 6, rng);
    const auto [u_permuted, ld_permuted] = inverse_and_log_det(permuted, x);
    const auto [u_mixed, ld_mixed] = inverse_and_log_det(mixed, x);
    CHECK((u_mixed - u_permuted).cwiseAbs().maxCoeff() < 1e-12);
    CHECK((ld_mixed - ld_permuted).cwiseAbs().maxCoeff() < 1e-12);
    test::randomise_parameters(mixed, rng, 0.3);
    test::require_conformance(mixed, test::random_batch<double>(3, 3, rng), rng);
  }
  CHECK(parse_mixing("permute") == Mixing::permute);
  CHECK(parse_mixing("lu") == Mixing::lu);
  CHECK(to_string(Mixing::lu) == "lu");
  CHECK(to_string(Mixing::permute) == "permute");
  CHECK(FlowSpec<double>{}.mixing == Mixing::permute);
  CHECK_THROWS_WITH(parse_mixing("glow"), "parse_mixing: unknown mixing 'glow' (expected permute or lu)");
}

TEST_CASE("spec.context_dim makes every conditioner-based layer conditional", "[flows][conditional]") {
  Rng rng(29);
  const Index context_dim = 2;
  for (const FlowKind kind : {FlowKind::maf, FlowKind::iaf, FlowKind::realnvp, FlowKind::nice}) {
    CAPTURE(to_string(kind));
    FlowSpec<double> spec = small_spec(kind, 3);
    spec.context_dim = context_dim;
    auto flow = make_flow(spec);
    CHECK(flow.context_dim() == context_dim);
    // each network-based layer reads the context: more parameters than the unconditional flow
    const Index plain = make_flow(small_spec(kind, 3)).num_parameters();
    CHECK(flow.num_parameters() == plain + spec.layers * spec.hidden[0] * context_dim);
    const Matrix<double> z = test::random_batch<double>(3, 3, rng);
    const Matrix<double> context = test::random_batch<double>(context_dim, 3, rng);
    const auto report = testing::check_conformance(flow, z, context, rng);
    INFO(report.summary());
    CHECK(report.ok());
    CHECK_THROWS_WITH(forward(flow, z), Catch::Contains("context"));
  }
  FlowSpec<double> spec = small_spec(FlowKind::mlp, 3);
  spec.context_dim = 1;
  CHECK_THROWS_WITH(make_flow(spec), Catch::Contains("make_flow") &&
                                         Catch::Contains("'mlp' takes no context") &&
                                         Catch::Contains("context_dim 1"));
  spec.kind = FlowKind::realnvp;
  spec.context_dim = -2;
  CHECK_THROWS_WITH(make_flow(spec), Catch::Contains("make_flow") && Catch::Contains("context_dim is -2"));
}
