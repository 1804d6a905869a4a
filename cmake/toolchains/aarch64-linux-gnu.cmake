# Cross-compiles knead for aarch64 (ARM64) Linux with Debian's g++-aarch64-linux-gnu, and runs the
# built programs (the tests, ctest, catch_discover_tests' listing) under qemu-user:
#
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
#
# scripts/test_aarch64.sh installs the packages, builds the tests and runs them this way.
#
# Libraries and headers of the target come from the cross sysroot /usr/aarch64-linux-gnu (Debian's
# libc6-dev-arm64-cross, libstdc++-12-dev-arm64-cross). knead's dependencies are header-only (Eigen,
# nlohmann-json, Catch2 2), so the build machine's Debian packages serve the cross build as they are:
# find_package looks in the host's prefixes too (their CMake package files are architecture
# independent; an architecture-specific package's files sit under the multiarch directory
# lib/x86_64-linux-gnu, which this build, whose library architecture is aarch64-linux-gnu, does not
# search), and host-headers.cmake puts the host's /usr/include after the sysroot's headers.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(KNEAD_CROSS_TRIPLE aarch64-linux-gnu)
set(KNEAD_CROSS_SYSROOT /usr/${KNEAD_CROSS_TRIPLE})
set(CMAKE_C_COMPILER ${KNEAD_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${KNEAD_CROSS_TRIPLE}-g++)

set(CMAKE_FIND_ROOT_PATH ${KNEAD_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)  # build tools run on the host
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)   # libraries: the target's only
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)   # the host's header-only packages (see above)

# The host's /usr/include is searched after every directory of the cross compiler (-idirafter), so
# the sysroot's C and C++ library headers always come first and only headers it lacks
# (nlohmann/json.hpp, catch2/catch.hpp) come from the host. Imported targets that name /usr/include
# (nlohmann-json, Catch2) would add it as -isystem, ahead of the sysroot: host-headers.cmake, run
# right after project(), marks it as a directory the compiler already searches so CMake leaves it out.
set(CMAKE_C_FLAGS_INIT "-idirafter /usr/include")
set(CMAKE_CXX_FLAGS_INIT "-idirafter /usr/include")
set(CMAKE_PROJECT_INCLUDE ${CMAKE_CURRENT_LIST_DIR}/host-headers.cmake)

# Programs built here run under qemu-user (Debian's qemu-user or qemu-user-static), with the
# sysroot's dynamic loader and libraries (-L).
find_program(KNEAD_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static)
if(NOT KNEAD_QEMU_AARCH64)
  message(FATAL_ERROR "aarch64-linux-gnu.cmake: neither qemu-aarch64 nor qemu-aarch64-static was found "
                      "(Debian: qemu-user or qemu-user-static); the tests cannot run")
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR ${KNEAD_QEMU_AARCH64} -L ${KNEAD_CROSS_SYSROOT})
