#include "knead/io/flow_io.hpp"

#include <cstring>
#include <functional>
#include <limits>

#include "knead/flows/builder.hpp"
#include "support.hpp"

using namespace knead;
using namespace knead::io;
namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

namespace {

using test::TempDir;

template <class T>
bool same_bits(const Matrix<T>& a, const Matrix<T>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), std::size_t(a.size()) * sizeof(T)) == 0;
}
template <class T>
bool same_bits(const RowVector<T>& a, const RowVector<T>& b) {
  return a.cols() == b.cols() && std::memcmp(a.data(), b.data(), std::size_t(a.size()) * sizeof(T)) == 0;
}

/// The two flows give the same log densities (twice: BatchNorm in training mode updates its
/// statistics) and the same samples from the same seed, bit for bit. Works on copies, so that the
/// callers' flows keep their statistics.
template <class A, class B>
void require_identical(A saved, B loaded, std::uint64_t seed = 5) {
  using T = typename A::Scalar;
  Rng rng(seed);
  const Matrix<T> x = test::random_batch<T>(saved.dim(), 7, rng);
  for (int pass = 0; pass < 2; ++pass) CHECK(same_bits<T>(saved.log_prob(x), loaded.log_prob(x)));
  Rng r1(seed + 1), r2(seed + 1);
  CHECK(same_bits<T>(saved.sample(6, r1), loaded.sample(6, r2)));
}

/// A flow of each kind with random (not identity) weights and, between layers, BatchNorm layers
/// with non-trivial running statistics, some in training and some in eval mode.
template <class T>
TransformedDistribution<StandardNormal<T>, DynamicChain<T>> make_test_flow(FlowKind kind, Index dim = 3) {
  FlowSpec<T> spec;
  spec.kind = kind;
  spec.dim = dim;
  spec.layers = 3;
  spec.hidden = {4, 5};
  spec.batch_norm = kind != FlowKind::mlp;
  spec.identity_init = false;
  spec.seed = 3;
  spec.guard = {LogScaleGuardKind::clamp, T(2.5)};
  DynamicChain<T> chain = make_flow<T>(spec);
  Rng rng(17);
  test::randomise_parameters(chain, rng, 0.3);
  for (Index i = 0; i < chain.size(); ++i)
    if (auto* bn = chain.part(i).template target<BatchNorm<T>>()) {
      bn->set_running_mean(test::random_batch<T>(dim, 1, rng));
      bn->set_running_variance(test::random_batch<T>(dim, 1, rng).array().abs() + T(0.5));
      bn->set_training(i % 2 == 0);
    }
  return {StandardNormal<T>(dim), std::move(chain)};
}

/// A file's metadata, architecture and tensors, editable by the hostile-file tests.
struct Editable {
  std::map<std::string, std::string> meta;
  Json arch;
  struct Tensor {
    std::string name;
    std::vector<double> values;
    SafetensorsWriter::Shape shape;
    Dtype dtype;
  };
  std::vector<Tensor> tensors;

  explicit Editable(const Bytes& bytes) {
    const SafetensorsFile file(bytes);
    for (const auto& [k, v] : file.metadata()) meta[k] = v;
    arch = Json::parse(meta.at("knead.flow"));
    for (const TensorInfo& t : file.tensors())
      tensors.push_back({t.name, file.read<double>(t.name), t.shape, t.dtype});
  }
  Tensor& tensor(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return t;
    throw std::logic_error("no tensor " + name);
  }
  void drop(const std::string& name) {
    std::erase_if(tensors, [&](const Tensor& t) { return t.name == name; });
  }
  Bytes bytes() const {
    SafetensorsWriter w;
    for (const auto& [k, v] : meta) w.set_metadata(k, v);
    w.set_metadata("knead.flow", arch.dump());
    for (const Tensor& t : tensors) {
      if (t.dtype == Dtype::F32)
        w.add(t.name, std::vector<float>(t.values.begin(), t.values.end()), t.shape);
      else
        w.add(t.name, t.values, t.shape);
    }
    return w.bytes();
  }
};

template <class T>
void check_refused(const Bytes& bytes, const std::string& expected) {
  INFO("expecting: " << expected);
  const auto attempt = [&] { (void)load<T>(SafetensorsFile(bytes)); };
  CHECK_THROWS_AS(attempt(), FormatError);
  CHECK_THROWS_WITH(attempt(), Catch::Contains(expected));
}

/// The node types of the registered bijectors, in the registry's order, as files spell them.
const std::vector<std::string> registered_names = {"Affine",
                                                   "Shift",
                                                   "Scale",
                                                   "TriangularAffine",
                                                   "PReLU",
                                                   "LeakyReLU",
                                                   "Sigmoid",
                                                   "Permute",
                                                   "LuLinear",
                                                   "BatchNorm",
                                                   "ActNorm",
                                                   "Maf",
                                                   "AffineCoupling",
                                                   "AdditiveCoupling",
                                                   "RationalQuadraticCoupling",
                                                   "RationalQuadraticAutoregressive"};

/// A bijector of type X of dim 3 with options that are not the defaults. A new registered bijector
/// needs an entry here (the round-trip test does not compile without one).
template <class X, class T = typename X::Scalar>
X example_bijector() {
  CouplingOptions<T> coupling;
  coupling.hidden = {5};
  coupling.seed = 4;
  coupling.guard = {LogScaleGuardKind::clamp, T(1.5)};
  MafOptions<T> maf;
  maf.hidden = {4, 3};
  maf.order = InputOrder::permutation({1, 2, 0});
  maf.guard = {LogScaleGuardKind::soft_clamp, T(2)};
  if constexpr (std::is_same_v<X, Affine<T>> || std::is_same_v<X, Shift<T>> || std::is_same_v<X, Scale<T>> ||
                std::is_same_v<X, TriangularAffine<T>>) {
    return X(3);
  } else if constexpr (std::is_same_v<X, PReLU<T>>) {
    return X(3, T(0.7), true);
  } else if constexpr (std::is_same_v<X, LeakyReLU<T>>) {
    return X(3, T(0.3));
  } else if constexpr (std::is_same_v<X, Sigmoid<T>>) {
    Vector<T> low(3), high(3);  // the middle dimension is left unchanged
    low << T(0.1), -std::numeric_limits<T>::infinity(), T(-90);
    high << T(0.7), std::numeric_limits<T>::infinity(), T(90);
    return X(low, high);
  } else if constexpr (std::is_same_v<X, Permute<T>>) {
    return Permute<T>::random(3, 8);
  } else if constexpr (std::is_same_v<X, LuLinear<T>>) {
    return X(std::vector<Index>{2, 0, 1});
  } else if constexpr (std::is_same_v<X, BatchNorm<T>>) {
    X x(3, T(0.2), T(1e-3));
    Vector<T> mean(3), variance(3);
    mean << T(0.5), T(-1), T(2);
    variance << T(0.7), T(1.3), T(2.5);
    x.set_running_mean(mean);
    x.set_running_variance(variance);
    x.set_training(false);
    return x;
  } else if constexpr (std::is_same_v<X, ActNorm<T>>) {
    X x(3);
    x.set_initialized(true);
    return x;
  } else if constexpr (std::is_same_v<X, Maf<T>>) {
    return X(3, maf);
  } else if constexpr (std::is_same_v<X, AffineCoupling<T>>) {
    return X({0, 1, 0}, coupling);
  } else if constexpr (std::is_same_v<X, AdditiveCoupling<T>>) {
    return X({1, 0, 1}, coupling);
  } else if constexpr (std::is_same_v<X, RationalQuadraticCoupling<T>>) {
    coupling.spline = {5, T(2.5), T(0.01), T(0.02), T(0.03)};
    return X({1, 0, 0}, coupling);
  } else if constexpr (std::is_same_v<X, RationalQuadraticAutoregressive<T>>) {
    return X(3, RationalQuadraticTransformer<T>({3, T(1.5), T(0.02), T(0.01), T(0.05)}),
             {maf.hidden, maf.order, false, 5});
  } else {
    static_assert(sizeof(X) == 0, "example_bijector: add an example of this registered bijector");
  }
}

