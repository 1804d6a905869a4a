#pragma once
/// @file
/// Shared by the fuzz programs: a SafetensorsWriter holding a parsed file's tensors (in their own
/// dtype) and metadata, from which the file can be written again.

#include "knead/io/safetensors.hpp"

namespace knead::fuzz {

inline io::SafetensorsWriter writer_holding(const io::SafetensorsFile& file) {
  io::SafetensorsWriter writer;
  for (const io::TensorInfo& t : file.tensors()) {
    if (t.dtype == io::Dtype::F32)
      writer.add(t.name, file.read<float>(t.name), t.shape);
    else
      writer.add(t.name, file.read<double>(t.name), t.shape);
  }
  for (const auto& [key, value] : file.metadata()) writer.set_metadata(key, value);
  return writer;
}

}  // namespace knead::fuzz
