#pragma once
/// @file
/// knead's I/O: saving and loading whole flows (save, load, load_as, load_into, flow_state; the
/// format is docs/format.md), the safetensors reader and writer they use, and the errors they throw
/// (FormatError, FileError). Needs nlohmann-json 3.9 or newer besides Eigen: CMake target knead::io,
/// pkg-config module knead. It brings the bijectors and distributions a saved flow can hold; for
/// the rest of the core (builders, data helpers) include knead/core.hpp too, or knead/knead.hpp.

#include "knead/io/errors.hpp"
#include "knead/io/flow_io.hpp"
#include "knead/io/safetensors.hpp"
