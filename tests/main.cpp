#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

// AddressSanitizer's runtime reads its default options here (other builds never call it): an
// allocation larger than its allocator supports returns null, so operator new throws
// std::bad_alloc as it does without the sanitizer, instead of ending the program. The tests of what
// knead does when growing a workspace fails need the exception. ASAN_OPTIONS can still override it.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }
