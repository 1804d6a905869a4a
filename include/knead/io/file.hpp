#pragma once
/// @file
/// Whole-file reads and atomic whole-file replacement (POSIX). A saved flow is replaced either fully or
/// not at all: a crash, a full disk or an exception midway leaves the previous file as it was.

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "knead/core/errors.hpp"
#include "knead/io/errors.hpp"

namespace knead::io {

using Bytes = std::vector<std::uint8_t>;

/// Files larger than this are refused by read_file_bytes unless the caller raises the limit.
inline constexpr std::uint64_t default_max_file_bytes = std::uint64_t{1} << 34;  // 16 GiB

namespace detail {

inline std::string quoted(const std::filesystem::path& path) {
  // Built by appending: GCC 12 reports a false -Wrestrict for "'" + string.
  std::string out(1, '\'');
  out.append(path.native());
  out.push_back('\'');
  return out;
}

// std::system_category().message is thread-safe, unlike std::strerror.
inline std::string reason(int error) { return std::system_category().message(error); }

/// Owns a file descriptor; close() reports the error that a destructor would have to swallow.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() { close(); }
  int get() const { return fd_; }
  /// 0 on success, else the errno of ::close. Closing twice is a no-op.
  int close() {
    if (fd_ < 0) return 0;
    const int result = ::close(fd_);
    fd_ = -1;
    // Linux releases the descriptor even when close fails (EINTR included), so never retry.
    return result == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

inline std::string unique_suffix() {
  static std::atomic<unsigned long long> counter{0};
  const auto ticks = std::chrono::steady_clock::now().time_since_epoch().count();
  return std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1)) + "." +
         std::to_string(ticks);
}

/// The temporary-file name of write_file_atomically for `target`: ".<name>.tmp.<pid>.<n>.<t>".
inline std::string temporary_prefix(const std::filesystem::path& target) {
  std::string prefix(1, '.');
  prefix.append(target.filename().native()).append(".tmp.");
  return prefix;
}

/// The writer's pid when `name` is exactly a temporary of the target with this prefix (the prefix
/// followed by three dot-separated decimal numbers), else 0.
inline ::pid_t temporary_writer(std::string_view name, std::string_view prefix) {
  if (!name.starts_with(prefix)) return 0;
  name.remove_prefix(prefix.size());
  long long pid = 0;
  for (int part = 0; part < 3; ++part) {
    std::size_t digits = 0;
    while (digits < name.size() && digits < 20 && name[digits] >= '0' && name[digits] <= '9') ++digits;
    if (digits == 0 || digits == 20) return 0;
    if (part == 0) {
      if (digits > 9) return 0;
      for (std::size_t i = 0; i < digits; ++i) pid = 10 * pid + (name[i] - '0');
    }
    name.remove_prefix(digits);
    if (part < 2) {
      if (name.empty() || name[0] != '.') return 0;
      name.remove_prefix(1);
    }
  }
  return name.empty() && pid > 0 ? static_cast<::pid_t>(pid) : 0;
}

/// Removes the temporaries of `target` left by writers that died (kill -9, power loss) before
/// their rename. A temporary is removed only when its name is exactly knead's pattern for this
/// target, it is a regular file, no process holds its lock (a writer holds an flock on its
/// temporary until after the rename; the kernel drops it when the writer dies) and no process
/// with its writer's pid exists on this machine (which covers the instant between a writer's
/// creating the file and locking it). Best effort: an entry that cannot be checked is kept.
inline void remove_stale_temporaries(const std::filesystem::path& dir, const std::filesystem::path& target) {
  const std::string prefix = temporary_prefix(target);
  std::error_code error;
  std::filesystem::directory_iterator it(dir, error), end;
  for (; !error && it != end; it.increment(error)) {
    const std::filesystem::path& entry = it->path();
    const ::pid_t writer = temporary_writer(entry.filename().native(), prefix);
    if (writer == 0 || writer == ::getpid()) continue;
    if (::kill(writer, 0) == 0 || errno != ESRCH) continue;  // the writer (or a process with its pid) lives
    int fd = -1;
    do fd = ::open(entry.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) continue;
    FileDescriptor candidate(fd);
    struct stat info {};
    if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) continue;  // a writer holds it
    struct stat now {};
    // still the file that was checked (not replaced by a new one of the same name meanwhile)
    if (::lstat(entry.c_str(), &now) == 0 && now.st_ino == info.st_ino && now.st_dev == info.st_dev)
      ::unlink(entry.c_str());
  }
}

