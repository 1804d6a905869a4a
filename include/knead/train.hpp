#pragma once
/// @file
/// knead's training: the optimizers (Adam/AdamW, SGD), learning-rate schedules, gradient clipping,
/// minibatches, the maximum-likelihood trainer and its checkpoints. The checkpoints are safetensors
/// files, so this needs nlohmann-json 3.9 or newer besides Eigen: CMake target knead::knead,
/// pkg-config module knead. The optimizers alone (knead/optim/*.hpp) need only Eigen.

#include "knead/optim/adam.hpp"
#include "knead/optim/clip.hpp"
#include "knead/optim/optimizer.hpp"
#include "knead/optim/schedule.hpp"
#include "knead/optim/sgd.hpp"

#include "knead/train/checkpoint.hpp"
#include "knead/train/minibatch.hpp"
#include "knead/train/trainer.hpp"