/// Calls f(std::type_identity<X>{}, i) for the i-th registered bijector X.
template <class T, class F>
void for_each_registered(F&& f) {
  [&]<class... Xs>(flow_detail::TypeList<Xs...>) {
    std::size_t i = 0;
    (f(std::type_identity<Xs>{}, i++), ...);
  }(RegisteredBijectors<T>{});
}

}  // namespace

TEMPLATE_TEST_CASE("every flow kind loads back bit for bit, from the file alone and into a twin",
                   "[io][flow_io]", float, double) {
  using T = TestType;
  TempDir dir;
  for (const FlowKind kind :
       {FlowKind::maf, FlowKind::iaf, FlowKind::realnvp, FlowKind::nice, FlowKind::mlp}) {
    INFO("flow " << to_string(kind));
    auto flow = make_test_flow<T>(kind);
    const fs::path path = dir.path() / "model.safetensors";
    save(flow, path);
    const Bytes original = flow_bytes(flow);  // before BatchNorm's training-mode passes update it

    const LoadedFlow<T> loaded = load<T>(path);
    CHECK(loaded.num_parameters() == flow.num_parameters());
    require_identical(flow, loaded);

    auto twin = make_test_flow<T>(kind);
    Rng rng(99);
    test::randomise_parameters(twin, rng, 0.2);  // different weights, same architecture
    twin.bijector().set_training(false);
    load_into(twin, path);
    require_identical(flow, twin);

    // A loaded flow saves to the same bytes (nothing is lost on the way).
    const auto concrete = load_as<TransformedDistribution<StandardNormal<T>, DynamicChain<T>>>(path);
    CHECK(flow_bytes(concrete) == original);
  }
}

TEMPLATE_TEST_CASE("static chains, inversions, a diagonal base and every leaf bijector round-trip",
                   "[io][flow_io]", float, double) {
  using T = TestType;
  CouplingOptions<T> coupling;
  coupling.hidden = {6};
  coupling.seed = 4;
  MafOptions<T> maf;
  maf.hidden = {3};
  maf.order = InputOrder::permutation({2, 0, 1});
  maf.guard = {LogScaleGuardKind::none, T(1)};
  DynamicChain<T> inner(3);
  inner.push_back(Shift<T>(3)).push_back(Scale<T>(3)).push_back(LeakyReLU<T>(3, T(0.3)));
  auto chain = Chain(Affine<T>(3), TriangularAffine<T>(3), PReLU<T>(3, T(0.7), false),
                     Permute<T>::random(3, 8), AdditiveCoupling<T>({1, 0, 1}, coupling),
                     AffineCoupling<T>({0, 1, 0}, coupling), Maf<T>(3, maf), make_iaf<T>(3, maf),
                     Invert<DynamicChain<T>>(inner), BatchNorm<T>(3, T(0.2), T(1e-3)), ActNorm<T>(3));
  Vector<T> mean(3), log_scale(3);
  mean << T(0.5), T(-1), T(2);
  log_scale << T(0.1), T(-0.2), T(0.3);
  TransformedDistribution flow(DiagonalNormal<T>(mean, log_scale), chain);
  Rng rng(3);
  test::randomise_parameters(flow, rng, 0.3);
  flow.bijector().template part<9>().set_training(false);
  flow.bijector().template part<10>().set_initialized(true);

  const Bytes bytes = flow_bytes(flow);
  const SafetensorsFile file(bytes);
  require_identical(flow, load<T>(file));

  auto twin = flow;
  test::randomise_parameters(twin, rng, 0.3);
  twin.bijector().template part<10>().set_initialized(false);
  load_into(twin, file);
  require_identical(flow, twin);
  CHECK(!twin.bijector().template part<9>().training());
  CHECK(twin.bijector().template part<10>().initialized());  // state, taken from the file
  CHECK_FALSE(load<T>(file).bijector().part(10).needs_initialize());

  // The weights are plain tensors, named by position, in the layout PyTorch uses.
  CHECK(file.tensor("base.mean").shape == SafetensorsWriter::Shape{3});
  CHECK(file.tensor("bijector.6.made.layers.0.weight").shape == SafetensorsWriter::Shape{3, 3});
  CHECK(file.tensor("bijector.7.inner.made.layers.1.bias").shape == SafetensorsWriter::Shape{6});
  CHECK(file.tensor("bijector.5.conditioner.layers.1.weight").shape == SafetensorsWriter::Shape{4, 6});
  CHECK(file.tensor("bijector.8.inner.1.log_scale").shape == SafetensorsWriter::Shape{3});
  CHECK(file.tensor("bijector.1.lower").shape == SafetensorsWriter::Shape{3});
  CHECK(file.metadata().at("knead.scalar") == (std::is_same_v<T, float> ? "F32" : "F64"));
  CHECK(file.read<T>("bijector.9.running_variance") ==
        std::vector<T>(flow.bijector().template part<9>().running_variance().data(),
                       flow.bijector().template part<9>().running_variance().data() + 3));

  // The file's base is diagonal: a flow type with a standard normal base is refused.
  CHECK_THROWS_WITH((load_as<TransformedDistribution<StandardNormal<T>, AnyBijector<T>>>(file)),
                    Catch::Contains("base is a DiagonalNormal"));
  const auto any = load_as<TransformedDistribution<DiagonalNormal<T>, AnyBijector<T>>>(file);
  require_identical(flow, any);
}