inline void fsync_directory(std::string_view function, const std::filesystem::path& dir,
                            const std::filesystem::path& target) {
  int fd = -1;
  do fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    knead::detail::fail<FileError>(function, "replaced ", quoted(target), " but cannot open its folder ",
                                   quoted(dir), " to make the rename durable: ", reason(errno));
  FileDescriptor guard(fd);
  // Some file systems cannot sync a directory (EINVAL); the rename is then as durable as they allow.
  if (::fsync(fd) != 0 && errno != EINVAL)
    knead::detail::fail<FileError>(function, "replaced ", quoted(target), " but cannot sync its folder ",
                                   quoted(dir), ": ", reason(errno));
}

}  // namespace detail

/// A regular file open for reading from its start, so that a reader can look at a few bytes (a
/// length field) and check them against size() before it reads or allocates the rest. The size is
/// taken from fstat and checked against max_bytes on opening; a file that shrinks while being read
/// is an error, not a short read. Non-regular files (folders, FIFOs, devices) are refused without
/// blocking on them. Errors are FileError naming `function`, the path and the system's reason.
class FileReader {
 public:
  FileReader(const std::filesystem::path& path, std::uint64_t max_bytes = default_max_file_bytes,
             std::string_view function = "FileReader")
      : path_(path), function_(function), file_(open(path, function)) {
    using detail::quoted;
    using knead::detail::fail;
    struct stat info {};
    if (::fstat(file_.get(), &info) != 0)
      fail<FileError>(function_, "cannot stat ", quoted(path_), ": ", detail::reason(errno));
    if (!S_ISREG(info.st_mode)) fail<FileError>(function_, quoted(path_), " is not a regular file");
    size_ = static_cast<std::uint64_t>(info.st_size);
    if (size_ > max_bytes)
      fail<FileError>(function_, quoted(path_), " has ", size_, " bytes, more than the limit of ", max_bytes);
  }

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  /// The size fstat gave when the file was opened.
  [[nodiscard]] std::uint64_t size() const { return size_; }
  /// Bytes read so far.
  [[nodiscard]] std::uint64_t position() const { return position_; }

  /// Fills `out` with the next out.size() bytes; out.size() must be at most size() − position().
  void read(std::span<std::uint8_t> out) {
    using detail::quoted;
    using knead::detail::fail;
    if (out.size() > size_ - position_)
      fail(function_, "asked for ", out.size(), " bytes at ", position_, " of the ", size_, " bytes of ",
           quoted(path_));
    std::size_t done = 0;
    while (done < out.size()) {
      const ::ssize_t n = ::read(file_.get(), out.data() + done, out.size() - done);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        fail<FileError>(function_, "cannot read ", quoted(path_), ": ", detail::reason(errno));
      }
      if (n == 0)
        fail<FileError>(function_, quoted(path_), " shrank while being read: ", position_ + done, " of ",
                        size_, " bytes");
      done += static_cast<std::size_t>(n);
    }
    position_ += done;
  }

  /// After all size() bytes are read: checks that the file did not grow meanwhile.
  void expect_end() {
    std::uint8_t extra = 0;
    if (::read(file_.get(), &extra, 1) > 0)
      knead::detail::fail<FileError>(function_, detail::quoted(path_), " grew while being read beyond ",
                                     size_, " bytes");
  }

 private:
  static int open(const std::filesystem::path& path, std::string_view function) {
    int fd = -1;
    // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused as not a regular file.
    do fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
      knead::detail::fail<FileError>(function, "cannot open ", detail::quoted(path), ": ",
                                     detail::reason(errno));
    return fd;
  }

  std::filesystem::path path_;
  std::string function_;
  detail::FileDescriptor file_;
  std::uint64_t size_ = 0, position_ = 0;
};

/// Reads a whole regular file (see FileReader): nothing is allocated before the size is checked
/// against max_bytes. @throws FileError naming the path and the system's reason.
inline Bytes read_file_bytes(const std::filesystem::path& path,
                             std::uint64_t max_bytes = default_max_file_bytes) {
  FileReader file(path, max_bytes, "read_file_bytes");
  Bytes bytes(static_cast<std::size_t>(file.size()));
  file.read(bytes);
  file.expect_end();
  return bytes;
}

/// The points at which AtomicWriteOptions::fault_hook is called, all before the target is touched.
enum class WriteStep {
  created_temporary,  ///< the temporary file exists and is empty
  wrote_chunk,        ///< one more chunk is written to the temporary file
  synced_temporary,   ///< the temporary file is complete, fsync'ed and closed; rename comes next
};

