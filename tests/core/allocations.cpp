// Steady state does not allocate: after a warm-up call, the passes and backward steps of MAF, IAF,
// couplings, chains of them and TransformedDistribution reuse their workspaces.
//
// This program replaces the global operator new (std::vector, std::function, … and whatever else
// the C++ library allocates) and, outside AddressSanitizer (which owns malloc), also malloc and its
// relatives, through which Eigen allocates matrices and GEMM packing buffers.

#include <atomic>
#ifdef KNEAD_TRACE_ALLOCATIONS
#include <execinfo.h>
#include <unistd.h>
#endif
#include <cstdlib>
#include <new>

#include "knead/bijectors/chain.hpp"
#include "knead/bijectors/coupling.hpp"
#include "knead/bijectors/iaf.hpp"
#include "knead/bijectors/lu_linear.hpp"
#include "knead/bijectors/maf.hpp"
#include "knead/bijectors/permute.hpp"
#include "knead/core/threads.hpp"
#include "knead/distributions/diagonal_normal.hpp"
#include "knead/distributions/mixture_of_gaussians.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "knead/flows/builder.hpp"
#include "support.hpp"

// AddressSanitizer owns the allocator: there the program only runs the passes (counting nothing).
#if !defined(__SANITIZE_ADDRESS__)
#define KNEAD_COUNT_ALLOCATIONS 1
#endif
#if defined(KNEAD_COUNT_ALLOCATIONS) && defined(__GLIBC__)
constexpr bool counts_malloc = true;  // operator new below allocates through malloc
#else
constexpr bool counts_malloc = false;
#endif
#if defined(KNEAD_COUNT_ALLOCATIONS)
constexpr bool counts_new = true;
#else
constexpr bool counts_new = false;
#endif

namespace {
std::atomic<long> allocations{0};
std::atomic<bool> counting{false};
[[maybe_unused]] void note() {
  if (counting.load(std::memory_order_relaxed)) {
    allocations.fetch_add(1, std::memory_order_relaxed);
#ifdef KNEAD_TRACE_ALLOCATIONS
    counting = false;
    void* frames[24];
    const int n = backtrace(frames, 24);
    backtrace_symbols_fd(frames, n, 2);
    write(2, "----\n", 5);
    counting = true;
#endif
  }
}
}  // namespace

// ---- operator new ------------------------------------------------------------------------------
#if defined(KNEAD_COUNT_ALLOCATIONS)
void* operator new(std::size_t n) {
  if (!counts_malloc) note();
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  if (!counts_malloc) note();
  const std::size_t align = std::max(std::size_t(a), sizeof(void*));
  void* p = nullptr;
  if (posix_memalign(&p, align, n == 0 ? align : n) != 0) throw std::bad_alloc();
  return p;
}
void* operator new[](std::size_t n, std::align_val_t a) { return ::operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#endif

// ---- malloc (glibc, not under AddressSanitizer) ---------------------------------------------------
#if defined(KNEAD_COUNT_ALLOCATIONS) && defined(__GLIBC__)
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);

void* malloc(std::size_t n) {
  note();
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t size) {
  note();
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t n) {
  note();
  return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }
int posix_memalign(void** out, std::size_t align, std::size_t n) {
  note();
  *out = __libc_memalign(align, n);
  return *out == nullptr ? 12 /* ENOMEM */ : 0;
}
void* aligned_alloc(std::size_t align, std::size_t n) {
  note();
  return __libc_memalign(align, n);
}
void* memalign(std::size_t align, std::size_t n) {
  note();
  return __libc_memalign(align, n);
}
}
#endif

using namespace knead;