TEMPLATE_TEST_CASE(
    "a flow on a mixture base loads back bit for bit; inconsistent mixture tensors are refused",
    "[io][flow_io]", float, double) {
  using T = TestType;
  MixtureOfGaussians<T> base(3, 4, 7);
  Rng rng(12);
  test::randomise_parameters(base, rng, 0.5);
  using MixtureFlow = TransformedDistribution<MixtureOfGaussians<T>, DynamicChain<T>>;
  const MixtureFlow flow(base, make_test_flow<T>(FlowKind::maf).bijector());
  const Bytes bytes = flow_bytes(flow);
  const SafetensorsFile file(bytes);
  require_identical(flow, load<T>(file));
  const auto concrete = load_as<MixtureFlow>(file);
  require_identical(flow, concrete);
  CHECK(flow_bytes(concrete) == bytes);
  auto twin = flow;
  test::randomise_parameters(twin, rng, 0.3);
  load_into(twin, file);
  require_identical(flow, twin);

  // means and log-scales are [K, D], row k for component k
  CHECK(file.tensor("base.logits").shape == SafetensorsWriter::Shape{4});
  CHECK(file.tensor("base.means").shape == SafetensorsWriter::Shape{4, 3});
  CHECK(file.tensor("base.log_scales").shape == SafetensorsWriter::Shape{4, 3});
  const std::vector<T> means = file.read<T>("base.means");
  for (Index i = 0; i < 3; ++i) CHECK(means[std::size_t(3 + i)] == base.means()(i, 1));
  CHECK_THROWS_WITH((load_as<TransformedDistribution<DiagonalNormal<T>, DynamicChain<T>>>(file)),
                    Catch::Contains("base is a MixtureOfGaussians"));
  MixtureFlow fewer(MixtureOfGaussians<T>(3, 3), make_test_flow<T>(FlowKind::maf).bijector());
  CHECK_THROWS_WITH(load_into(fewer, file),
                    Catch::Contains("architecture.base.components: the flow has 3, the file has 4"));

  const auto edited = [&](const std::function<void(Editable&)>& edit) {
    Editable e(bytes);
    e.meta.erase("knead.data_crc32");
    edit(e);
    return e.bytes();
  };
  check_refused<T>(edited([](Editable& e) { e.arch["base"]["components"] = 5; }),
                   "'base.logits': tensor has shape [4], the architecture needs [5]");
  check_refused<T>(edited([](Editable& e) {
                     e.tensor("base.means").shape = {3, 4};
                   }),
                   "'base.means': tensor has shape [3,4], the architecture needs [4,3]");
  check_refused<T>(edited([](Editable& e) { e.drop("base.log_scales"); }),
                   "'base.log_scales': missing tensor (the architecture needs one of shape [4,3])");
  check_refused<T>(edited([](Editable& e) { e.arch["base"]["components"] = 0; }),
                   "base: 'components' is 0, outside [1, 2147483647]");
  check_refused<T>(edited([](Editable& e) { e.arch["base"].erase("components"); }),
                   "base: the node has no field 'components'");
  check_refused<T>(edited([](Editable& e) { e.tensor("base.logits").values[2] = INFINITY; }),
                   "'base.logits': tensor has a non-finite value inf at index 2");
  check_refused<T>(edited([](Editable& e) { e.arch["base"]["type"] = "DiagonalNormal"; }),
                   "base: unknown field 'components' in a DiagonalNormal node");
}

TEST_CASE("a flow file of the other scalar type loads only when asked", "[io][flow_io]") {
  auto flow = make_test_flow<float>(FlowKind::realnvp);
  const SafetensorsFile file(flow_bytes(flow));
  CHECK_THROWS_WITH(load<double>(file), Catch::Contains("F32 values but the flow's scalar is F64") &&
                                            Catch::Contains("ScalarConversion::allow"));
  auto wide = load<double>(file, ScalarConversion::allow);
  Rng rng(1);
  const Matrix<float> x = test::random_batch<float>(3, 5, rng);
  const RowVector<float> narrow_lp = decltype(flow)(flow).log_prob(x);  // a copy keeps flow's statistics
  const RowVector<double> wide_lp = decltype(wide)(wide).log_prob(x.cast<double>());
  CHECK((narrow_lp.cast<double>() - wide_lp).cwiseAbs().maxCoeff() < 1e-4);

  const SafetensorsFile double_file(flow_bytes(wide));
  CHECK_THROWS_WITH(load<float>(double_file), Catch::Contains("F64 values but the flow's scalar is F32"));
  auto twin = make_test_flow<float>(FlowKind::realnvp);
  load_into(twin, double_file, ScalarConversion::allow);
  require_identical(flow, twin);  // float → double → float is exact
}

TEST_CASE("load_into names the first difference in architecture and leaves the flow unchanged",
          "[io][flow_io]") {
  auto flow = make_test_flow<double>(FlowKind::maf);
  const SafetensorsFile file(flow_bytes(flow));
  auto other = make_test_flow<double>(FlowKind::realnvp);
  CHECK_THROWS_WITH(load_into(other, file),
                    Catch::Contains("load_into") && Catch::Contains("architecture.bijector.parts[0].type") &&
                        Catch::Contains("\"AffineCoupling\"") && Catch::Contains("\"Maf\""));
  FlowSpec<double> spec;
  spec.dim = 3;
  spec.layers = 3;
  spec.hidden = {4, 6};
  spec.batch_norm = true;
  TransformedDistribution wider(StandardNormal<double>(3), make_flow<double>(spec));
  const std::vector<double> before(wider.parameters().begin(), wider.parameters().end());
  CHECK_THROWS_WITH(load_into(wider, file),
                    Catch::Contains("architecture.bijector.parts[0].hidden[1]: the flow has 6, "
                                    "the file has 5"));
  CHECK(std::equal(before.begin(), before.end(), wider.parameters().begin()));

  // A broken tensor is found before anything is changed.
  Editable e(flow_bytes(flow));
  e.tensor("bijector.3.made.layers.2.bias").values[1] = std::numeric_limits<double>::quiet_NaN();
  auto twin = make_test_flow<double>(FlowKind::maf);
  Rng rng(2);
  test::randomise_parameters(twin, rng, 0.1);
  const std::vector<double> kept(twin.parameters().begin(), twin.parameters().end());
  CHECK_THROWS_WITH(load_into(twin, SafetensorsFile(e.bytes())),
                    Catch::Contains("non-finite value nan at index 1"));
  CHECK(std::equal(kept.begin(), kept.end(), twin.parameters().begin()));
}