struct AtomicWriteOptions {
  /// Test seam: called at each WriteStep with the bytes written so far. Throwing from it simulates a
  /// failure at that point (the temporary is removed and the exception propagates); a test may also
  /// kill the process from it.
  std::function<void(WriteStep step, std::size_t bytes_written)> fault_hook;
  /// The size of each write() call, so that a failure can strike between chunks.
  std::size_t chunk_bytes = std::size_t{1} << 20;
};

/// Replaces `path` with `bytes` atomically: writes a temporary file in the same folder (named
/// ".<name>.tmp.<unique>", created with O_EXCL; it takes the permission bits of the file it replaces,
/// or 0666 less the umask for a new file), fsyncs and closes it,
/// renames it over `path`, then fsyncs the folder so the rename itself survives a power loss.
/// On any failure before the rename the temporary is removed and `path` keeps its previous content
/// (if the process dies, a stale temporary may remain beside it, never a half-written `path`).
/// The writer holds an flock on its temporary until after the rename; a successful write then
/// removes the temporaries of the same `path` whose writers died (detail::remove_stale_temporaries:
/// only names of this exact pattern, never a live writer's file nor another program's).
/// A symbolic link at `path` is replaced by the file, not followed.
/// @throws FileError (the OS refused), std::invalid_argument (bad path or options), or whatever
///         the fault hook throws.
inline void write_file_atomically(const std::filesystem::path& path, std::span<const std::uint8_t> bytes,
                                  const AtomicWriteOptions& options = {}) {
  constexpr std::string_view fn = "write_file_atomically";
  using detail::quoted;
  using knead::detail::fail;
  if (!path.has_filename()) fail(fn, "path ", quoted(path), " does not name a file");
  if (options.chunk_bytes == 0) fail(fn, "chunk_bytes must be at least 1, got 0");
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");

  std::filesystem::path temp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    std::string name = detail::temporary_prefix(path);
    name.append(detail::unique_suffix());
    temp = dir / name;
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST && errno != EINTR)
      fail<FileError>(fn, "cannot create a temporary file in ", quoted(dir), " to write ", quoted(path), ": ",
                      detail::reason(errno));
  }
  if (fd < 0)
    fail<FileError>(fn, "cannot find a free temporary name in ", quoted(dir), " for ", quoted(path));

  detail::FileDescriptor file(fd);
  // A second open file description holds the temporary's lock until after the rename (the writing
  // descriptor is closed before it, to check close's error): a live temporary is never stale.
  int lock_fd = -1;
  do lock_fd = ::open(temp.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  while (lock_fd < 0 && errno == EINTR);
  detail::FileDescriptor lock(lock_fd);
  if (lock_fd >= 0) ::flock(lock_fd, LOCK_EX | LOCK_NB);
  const auto hook = [&](WriteStep step, std::size_t written) {
    if (options.fault_hook) options.fault_hook(step, written);
  };
  try {
    // Keep the permission bits of the file being replaced (ownership stays the writer's).
    struct stat previous {};
    if (::stat(path.c_str(), &previous) == 0 && S_ISREG(previous.st_mode) &&
        ::fchmod(fd, previous.st_mode & 07777) != 0)
      fail<FileError>(fn, "cannot give ", quoted(temp), " the permissions of ", quoted(path), ": ",
                      detail::reason(errno));
    hook(WriteStep::created_temporary, 0);
    std::size_t done = 0;
    while (done < bytes.size()) {
      const std::size_t chunk = std::min(options.chunk_bytes, bytes.size() - done);
      const ::ssize_t n = ::write(fd, bytes.data() + done, chunk);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail<FileError>(fn, "cannot write ", quoted(temp), " (for ", quoted(path), ") after ", done,
                        " bytes: ", detail::reason(errno));
      }
      if (n == 0) fail<FileError>(fn, "write to ", quoted(temp), " made no progress after ", done, " bytes");
      done += static_cast<std::size_t>(n);
      hook(WriteStep::wrote_chunk, done);
    }
    if (::fsync(fd) != 0) fail<FileError>(fn, "cannot sync ", quoted(temp), ": ", detail::reason(errno));
    // close() can report a delayed write error (NFS, quotas): the data is not safe until it succeeds.
    if (const int error = file.close(); error != 0)
      fail<FileError>(fn, "cannot close ", quoted(temp), ": ", detail::reason(error));
    hook(WriteStep::synced_temporary, done);
    if (::rename(temp.c_str(), path.c_str()) != 0)
      fail<FileError>(fn, "cannot rename ", quoted(temp), " over ", quoted(path), ": ",
                      detail::reason(errno));
  } catch (...) {
    file.close();
    ::unlink(temp.c_str());
    throw;
  }
  lock.close();
  detail::fsync_directory(fn, dir, path);
  detail::remove_stale_temporaries(dir, path);
}

}  // namespace knead::io