namespace {

/// Allocations made by 3 calls of `f` after 2 warm-up calls.
template <class F>
long steady_allocations(F&& f) {
  f();
  f();
  allocations = 0;
  counting = true;
  for (int i = 0; i < 3; ++i) f();
  counting = false;
  return allocations.load();
}

/// Both passes of a bijector, each followed by backward.
template <class B>
void check_bijector_passes(B& b, Index n, Rng& rng) {
  using T = typename B::Scalar;
  const Matrix<T> z = test::random_batch<T>(b.dim(), n, rng, 0.5);
  const Matrix<T> grad = test::random_batch<T>(b.dim(), n, rng);
  const RowVector<T> grad_ld = test::random_batch<T>(1, n, rng);
  Matrix<T> out, grad_in;
  RowVector<T> ld;
  CHECK(steady_allocations([&] { b.forward_and_log_det(z, out, ld); }) == 0);
  CHECK(steady_allocations([&] {
          b.forward_and_log_det(z, out, ld);
          b.backward(grad, grad_ld, grad_in);
        }) == 0);
  CHECK(steady_allocations([&] { b.inverse_and_log_det(z, out, ld); }) == 0);
  CHECK(steady_allocations([&] {
          b.inverse_and_log_det(z, out, ld);
          b.backward(grad, grad_ld, grad_in);
        }) == 0);
}

template <class T>
MafOptions<T> small_maf(std::uint64_t seed) {
  MafOptions<T> o;
  o.hidden = {24, 24};
  o.seed = seed;
  return o;
}

template <class T>
void check_flow(FlowKind kind, Index d, Index n, Rng& rng) {
  FlowSpec<T> spec;
  spec.kind = kind;
  spec.dim = d;
  spec.layers = 3;
  spec.hidden = {24, 24};
  spec.identity_init = false;
  DynamicChain<T> chain = make_flow(spec);
  check_bijector_passes(chain, n, rng);

  TransformedDistribution flow(StandardNormal<T>(d), make_flow(spec));
  const Matrix<T> x = test::random_batch<T>(d, n, rng, 0.5);
  RowVector<T> lp;
  Matrix<T> samples;
  CHECK(steady_allocations([&] { flow.log_prob(x, lp); }) == 0);
  CHECK(steady_allocations([&] {
          const NoGrad no_grad;
          flow.log_prob(x, lp);
          flow.sample(n, rng, samples);
        }) == 0);
  CHECK(steady_allocations([&] { (void)flow.mean_nll_and_backward(x); }) == 0);
  CHECK(steady_allocations([&] { flow.sample_and_log_prob(n, rng, samples, lp); }) == 0);
  const Matrix<T> grad_x = test::random_batch<T>(d, n, rng);
  const RowVector<T> grad_lp = test::random_batch<T>(1, n, rng);
  CHECK(steady_allocations([&] {
          flow.sample_and_log_prob(n, rng, samples, lp);
          flow.backward_sample_and_log_prob(grad_x, grad_lp);
        }) == 0);
}

template <class T>
void check_all(Index n) {
  Rng rng(5);
  const Index d = 5;
  SECTION("Maf") {
    Maf<T> maf(d, small_maf<T>(1));
    check_bijector_passes(maf, n, rng);
  }
  SECTION("Iaf") {
    Iaf<T> iaf = make_iaf<T>(d, small_maf<T>(2));
    check_bijector_passes(iaf, n, rng);
  }
  SECTION("Chain") {
    Chain chain(Maf<T>(d, small_maf<T>(3)), Permute<T>::reverse(d), make_iaf<T>(d, small_maf<T>(4)));
    check_bijector_passes(chain, n, rng);
  }
  SECTION("LuLinear") {
    LuLinear<T> lu(d, 9);
    test::randomise_parameters(lu, rng, 0.3);
    check_bijector_passes(lu, n, rng);
  }
  for (const FlowKind kind : {FlowKind::maf, FlowKind::iaf}) {
    DYNAMIC_SECTION("DynamicChain and TransformedDistribution of " << to_string(kind)) {
      check_flow<T>(kind, d, n, rng);
    }
  }
}

}  // namespace

TEST_CASE("The allocation counter sees allocations", "[allocations]") {
  const long seen = steady_allocations([] {
    std::vector<int> v(100);
    CHECK(v.size() == 100);
  });
  CHECK(seen == (counts_new ? 3 : 0));
  if (counts_malloc) {
    const long eigen = steady_allocations([] {
      Matrix<double> m = Matrix<double>::Ones(20, 20);
      CHECK(m.sum() == 400.0);
    });
    CHECK(eigen == 3);
  }
}

TEMPLATE_TEST_CASE("Passes and backward steps do not allocate after warm-up", "[allocations]", float,
                   double) {
  set_num_threads(1);
  check_all<TestType>(40);
}

TEMPLATE_TEST_CASE("Passes and backward steps do not allocate after warm-up on two threads", "[allocations]",
                   float, double) {
  const test::ThreadCount threads(2);
  check_all<TestType>(96);
}