TEST_CASE("saving refuses a bijector it cannot describe", "[io][flow_io]") {
  DynamicChain<double> chain(2);
  chain.push_back(Chain(Shift<double>(2), Scale<double>(2)));
  TransformedDistribution flow(StandardNormal<double>(2), chain);
  CHECK_THROWS_AS(flow_bytes(flow), std::invalid_argument);
  CHECK_THROWS_WITH(flow_bytes(flow), Catch::Contains("save") && Catch::Contains("bijector.0"));
}

TEST_CASE("save replaces a file atomically and load names the file", "[io][flow_io]") {
  TempDir dir;
  const fs::path path = dir.path() / "model.safetensors";
  auto flow = make_test_flow<double>(FlowKind::nice);
  save(flow, path);
  AtomicWriteOptions failing;
  failing.chunk_bytes = 64;
  failing.fault_hook = [](WriteStep step, std::size_t) {
    if (step == WriteStep::wrote_chunk) throw std::runtime_error("disk full");
  };
  CHECK_THROWS_WITH(save(make_test_flow<double>(FlowKind::maf), path, failing), "disk full");
  require_identical(flow, load<double>(path));  // the previous file is intact

  Bytes cut = flow_bytes(flow);
  cut.resize(cut.size() - 3);
  write_file_atomically(path, cut);
  CHECK_THROWS_WITH(load<double>(path),
                    Catch::Contains(path.string()) && Catch::Contains("beyond the data section"));
  CHECK_THROWS_AS(load<double>(dir.path() / "missing.safetensors"), FileError);
}

TEST_CASE("metadata saved beside a flow reads back, leaves the flow unchanged, and reserved keys are refused",
          "[io][flow_io]") {
  TempDir dir;
  const fs::path path = dir.path() / "with_metadata.safetensors";
  auto flow = make_test_flow<double>(FlowKind::maf);
  save(flow, path, FlowMetadata{{"cli.record", R"({"rows": 12})"}, {"note", "é"}});
  const SafetensorsFile file = SafetensorsFile::load(path);
  CHECK(file.metadata().at("cli.record") == R"({"rows": 12})");
  CHECK(file.metadata().at("note") == "é");
  require_identical(flow, load<double>(path));
  for (const char* key : {"format", "knead.flow", "knead.data_crc32"}) {
    CHECK_THROWS_WITH(save(flow, dir.path() / "reserved.safetensors", FlowMetadata{{key, "x"}}),
                      Catch::Contains("save") && Catch::Contains(std::string("'") + key + "' is reserved"));
    CHECK_FALSE(fs::exists(dir.path() / "reserved.safetensors"));
  }
}

TEST_CASE("a saved flow carries a data checksum: every flipped data byte is refused, files without it load",
          "[io][flow_io][errors]") {
  TempDir dir;
  const fs::path path = dir.path() / "model.safetensors";
  auto flow = make_test_flow<float>(FlowKind::maf);
  save(flow, path);
  const Bytes good = read_file_bytes(path);
  const SafetensorsFile file(good);
  REQUIRE(file.metadata().count("knead.data_crc32") == 1);
  std::uint64_t data_bytes = 0;
  for (const TensorInfo& t : file.tensors()) data_bytes += t.end - t.begin;
  REQUIRE(data_bytes > 0);
  std::size_t refused = 0;
  for (std::size_t i = good.size() - data_bytes; i < good.size(); ++i) {
    Bytes bad = good;
    bad[i] ^= std::uint8_t(1u << (i % 8));
    try {
      (void)load<float>(SafetensorsFile(bad));
    } catch (const FormatError& e) {
      refused += std::string_view(e.what()).find("corrupted") != std::string_view::npos;
    }
  }
  CHECK(refused == data_bytes);
  Bytes bad = good;
  bad.back() ^= 0x04;
  write_file_atomically(path, bad);
  CHECK_THROWS_WITH(load<float>(path), Catch::Contains(path.string()) && Catch::Contains("corrupted"));
  // A file written without the key (as before it existed) still loads, to the same flow.
  Editable plain(good);
  plain.meta.erase("knead.data_crc32");
  const Bytes unchecked = plain.bytes();
  REQUIRE(SafetensorsFile(unchecked).metadata().count("knead.data_crc32") == 0);
  require_identical(flow, load<float>(SafetensorsFile(unchecked)));
}

