#include "knead/io/file.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>
#include <iterator>
#include <stdexcept>

#include "support.hpp"

using namespace knead;
using namespace knead::io;
namespace fs = std::filesystem;

namespace {

using test::TempDir;

Bytes pattern_bytes(std::size_t n, unsigned seed) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>((i * 131 + seed) % 251);
  return b;
}

// Written and read with the standard library, independently of the code under test.
void plain_write(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
Bytes plain_read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("read_file_bytes returns exactly the file's bytes", "[io][file]") {
  TempDir dir;
  for (const std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{4096}, std::size_t{100'003}}) {
    CAPTURE(n);
    const Bytes bytes = pattern_bytes(n, 7);
    plain_write(dir.path() / "f.bin", bytes);
    CHECK(read_file_bytes(dir.path() / "f.bin") == bytes);
  }
}

TEST_CASE("read_file_bytes rejects missing, non-regular and oversized files", "[io][file][errors]") {
  TempDir dir;
  const fs::path missing = dir.path() / "missing.bin";
  CHECK_THROWS_AS(read_file_bytes(missing), FileError);
  CHECK_THROWS_WITH(read_file_bytes(missing),
                    Catch::Contains("read_file_bytes") && Catch::Contains("cannot open") &&
                        Catch::Contains(missing.string()) && Catch::Contains("No such file"));
  CHECK_THROWS_WITH(read_file_bytes(dir.path()),
                    Catch::Contains("read_file_bytes") && Catch::Contains("is not a regular file"));
  // A FIFO without a writer would block a plain open(); it must be refused at once instead.
  const fs::path fifo = dir.path() / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(read_file_bytes(fifo), Catch::Contains("is not a regular file"));
  plain_write(dir.path() / "big.bin", pattern_bytes(10, 1));
  CHECK_THROWS_WITH(read_file_bytes(dir.path() / "big.bin", 9), Catch::Contains("read_file_bytes") &&
                                                                    Catch::Contains("has 10 bytes") &&
                                                                    Catch::Contains("limit of 9"));
  CHECK(read_file_bytes(dir.path() / "big.bin", 10).size() == 10);
  if (::geteuid() != 0) {  // root reads whatever the mode says
    plain_write(dir.path() / "secret.bin", pattern_bytes(3, 1));
    fs::permissions(dir.path() / "secret.bin", fs::perms::none);
    CHECK_THROWS_WITH(read_file_bytes(dir.path() / "secret.bin"), Catch::Contains("Permission denied"));
  }
}

TEST_CASE("write_file_atomically creates and replaces a file and leaves nothing else", "[io][file]") {
  TempDir dir;
  const fs::path target = dir.path() / "flow.safetensors";
  const Bytes first = pattern_bytes(5000, 1), second = pattern_bytes(17, 2);
  write_file_atomically(target, first);
  CHECK(plain_read(target) == first);
  write_file_atomically(target, second, {.fault_hook = {}, .chunk_bytes = 3});
  CHECK(plain_read(target) == second);
  write_file_atomically(target, Bytes{});
  CHECK(plain_read(target).empty());
  CHECK(dir.entries() == std::vector<std::string>{"flow.safetensors"});
}

TEST_CASE("write_file_atomically keeps the permissions of the file it replaces", "[io][file]") {
  TempDir dir;
  const fs::path target = dir.path() / "flow.safetensors";
  const mode_t mask = ::umask(0);
  ::umask(mask);
  write_file_atomically(target, pattern_bytes(4, 1));
  CHECK((fs::status(target).permissions() & fs::perms::all) == static_cast<fs::perms>(0666 & ~mask));
  fs::permissions(target, static_cast<fs::perms>(0640));
  write_file_atomically(target, pattern_bytes(8, 2));
  CHECK((fs::status(target).permissions() & fs::perms::all) == static_cast<fs::perms>(0640));
  CHECK(plain_read(target) == pattern_bytes(8, 2));
}

TEST_CASE("write_file_atomically keeps the previous file when it fails midway", "[io][file][errors]") {
  TempDir dir;
  const fs::path target = dir.path() / "flow.safetensors";
  const Bytes previous = pattern_bytes(1000, 3), next = pattern_bytes(4000, 4);
  plain_write(target, previous);
  for (const WriteStep failing :
       {WriteStep::created_temporary, WriteStep::wrote_chunk, WriteStep::synced_temporary}) {
    CAPTURE(static_cast<int>(failing));
    std::vector<std::size_t> seen;
    AtomicWriteOptions options;
    options.chunk_bytes = 1024;
    options.fault_hook = [&](WriteStep step, std::size_t written) {
      if (step == WriteStep::wrote_chunk) seen.push_back(written);
      // fail at the second chunk, in the middle of the data
      if (step == failing && (step != WriteStep::wrote_chunk || written == 2048))
        throw std::runtime_error("injected fault");
    };
    CHECK_THROWS_WITH(write_file_atomically(target, next, options), "injected fault");
    CHECK(plain_read(target) == previous);
    CHECK(dir.entries() == std::vector<std::string>{"flow.safetensors"});  // the temporary is gone
    if (failing == WriteStep::synced_temporary)
      CHECK(seen == std::vector<std::size_t>{1024, 2048, 3072, 4000});
  }
  // Without a previous file, a failure leaves no file at all.
  const fs::path fresh = dir.path() / "fresh.bin";
  AtomicWriteOptions options;
  options.fault_hook = [](WriteStep step, std::size_t) {
    if (step == WriteStep::synced_temporary) throw std::runtime_error("injected fault");
  };
  CHECK_THROWS_WITH(write_file_atomically(fresh, next, options), "injected fault");
  CHECK(!fs::exists(fresh));
  CHECK(dir.entries() == std::vector<std::string>{"flow.safetensors"});
}

TEST_CASE("write_file_atomically reports a real write error and keeps the previous file",
          "[io][file][errors]") {
  TempDir dir;
  const fs::path target = dir.path() / "flow.safetensors";
  const Bytes previous = pattern_bytes(100, 5);
  plain_write(target, previous);
  // A file size limit makes write() fail with EFBIG partway; set it only in a child process.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{50'000, 50'000};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    int code = 1;
    try {
      write_file_atomically(target, pattern_bytes(200'000, 6), {.fault_hook = {}, .chunk_bytes = 16'384});
    } catch (const FileError& e) {
      const std::string what = e.what();
      code = what.find("write_file_atomically") != std::string::npos &&
                     what.find("cannot write") != std::string::npos &&
                     what.find("File too large") != std::string::npos
                 ? 0
                 : 2;
    } catch (...) {
      code = 3;
    }
    ::_exit(code);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);  // 1: no error, 2: wrong message, 3: wrong exception type
  CHECK(plain_read(target) == previous);
  CHECK(dir.entries() == std::vector<std::string>{"flow.safetensors"});
}

TEST_CASE("a process killed in the middle of an atomic write leaves the previous file intact", "[io][file]") {
  TempDir dir;
  const fs::path target = dir.path() / "flow.safetensors";
  const Bytes previous = pattern_bytes(3000, 7), next = pattern_bytes(64 * 1024, 8);
  plain_write(target, previous);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    AtomicWriteOptions options;
    options.chunk_bytes = 4096;
    options.fault_hook = [&](WriteStep step, std::size_t written) {
      if (step == WriteStep::wrote_chunk && written >= next.size() / 2) ::raise(SIGKILL);
    };
    write_file_atomically(target, next, options);
    ::_exit(1);  // not reached
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  CHECK(plain_read(target) == previous);
  // The half-written temporary stays behind (nobody could remove it), beside the intact target.
  const auto entries = dir.entries();
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].rfind(".flow.safetensors.tmp.", 0) == 0);
  const Bytes partial = plain_read(dir.path() / entries[0]);
  CHECK(partial.size() == next.size() / 2);
  CHECK(std::equal(partial.begin(), partial.end(), next.begin()));
  // A later write succeeds regardless, and removes the temporary its dead writer left.
  write_file_atomically(target, next);
  CHECK(plain_read(target) == next);
  CHECK(dir.entries() == std::vector<std::string>{"flow.safetensors"});
}