TEMPLATE_TEST_CASE("A mixture base and a flow on it do not allocate after warm-up", "[allocations]", float,
                   double) {
  using T = TestType;
  set_num_threads(1);
  Rng rng(8);
  const Index d = 3, n = 40;
  MixtureOfGaussians<T> mixture(d, 4, 2);
  const Matrix<T> u = test::random_batch<T>(d, n, rng);
  const RowVector<T> grad_lp = test::random_batch<T>(1, n, rng);
  const Matrix<T> grad_sample = test::random_batch<T>(d, n, rng);
  RowVector<T> lp;
  Matrix<T> grad_u, samples;
  CHECK(steady_allocations([&] {
          mixture.log_prob(u, lp);
          mixture.backward_log_prob(grad_lp, grad_u);
        }) == 0);
  CHECK(steady_allocations([&] {
          mixture.sample(n, rng, samples);
          mixture.backward_sample(grad_sample);
        }) == 0);

  FlowSpec<T> spec;
  spec.kind = FlowKind::maf;
  spec.dim = d;
  spec.layers = 2;
  spec.hidden = {24, 24};
  TransformedDistribution flow(mixture, make_flow(spec));
  CHECK(steady_allocations([&] { (void)flow.mean_nll_and_backward(u); }) == 0);
  CHECK(steady_allocations([&] {
          flow.sample_and_log_prob(n, rng, samples, lp);
          flow.backward_sample_and_log_prob(grad_sample, grad_lp);
        }) == 0);
}

TEMPLATE_TEST_CASE("A diagonal Normal base does not allocate after warm-up", "[allocations]", float, double) {
  using T = TestType;
  set_num_threads(1);
  Rng rng(9);
  const Index d = 3, n = 40;
  DiagonalNormal<T> normal(d);
  test::randomise_parameters(normal, rng, 0.5);
  const Matrix<T> u = test::random_batch<T>(d, n, rng);
  const RowVector<T> grad_lp = test::random_batch<T>(1, n, rng);
  const Matrix<T> grad_sample = test::random_batch<T>(d, n, rng);
  RowVector<T> lp;
  Matrix<T> grad_u, samples;
  CHECK(steady_allocations([&] {
          normal.log_prob(u, lp);
          normal.backward_log_prob(grad_lp, grad_u);
        }) == 0);
  CHECK(steady_allocations([&] {
          normal.sample(n, rng, samples);
          normal.backward_sample(grad_sample);
        }) == 0);
}

// Couplings gather and scatter their halves row by row: an Eigen indexed view would copy its index
// list, an allocation on every call.
TEMPLATE_TEST_CASE("Couplings do not allocate after warm-up", "[allocations]", float, double) {
  set_num_threads(1);
  Rng rng(6);
  SECTION("AffineCoupling") {
    CouplingOptions<TestType> o;
    o.hidden = {24, 24};
    AffineCoupling<TestType> coupling(5, 2, o);
    check_bijector_passes(coupling, 40, rng);
  }
  SECTION("RealNVP flow") { check_flow<TestType>(FlowKind::realnvp, 5, 40, rng); }
}

// The threads' shares of a job follow their measured speeds (detail::Balance), so a thread's share
// after warm-up can be larger than any it had before: its scratch must already fit. Here thread 0
// warms up on 15 % of every job and is then given 85 % (the balancer's range: no thread gets under
// a quarter of an even share).
TEMPLATE_TEST_CASE("A thread whose share grows after warm-up does not allocate", "[allocations]", float,
                   double) {
  using T = TestType;
  const test::ThreadCount threads(2);
  struct FixedShares {
    FixedShares() { detail::Balance::fixed() = {0.15, 0.85}; }
    ~FixedShares() { detail::Balance::fixed().clear(); }
    FixedShares(const FixedShares&) = delete;
    FixedShares& operator=(const FixedShares&) = delete;
  } shares;
  Rng rng(7);
  const Index d = 5, n = 256;
  MafOptions<T> o;
  o.hidden = {128, 128};
  o.seed = 5;
  Maf<T> maf(d, o);
  const Matrix<T> z = test::random_batch<T>(d, n, rng, 0.5);
  const Matrix<T> grad = test::random_batch<T>(d, n, rng);
  const RowVector<T> grad_ld = test::random_batch<T>(1, n, rng);
  Matrix<T> out, grad_in;
  RowVector<T> ld;
  int calls = 0;
  CHECK(steady_allocations([&] {
          if (++calls == 3) detail::Balance::fixed() = {0.85, 0.15};  // after the 2 warm-up calls
          maf.forward_and_log_det(z, out, ld);
          maf.backward(grad, grad_ld, grad_in);
          maf.inverse_and_log_det(z, out, ld);
          maf.backward(grad, grad_ld, grad_in);
        }) == 0);
}