TEMPLATE_TEST_CASE("broken and hostile flow files are refused with a message saying what is wrong",
                   "[io][flow_io]", float, double) {
  using T = TestType;
  auto flow = make_test_flow<T>(FlowKind::maf);
  const Bytes valid = flow_bytes(flow);
  const auto edited = [&](const std::function<void(Editable&)>& edit) {
    Editable e(valid);
    edit(e);
    return e.bytes();
  };
  // Layout of the test flow: 0 Maf, 1 BatchNorm, 2 Permute, 3 Maf, 4 BatchNorm, 5 Permute, 6 Maf.
  const auto parts = [](Editable& e) -> Json& { return e.arch["bijector"]["parts"]; };

  SECTION("the raw format") {
    check_refused<T>({}, "too short");
    check_refused<T>(Bytes(valid.begin(), valid.end() - 1), "beyond the data section");
    Bytes huge = valid;
    for (int i = 0; i < 8; ++i) huge[std::size_t(i)] = 0xff;
    check_refused<T>(huge, "exceeds the limit");
    Bytes json = valid;
    json[8] = 'x';
    check_refused<T>(json, "JSON");
    std::string text(valid.begin(), valid.end());
    const auto at = text.find("\"data_offsets\":[0,");
    REQUIRE(at != std::string::npos);
    Bytes overlap = valid;
    overlap[at + 16] = '4';
    check_refused<T>(overlap, "SafetensorsFile");
    Bytes dtype = valid;
    const auto d = text.find(std::is_same_v<T, float> ? "\"dtype\":\"F32\"" : "\"dtype\":\"F64\"");
    REQUIRE(d != std::string::npos);
    dtype[d + 9] = 'I';
    check_refused<T>(dtype, "has dtype I");
  }
  SECTION("metadata") {
    check_refused<T>(edited([](Editable& e) { e.meta.erase("format"); }), "not a flow saved by knead::save");
    check_refused<T>(edited([](Editable& e) { e.meta["knead.format_version"] = "2"; }),
                     "format version 2 is newer than this knead reads (1)");
    check_refused<T>(edited([](Editable& e) { e.meta["knead.format_version"] = "-1"; }),
                     "not a version number");
    check_refused<T>(edited([](Editable& e) { e.meta["knead.format_version"] = "0"; }),
                     "format version 0 does not exist (versions start at 1)");
    check_refused<T>(edited([](Editable& e) { e.meta["knead.format_version"] = "000"; }),
                     "format version 000 does not exist");
    check_refused<T>(edited([](Editable& e) { e.meta["knead.scalar"] = "F16"; }), "expected F32 or F64");
    Editable e(valid);
    e.meta["knead.flow"] = "{\"dim\": 3,";
    SafetensorsWriter w;
    for (const auto& [k, v] : e.meta) w.set_metadata(k, v);
    check_refused<T>(w.bytes(), "the architecture is not valid JSON");
  }
  SECTION("tensors that disagree with the architecture") {
    check_refused<T>(
        edited([](Editable& e) { e.drop("bijector.3.made.layers.1.bias"); }),
        "'bijector.3.made.layers.1.bias': missing tensor (the architecture needs one of shape [5])");
    check_refused<T>(
        edited([&](Editable& e) { parts(e)[0]["hidden"][0] = 5; }),
        "'bijector.0.made.layers.0.weight': tensor has shape [4,3], the architecture needs [5,3]");
    check_refused<T>(edited([](Editable& e) {
                       auto& t = e.tensor("bijector.1.running_mean");
                       t.shape = {1, 3};
                     }),
                     "tensor has shape [1,3], the architecture needs [3]");
    check_refused<T>(edited([](Editable& e) {
                       e.tensors.push_back({"extra", {1.0}, {1}, e.tensors[0].dtype});
                     }),
                     "'extra': tensor is not part of the flow's architecture");
    check_refused<T>(
        edited([](Editable& e) { e.tensor("bijector.0.made.layers.0.weight").values[2] = INFINITY; }),
        "'bijector.0.made.layers.0.weight': tensor has a non-finite value inf at index 2");
    check_refused<T>(edited([](Editable& e) {
                       auto& t = e.tensor("bijector.1.log_scale");
                       t.dtype = t.dtype == Dtype::F32 ? Dtype::F64 : Dtype::F32;
                     }),
                     "'bijector.1.log_scale': tensor has dtype");
    check_refused<T>(edited([](Editable& e) { e.tensor("bijector.4.running_variance").values[0] = -1; }),
                     "running variance");
  }
  SECTION("architectures that are not valid") {
    check_refused<T>(edited([&](Editable& e) { parts(e)[2]["type"] = "Shuffle"; }),
                     "bijector.2: unknown bijector type 'Shuffle'");
    check_refused<T>(edited([&](Editable& e) {
                       parts(e)[2]["permutation"] = {0, 0, 2};
                     }),
                     "bijector.2: Permute: permutation entry 0 is repeated");
    check_refused<T>(edited([&](Editable& e) {
                       parts(e)[5]["permutation"] = {0, 1, 3};
                     }),
                     "bijector.5: 'permutation' is 3, outside [0, 2]");
    check_refused<T>(edited([&](Editable& e) {
                       parts(e)[0]["order"] = {1, 1, 0};
                     }),
                     "bijector.0: Maf: input order entry 1 is 1");
    check_refused<T>(edited([&](Editable& e) { parts(e)[3]["guard"]["kind"] = "tanh"; }),
                     "bijector.3.guard: unknown log-scale guard kind 'tanh'");
    check_refused<T>(edited([&](Editable& e) { parts(e)[1]["momentum"] = 2.0; }),
                     "bijector.1: BatchNorm: momentum must be in [0, 1], got 2");
    check_refused<T>(edited([&](Editable& e) { parts(e)[1]["epsilon"] = "small"; }),
                     "bijector.1: field 'epsilon' must be a number");
    check_refused<T>(edited([&](Editable& e) { parts(e)[1]["colour"] = 1; }),
                     "bijector.1: unknown field 'colour' in a BatchNorm node");
    check_refused<T>(edited([&](Editable& e) { parts(e)[4]["dim"] = 2; }),
                     "bijector.4: node has dim 2 but the flow has dim 3");
    check_refused<T>(edited([&](Editable& e) { e.arch["base"]["type"] = "Cauchy"; }),
                     "unknown base distribution 'Cauchy'");
    check_refused<T>(edited([&](Editable& e) { e.arch["bijector"]["parts"] = 3; }),
                     "field 'parts' must be a list");
    check_refused<T>(edited([&](Editable& e) {
                       Json node = parts(e)[2];
                       for (int i = 0; i < 40; ++i)
                         node = Json{{"type", "Chain"}, {"dim", 3}, {"parts", {node}}};
                       parts(e)[2] = node;
                     }),
                     "nested more than 32 deep");
  }
  SECTION("absurd sizes are refused before anything is allocated") {
    check_refused<T>(edited([](Editable& e) { e.arch["dim"] = 1'000'000'000'000; }),
                     "'dim' is 1000000000000, outside [1, 65536]");
    check_refused<T>(edited([](Editable& e) { e.arch["dim"] = 0; }), "knead.flow: 'dim' is 0, outside [1, ");
    check_refused<T>(edited([&](Editable& e) {
                       parts(e)[0]["hidden"] = {1'000'000'000, 5};
                     }),
                     "tensor has shape [4,3], the architecture needs [1000000000,3]");
    check_refused<T>(edited([&](Editable& e) {
                       parts(e)[0]["hidden"] = {4'000'000'000'000, 5};
                     }),
                     "outside [1, 2147483647]");
    check_refused<T>(edited([&](Editable& e) {
                       Json many = Json::array();
                       for (int i = 0; i < 1100; ++i) many.push_back(parts(e)[2]);
                       e.arch["bijector"]["parts"] = many;
                     }),
                     "a chain of 1100 parts; at most 1024 allowed");
  }
}

TEST_CASE("flow_state holds BatchNorm statistics and modes, no parameters; set_flow_state puts them back",
          "[io][flow_io][flow_state]") {
  auto flow = make_test_flow<double>(FlowKind::maf);  // parts 1 and 4 are BatchNorm layers
  const FlowState<double> state = flow_state(flow);
  CHECK(state.buffers.size() == 4);
  for (const auto& [name, values] : state.buffers) {
    CAPTURE(name);
    CHECK((name.ends_with(".running_mean") || name.ends_with(".running_variance")));
  }
  const auto& bn = *flow.bijector().part(4).target<BatchNorm<double>>();
  CHECK(state.buffers.at("bijector.4.running_variance") ==
        std::vector<double>(bn.running_variance().begin(), bn.running_variance().end()));

  // a twin whose statistics and modes differ becomes the flow again, bit for bit
  auto twin = make_test_flow<double>(FlowKind::maf);
  Rng rng(8);
  for (const Index k : {1, 4}) {
    auto& b = *twin.bijector().part(k).target<BatchNorm<double>>();
    b.set_running_mean(test::random_batch<double>(3, 1, rng));
    b.set_training(!b.training());
  }
  REQUIRE(flow_bytes(twin) != flow_bytes(flow));
  const Bytes twin_before = flow_bytes(twin);

  // what does not fit is refused, naming it, and leaves the twin as it was
  const auto refused = [&](const FlowState<double>& bad, const std::string& expected) {
    INFO("expecting: " << expected);
    CHECK_THROWS_AS(set_flow_state(twin, bad), FormatError);
    CHECK_THROWS_WITH(set_flow_state(twin, bad), Catch::Contains(expected));
    CHECK(flow_bytes(twin) == twin_before);
  };
  FlowState<double> bad = state;
  bad.buffers["bijector.1.running_mean"].pop_back();
  refused(bad, "'bijector.1.running_mean': tensor has shape [2], the architecture needs [3]");
  bad = state;
  bad.buffers.erase("bijector.4.running_variance");
  refused(bad, "'bijector.4.running_variance': missing tensor");
  bad = state;
  bad.buffers["bijector.0.running_mean"] = {1, 2, 3};
  refused(bad, "'bijector.0.running_mean': tensor is not part of the flow's architecture");
  bad = state;
  bad.buffers["bijector.1.running_variance"][2] = 0;
  refused(bad, "running variance must be positive, got 0");
  refused(flow_state(make_test_flow<double>(FlowKind::realnvp)),
          "set_flow_state: the state's flow differs from this one at bijector.parts[0].type");
  bad = state;
  bad.architecture = "[[[";
  refused(bad, "not valid JSON");

  set_flow_state(twin, state);
  CHECK(flow_bytes(twin) == flow_bytes(flow));
  require_identical(flow, twin);
}

TEST_CASE("flow_state passes over bijectors knead cannot describe", "[io][flow_io][flow_state]") {
  DynamicChain<double> chain(2);
  chain.push_back(Chain(Shift<double>(2), Scale<double>(2)));  // not savable inside an AnyBijector
  chain.push_back(BatchNorm<double>(2));
  TransformedDistribution flow(StandardNormal<double>(2), chain);
  flow.bijector().part(1).target<BatchNorm<double>>()->set_running_mean(Vector<double>::Constant(2, 0.5));
  const FlowState<double> state = flow_state(flow);
  CHECK(state.buffers.size() == 2);
  CHECK(state.buffers.at("bijector.1.running_mean") == std::vector<double>{0.5, 0.5});
  TransformedDistribution twin(StandardNormal<double>(2), chain);
  set_flow_state(twin, state);
  CHECK(twin.bijector().part(1).target<BatchNorm<double>>()->running_mean() ==
        Vector<double>::Constant(2, 0.5));
}

TEMPLATE_TEST_CASE(
    "every registered bijector, alone and inverted, saves under its name and loads back bit for bit",
    "[io][flow_io][registry]", float, double) {
  using T = TestType;
  std::size_t count = 0;
  for_each_registered<T>([&]<class X>(std::type_identity<X>, std::size_t i) {
    REQUIRE(i < registered_names.size());
    const std::string& name = registered_names[i];
    INFO("bijector " << name);
    ++count;
    DynamicChain<T> chain(3);
    chain.push_back(example_bijector<X>());
    chain.push_back(Invert<X>(example_bijector<X>()));
    TransformedDistribution flow(StandardNormal<T>(3), std::move(chain));
    Rng rng(11 + i);
    test::randomise_parameters(flow, rng, 0.3);

    const Bytes bytes = flow_bytes(flow);
    const SafetensorsFile file(bytes);
    const Json arch = Json::parse(file.metadata().at("knead.flow"));
    CHECK(arch["bijector"]["parts"][0]["type"] == name);
    CHECK(arch["bijector"]["parts"][1]["type"] == "Invert");
    CHECK(arch["bijector"]["parts"][1]["inner"]["type"] == name);

    const LoadedFlow<T> loaded = load<T>(file);
    CHECK(loaded.num_parameters() == flow.num_parameters());
    require_identical(flow, loaded);
    CHECK(flow_bytes(loaded) == bytes);

    // Inside an AnyBijector (not a chain) the bijector is found by the registry too.
    const auto alone = load_as<TransformedDistribution<StandardNormal<T>, AnyBijector<T>>>(SafetensorsFile(
        flow_bytes(TransformedDistribution(StandardNormal<T>(3), AnyBijector<T>(example_bijector<X>())))));
    CHECK(alone.bijector().template target<X>() != nullptr);
  });
  CHECK(count == registered_names.size());
}

TEST_CASE("an unknown bijector type is refused with exactly the registered names",
          "[io][flow_io][registry]") {
  Editable e(flow_bytes(make_test_flow<double>(FlowKind::mlp)));
  e.arch["bijector"]["parts"][1]["type"] = "Glow";
  const auto attempt = [&] { (void)load<double>(SafetensorsFile(e.bytes())); };
  CHECK_THROWS_AS(attempt(), FormatError);
  CHECK_THROWS_WITH(
      attempt(),
      Catch::EndsWith(
          "bijector.1: unknown bijector type 'Glow' (knead knows Affine, Shift, Scale, "
          "TriangularAffine, PReLU, LeakyReLU, Sigmoid, Permute, LuLinear, BatchNorm, ActNorm, Maf, "
          "AffineCoupling, "
          "AdditiveCoupling, RationalQuadraticCoupling, RationalQuadraticAutoregressive, Chain and Invert)"));
  // The same inside an Invert.
  e.arch["bijector"]["parts"][1] =
      Json{{"type", "Invert"}, {"dim", 3}, {"inner", {{"type", "Glow"}, {"dim", 3}}}};
  CHECK_THROWS_WITH(attempt(), Catch::Contains("bijector.1.inner: unknown bijector type 'Glow' (knead knows "
                                               "Affine, Shift,"));
}

TEMPLATE_TEST_CASE("a Sigmoid node with bad intervals is refused with the interval named", "[io][flow_io]",
                   float, double) {
  using T = TestType;
  DynamicChain<T> chain(3);
  chain.push_back(Affine<T>(3)).push_back(example_bijector<Sigmoid<T>>());
  const Bytes valid = flow_bytes(TransformedDistribution(StandardNormal<T>(3), std::move(chain)));
  const auto with_intervals = [&](const Json& intervals) {
    Editable e(valid);
    e.arch["bijector"]["parts"][1]["intervals"] = intervals;
    return e.bytes();
  };
  // the file as written holds the unchanged dimension as null
  CHECK(Editable(valid).arch["bijector"]["parts"][1]["intervals"][1].is_null());
  check_refused<T>(with_intervals(Json::array({Json::array({0, 1}), nullptr})),
                   "bijector.1: 'intervals' must be a list of 3 entries");
  check_refused<T>(with_intervals(Json::array({Json::array({0}), nullptr, nullptr})),
                   "bijector.1: interval 0 must be [low, high] (two numbers) or null, got [0]");
  check_refused<T>(with_intervals(Json::array({nullptr, Json::array({0, "1"}), nullptr})),
                   "interval 1 must be [low, high]");
  if constexpr (std::is_same_v<T, float>)
    check_refused<T>(with_intervals(Json::array({nullptr, nullptr, Json::array({0, 1e300})})),
                     "interval 2 has the bound 1e+300, not a finite value of the flow's scalar type");
  else  // each bound is a double, but the width overflows
    check_refused<T>(with_intervals(Json::array({nullptr, nullptr, Json::array({-1e308, 1e308})})),
                     "dimension 2 has the interval (-1e+308, 1e+308)");
  check_refused<T>(with_intervals(Json::array({nullptr, Json::array({2, -2}), nullptr})),
                   "bijector.1: Sigmoid: dimension 1 has the interval (2, -2)");
  check_refused<T>(with_intervals(Json::array({nullptr, Json::array({0.5, 0.5}), nullptr})),
                   "dimension 1 has the interval (0.5, 0.5)");
}

TEMPLATE_TEST_CASE("a flow with a conditional Maf and an IAF round-trips with its context weights",
                   "[io][flow_io][conditional]", float, double) {
  using T = TestType;
  MafOptions<T> conditional;
  conditional.hidden = {5, 4};
  conditional.context_dim = 2;
  MafOptions<T> plain;
  plain.hidden = {4};
  plain.order = InputOrder::reversed();
  TransformedDistribution flow(StandardNormal<T>(3),
                               Chain(Maf<T>(3, conditional), Maf<T>(3, plain), make_iaf<T>(3, conditional)));
  Rng rng(7);
  test::randomise_parameters(flow, rng, 0.3);
  const SafetensorsFile file(flow_bytes(flow));
  CHECK(file.tensor("bijector.0.made.context_weight").shape == SafetensorsWriter::Shape{5, 2});
  CHECK(file.tensor("bijector.2.inner.made.context_weight").shape == SafetensorsWriter::Shape{5, 2});
  CHECK_THROWS(file.tensor("bijector.1.made.context_weight"));  // unconditional: no context weight
  const Json arch = Json::parse(file.metadata().at("knead.flow"));
  CHECK(arch.dump().find("\"context_dim\":2") != std::string::npos);
  CHECK(arch["bijector"]["parts"][1].find("context_dim") == arch["bijector"]["parts"][1].end());

  // into a flow of the same type with other weights, and as a type-erased flow: the same density
  // of each x for its context, bit for bit
  auto twin = flow;
  test::randomise_parameters(twin, rng, 0.3);
  load_into(twin, file);
  CHECK(std::ranges::equal(twin.parameters(), flow.parameters()));
  auto erased = load<T>(file);
  CHECK(erased.context_dim() == 2);
  const Matrix<T> x = test::random_batch<T>(3, 6, rng);
  const Matrix<T> c = test::random_batch<T>(2, 6, rng);
  const RowVector<T> expected = flow.log_prob(x, c);
  CHECK(same_bits<T>(twin.log_prob(x, c), expected));
  CHECK(same_bits<T>(erased.log_prob(x, c), expected));

  // a context weight missing, a context_dim out of range or given to a Maf without one: refused
  const Bytes valid = flow_bytes(flow);
  const auto edited = [&](const std::function<void(Editable&)>& edit) {
    Editable e(valid);
    edit(e);
    return e.bytes();
  };
  check_refused<T>(
      edited([](Editable& e) { e.drop("bijector.0.made.context_weight"); }),
      "'bijector.0.made.context_weight': missing tensor (the architecture needs one of shape [5,2])");
  check_refused<T>(edited([](Editable& e) { e.arch["bijector"]["parts"][0]["context_dim"] = 0; }),
                   "'context_dim' is 0, outside [1,");
  check_refused<T>(edited([](Editable& e) { e.arch["bijector"]["parts"][1]["context_dim"] = 3; }),
                   "'bijector.1.made.context_weight': missing tensor");
}

TEMPLATE_TEST_CASE("a spline layer whose file has inconsistent spline options is refused", "[io][flow_io]",
                   float, double) {
  using T = TestType;
  const Bytes valid = flow_bytes(TransformedDistribution(
      StandardNormal<T>(3), Chain(example_bijector<RationalQuadraticCoupling<T>>(),
                                  example_bijector<RationalQuadraticAutoregressive<T>>())));
  CHECK_NOTHROW((void)load<T>(SafetensorsFile(valid)));
  const auto edited = [&](const std::function<void(Editable&)>& edit) {
    Editable e(valid);
    edit(e);
    return e.bytes();
  };
  // bins that the conditioner's outputs do not match: 2·(3·4 − 1) outputs for 5 bins' 2·14
  check_refused<T>(edited([](Editable& e) { e.arch["bijector"]["parts"][0]["spline"]["bins"] = 4; }),
                   "'bijector.0.conditioner.layers.1.weight'");
  check_refused<T>(edited([](Editable& e) { e.arch["bijector"]["parts"][1]["spline"]["bins"] = 1; }),
                   "bijector.1.spline: 'bins' is 1, outside [2,");
  check_refused<T>(edited([](Editable& e) { e.arch["bijector"]["parts"][0]["spline"]["bound"] = -2; }),
                   "bijector.0.spline: spline bound must be finite and positive, got -2");
  check_refused<T>(
      edited([](Editable& e) { e.arch["bijector"]["parts"][1]["spline"]["min_bin_width"] = 0.5; }),
      "bijector.1.spline: spline min_bin_width must be at least 0 with bins·min_bin_width < 1, got "
      "0.5");
  check_refused<T>(
      edited([](Editable& e) { e.arch["bijector"]["parts"][1]["spline"]["min_derivative"] = 0; }),
      "min_derivative must be in (0, 1), got 0");
  check_refused<T>(edited([](Editable& e) { e.arch["bijector"]["parts"][0]["spline"].erase("bound"); }),
                   "bijector.0.spline");
}

TEMPLATE_TEST_CASE("conditional spline layers round-trip with their context weights",
                   "[io][flow_io][conditional]", float, double) {
  using T = TestType;
  CouplingOptions<T> coupling;
  coupling.hidden = {5};
  coupling.seed = 3;
  coupling.context_dim = 2;
  coupling.spline = {4, T(2), T(0.01), T(0.01), T(0.01)};
  AutoregressiveOptions<T> autoregressive{{6}, InputOrder::reversed(), false, 4};
  autoregressive.context_dim = 2;
  TransformedDistribution flow(StandardNormal<T>(3),
                               Chain(RationalQuadraticCoupling<T>({1, 0, 1}, coupling),
                                     RationalQuadraticAutoregressive<T>(
                                         3, RationalQuadraticTransformer<T>({3, T(1.5)}), autoregressive)));
  Rng rng(19);
  test::randomise_parameters(flow, rng, 0.3);
  const SafetensorsFile file(flow_bytes(flow));
  const Json arch = Json::parse(file.metadata().at("knead.flow"));
  CHECK(arch["bijector"]["parts"][0]["context_dim"] == 2);
  CHECK(arch["bijector"]["parts"][1]["context_dim"] == 2);
  auto erased = load<T>(file);
  CHECK(erased.context_dim() == 2);
  CHECK(std::ranges::equal(erased.parameters(), flow.parameters()));
  const Matrix<T> x = test::random_batch<T>(3, 6, rng);
  const Matrix<T> c = test::random_batch<T>(2, 6, rng);
  const RowVector<T> expected = flow.log_prob(x, c);
  CHECK(same_bits<T>(erased.log_prob(x, c), expected));
  CHECK(!same_bits<T>(erased.log_prob(x, c.rowwise().reverse()), expected));  // the context counts
  Editable e(flow_bytes(flow));
  e.drop("bijector.1.made.context_weight");
  check_refused<T>(e.bytes(), "'bijector.1.made.context_weight': missing tensor");
}

TEMPLATE_TEST_CASE("a LuLinear round-trips through a file, its permutation checked",
                   "[io][flow_io][lu_linear]", float, double) {
  using T = TestType;
  DynamicChain<T> chain(4);
  chain.push_back(LuLinear<T>(4, 9)).push_back(AffineCoupling<T>(4, 2, CouplingOptions<T>{}));
  TransformedDistribution flow(StandardNormal<T>(4), chain);
  Rng rng(31);
  test::randomise_parameters(flow, rng, 0.4);
  TempDir dir;
  const fs::path path = dir.path() / "lu.safetensors";
  save(flow, path);
  const LoadedFlow<T> loaded = load<T>(path);
  require_identical(flow, loaded);

  Editable e(flow_bytes(flow));
  Json& node = e.arch["bijector"]["parts"][0];
  REQUIRE(node["type"] == "LuLinear");
  node["permutation"] = Json::array({0, 2, 2, 1});
  check_refused<T>(e.bytes(), "bijector.0: LuLinear: permutation entry 2 is repeated (at positions 1 and 2)");
  node["permutation"] = Json::array({0, 2, 1});
  check_refused<T>(e.bytes(), "bijector.0: field 'permutation' has 3 entries, expected dim = 4");
  node["permutation"] = Json::array({0, 2, 4, 1});
  check_refused<T>(e.bytes(), "permutation");
}

TEMPLATE_TEST_CASE("a flow of conditional couplings round-trips with its context weights",
                   "[io][flow_io][conditional]", float, double) {
  using T = TestType;
  CouplingOptions<T> conditional;
  conditional.hidden = {5};
  conditional.seed = 3;
  conditional.context_dim = 2;
  CouplingOptions<T> linear = conditional;  // no hidden layer: the context weight is the output layer's
  linear.hidden = {};
  linear.seed = 4;
  CouplingOptions<T> plain;
  plain.hidden = {4};
  TransformedDistribution flow(StandardNormal<T>(3),
                               Chain(AffineCoupling<T>({1, 0, 1}, conditional),
                                     AdditiveCoupling<T>({0, 1, 0}, linear), AffineCoupling<T>(3, 1, plain)));
  Rng rng(9);
  test::randomise_parameters(flow, rng, 0.3);
  const SafetensorsFile file(flow_bytes(flow));
  CHECK(file.tensor("bijector.0.conditioner.context_weight").shape == SafetensorsWriter::Shape{5, 2});
  CHECK(file.tensor("bijector.1.conditioner.context_weight").shape == SafetensorsWriter::Shape{2, 2});
  CHECK_THROWS(file.tensor("bijector.2.conditioner.context_weight"));  // unconditional: none
  const Json arch = Json::parse(file.metadata().at("knead.flow"));
  CHECK(arch["bijector"]["parts"][0]["context_dim"] == 2);
  CHECK(arch["bijector"]["parts"][1]["context_dim"] == 2);
  CHECK(arch["bijector"]["parts"][2].find("context_dim") == arch["bijector"]["parts"][2].end());

  // into a flow of the same type with other weights, and as a type-erased flow: the same
  // parameters and the same density of each x for its context, bit for bit
  auto twin = flow;
  test::randomise_parameters(twin, rng, 0.3);
  load_into(twin, file);
  CHECK(std::ranges::equal(twin.parameters(), flow.parameters()));
  auto erased = load<T>(file);
  CHECK(erased.context_dim() == 2);
  CHECK(std::ranges::equal(erased.parameters(), flow.parameters()));
  const Matrix<T> x = test::random_batch<T>(3, 6, rng);
  const Matrix<T> c = test::random_batch<T>(2, 6, rng);
  const RowVector<T> expected = flow.log_prob(x, c);
  CHECK(same_bits<T>(twin.log_prob(x, c), expected));
  CHECK(same_bits<T>(erased.log_prob(x, c), expected));
  CHECK(!same_bits<T>(erased.log_prob(x, c.rowwise().reverse()), expected));  // the context counts

  // a context weight missing, mis-sized or left over, a context_dim out of range: refused
  const Bytes valid = flow_bytes(flow);
  const auto edited = [&](const std::function<void(Editable&)>& edit) {
    Editable e(valid);
    edit(e);
    return e.bytes();
  };
  check_refused<T>(edited([](Editable& e) { e.drop("bijector.0.conditioner.context_weight"); }),
                   "'bijector.0.conditioner.context_weight': missing tensor (the architecture needs one of "
                   "shape [5,2])");
  check_refused<T>(
      edited([](Editable& e) {
        e.tensor("bijector.1.conditioner.context_weight").shape = {1, 4};
      }),
      "'bijector.1.conditioner.context_weight': tensor has shape [1,4], the architecture needs [2,2]");
  check_refused<T>(edited([](Editable& e) { e.arch["bijector"]["parts"][0]["context_dim"] = 3; }),
                   "'bijector.0.conditioner.context_weight': tensor has shape [5,2], the architecture needs "
                   "[5,3]");
  check_refused<T>(edited([](Editable& e) { e.arch["bijector"]["parts"][1]["context_dim"] = 0; }),
                   "'context_dim' is 0, outside [1,");
  check_refused<T>(edited([](Editable& e) { e.arch["bijector"]["parts"][2]["context_dim"] = 1; }),
                   "'bijector.2.conditioner.context_weight': missing tensor");
  check_refused<T>(edited([](Editable& e) { e.arch["bijector"]["parts"][0].erase("context_dim"); }),
                   "'bijector.0.conditioner.context_weight': tensor is not part of the flow's architecture");
}
