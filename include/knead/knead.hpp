#pragma once
/// @file
/// knead: normalizing flows on Eigen. This umbrella includes all of knead's public headers:
/// knead/core.hpp (needs only Eigen: bijectors, distributions, flow builders, data helpers),
/// knead/io.hpp (saving and loading flows) and knead/train.hpp (optimizers, trainer, checkpoints),
/// the last two needing nlohmann-json as well. CMake target knead::knead, pkg-config module knead.
/// A program that only builds, evaluates and samples flows compiles faster with knead/core.hpp
/// (CMake target knead::core, pkg-config module knead-core).

#include "knead/core.hpp"
#include "knead/io.hpp"
#include "knead/train.hpp"