TEST_CASE("an atomic write removes only the stale temporaries of its own target", "[io][file]") {
  TempDir dir;
  const fs::path target = dir.path() / "flow.safetensors";
  // A writer that stays alive inside its write (between two chunks), and one that has died.
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t live = ::fork();
  REQUIRE(live >= 0);
  if (live == 0) {
    AtomicWriteOptions options;
    options.chunk_bytes = 100;
    options.fault_hook = [&](WriteStep step, std::size_t) {
      if (step != WriteStep::wrote_chunk) return;
      const char byte = 1;
      if (::write(ready[1], &byte, 1) != 1) ::_exit(2);
      for (;;) ::pause();
    };
    write_file_atomically(target, pattern_bytes(1000, 1), options);
    ::_exit(1);
  }
  char byte = 0;
  REQUIRE(::read(ready[0], &byte, 1) == 1);
  ::close(ready[0]);
  ::close(ready[1]);
  const pid_t dead = ::fork();
  REQUIRE(dead >= 0);
  if (dead == 0) ::_exit(0);
  REQUIRE(::waitpid(dead, nullptr, 0) == dead);
  const std::string d = std::to_string(dead);
  // the dead writer's temporary, and names that are not knead's temporaries of this target
  const std::vector<std::string> stale = {".flow.safetensors.tmp." + d + ".0.12345"};
  const std::vector<std::string> foreign = {".flow.safetensors.tmp." + d + ".0.12345.bak",
                                            ".flow.safetensors.tmp." + d + ".0",
                                            ".flow.safetensors.tmp.notes",
                                            "flow.safetensors.tmp." + d + ".0.12345",
                                            ".other.safetensors.tmp." + d + ".0.12345",
                                            ".flow.safetensors.tmp." + d + "x.0.12345"};
  for (const auto& name : stale) plain_write(dir.path() / name, pattern_bytes(10, 2));
  for (const auto& name : foreign) plain_write(dir.path() / name, pattern_bytes(10, 3));
  const auto live_temporaries = [&] {
    std::size_t n = 0;
    for (const auto& name : dir.entries())
      n += name.rfind(".flow.safetensors.tmp." + std::to_string(live) + ".", 0) == 0;
    return n;
  };
  REQUIRE(live_temporaries() == 1);

  write_file_atomically(target, pattern_bytes(50, 4));
  CHECK(plain_read(target) == pattern_bytes(50, 4));
  for (const auto& name : stale) CHECK(!fs::exists(dir.path() / name));
  for (const auto& name : foreign) CHECK(fs::exists(dir.path() / name));
  CHECK(live_temporaries() == 1);  // its writer is still writing it

  ::kill(live, SIGKILL);
  REQUIRE(::waitpid(live, nullptr, 0) == live);
  write_file_atomically(target, pattern_bytes(60, 5));
  CHECK(live_temporaries() == 0);
  for (const auto& name : foreign) CHECK(fs::exists(dir.path() / name));
}

