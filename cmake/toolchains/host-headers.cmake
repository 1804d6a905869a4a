# Included right after project() by aarch64-linux-gnu.cmake (CMAKE_PROJECT_INCLUDE): the host's
# /usr/include, which that toolchain already passes with -idirafter, counts as a directory the
# compiler searches, so targets that name it (nlohmann-json's, Catch2's) do not put it ahead of the
# sysroot's headers with -isystem.
foreach(lang IN ITEMS C CXX)
  if(NOT "/usr/include" IN_LIST CMAKE_${lang}_IMPLICIT_INCLUDE_DIRECTORIES)
    list(APPEND CMAKE_${lang}_IMPLICIT_INCLUDE_DIRECTORIES /usr/include)
  endif()
endforeach()