TEST_CASE("write_file_atomically rejects bad paths and options", "[io][file][errors]") {
  TempDir dir;
  const Bytes bytes = pattern_bytes(10, 9);
  CHECK_THROWS_AS(write_file_atomically(fs::path(), bytes), std::invalid_argument);
  CHECK_THROWS_WITH(write_file_atomically(dir.path() / "sub/", bytes),
                    Catch::Contains("write_file_atomically") && Catch::Contains("does not name a file"));
  CHECK_THROWS_WITH(write_file_atomically(dir.path() / "f", bytes, {.fault_hook = {}, .chunk_bytes = 0}),
                    Catch::Contains("chunk_bytes") && Catch::Contains("got 0"));
  const fs::path no_folder = dir.path() / "missing" / "f.bin";
  CHECK_THROWS_AS(write_file_atomically(no_folder, bytes), FileError);
  CHECK_THROWS_WITH(write_file_atomically(no_folder, bytes),
                    Catch::Contains("cannot create a temporary file") &&
                        Catch::Contains(no_folder.string()) && Catch::Contains("No such file"));
  // A folder in the way: the rename fails, and the temporary is cleaned up.
  fs::create_directory(dir.path() / "taken");
  fs::create_directory(dir.path() / "taken" / "child");
  CHECK_THROWS_WITH(write_file_atomically(dir.path() / "taken", bytes),
                    Catch::Contains("cannot rename") && Catch::Contains("taken"));
  CHECK(dir.entries() == std::vector<std::string>{"taken"});
}
