#pragma once
/// @file
/// A small RGB raster canvas for the example programs' figures (not part of knead's API).
///
/// Pixels are stored as floats in [0, 1] so that thousands of faint, alpha-blended scatter points
/// accumulate smoothly into a density instead of being lost to 8-bit rounding. Pixel (x, y) covers
/// [x, x+1) × [y, y+1) with y pointing down; shapes are anti-aliased by their coverage of the pixel
/// centre. save_png() encodes through stb_image_write (Debian's libstb-dev) and writes the file
/// atomically with knead::io::write_file_atomically.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

// The only place that compiles stb_image_write's implementation. STB_IMAGE_WRITE_STATIC keeps its
// functions private to each translation unit, so example programs need neither a separate stb
// source file nor libstb at link time, and two files including this header cannot clash.
#ifndef STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_STATIC
#endif
#ifndef STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#endif
#include <stb/stb_image_write.h>

#include "knead/io/file.hpp"

namespace plot {

/// An sRGB colour with components in [0, 1].
struct Color {
  float r = 0, g = 0, b = 0;
};

constexpr Color rgb(int r, int g, int b) { return {float(r) / 255.f, float(g) / 255.f, float(b) / 255.f}; }

/// Mixes a → b by t in [0, 1].
inline Color mix(Color a, Color b, double t) {
  const auto f = static_cast<float>(t);
  return {a.r + (b.r - a.r) * f, a.g + (b.g - a.g) * f, a.b + (b.b - a.b) * f};
}

namespace colors {
inline constexpr Color white{1, 1, 1};
inline constexpr Color black{0, 0, 0};
inline constexpr Color text = rgb(34, 34, 34);
inline constexpr Color grid = rgb(225, 225, 225);
inline constexpr Color frame = rgb(60, 60, 60);
/// Distinguishable series colours (blue, orange, green, red, purple, brown, pink, grey).
inline constexpr Color series[] = {rgb(38, 110, 180),  rgb(235, 125, 20), rgb(45, 150, 70),
                                   rgb(205, 45, 45),   rgb(130, 90, 180), rgb(140, 90, 70),
                                   rgb(215, 110, 180), rgb(120, 120, 120)};
inline Color series_color(std::size_t i) { return series[i % std::size(series)]; }
}  // namespace colors

/// A half-open pixel rectangle [x0, x1) × [y0, y1).
struct Rect {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  [[nodiscard]] int width() const { return x1 - x0; }
  [[nodiscard]] int height() const { return y1 - y0; }
  [[nodiscard]] Rect intersect(const Rect& o) const {
    return {std::max(x0, o.x0), std::max(y0, o.y0), std::min(x1, o.x1), std::min(y1, o.y1)};
  }
};

class Canvas {
 public:
  Canvas(int width, int height, Color background = colors::white) : width_(width), height_(height) {
    if (width < 1 || height < 1 || width > 16384 || height > 16384)
      throw std::invalid_argument("Canvas: size must be between 1x1 and 16384x16384 pixels, got " +
                                  std::to_string(width) + "x" + std::to_string(height));
    pixels_.assign(std::size_t(width) * std::size_t(height), background);
    clear_clip();
  }

  [[nodiscard]] int width() const { return width_; }
  [[nodiscard]] int height() const { return height_; }
  [[nodiscard]] Rect bounds() const { return {0, 0, width_, height_}; }
  [[nodiscard]] Color pixel(int x, int y) const { return pixels_[index(x, y)]; }

  /// Drawing outside the clip rectangle (always inside the canvas) is discarded.
  void set_clip(const Rect& r) { clip_ = r.intersect(bounds()); }
  void clear_clip() { clip_ = bounds(); }
  [[nodiscard]] const Rect& clip() const { return clip_; }

  /// Blends `c` over pixel (x, y) with opacity alpha in [0, 1]; ignored outside the clip.
  void blend(int x, int y, Color c, double alpha) {
    if (x < clip_.x0 || x >= clip_.x1 || y < clip_.y0 || y >= clip_.y1 || !(alpha > 0)) return;
    Color& p = pixels_[index(x, y)];
    p = mix(p, c, std::min(alpha, 1.0));
  }

  void fill_rect(const Rect& r, Color c, double alpha = 1.0) {
    const Rect area = r.intersect(clip_);
    for (int y = area.y0; y < area.y1; ++y)
      for (int x = area.x0; x < area.x1; ++x) blend(x, y, c, alpha);
  }

  /// An anti-aliased segment of the given width (in pixels) with round ends.
  void line(double x0, double y0, double x1, double y1, Color c, double width = 1.0, double alpha = 1.0) {
    if (!std::isfinite(x0) || !std::isfinite(y0) || !std::isfinite(x1) || !std::isfinite(y1)) return;
    const double half = 0.5 * width;
    const double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    const Rect box = covering(std::min(x0, x1) - half, std::min(y0, y1) - half, std::max(x0, x1) + half,
                              std::max(y0, y1) + half);
    for (int y = box.y0; y < box.y1; ++y)
      for (int x = box.x0; x < box.x1; ++x) {
        const double px = x + 0.5 - x0, py = y + 0.5 - y0;
        const double t = len2 > 0 ? std::clamp((px * dx + py * dy) / len2, 0.0, 1.0) : 0.0;
        const double distance = std::hypot(px - t * dx, py - t * dy);
        // Coverage of a one-pixel-wide box filter by the stroke of half-width `half`.
        blend(x, y, c, alpha * std::clamp(half + 0.5 - distance, 0.0, 1.0));
      }
  }

  /// A connected polyline; non-finite points break it into separate pieces.
  void polyline(const std::vector<double>& xs, const std::vector<double>& ys, Color c, double width = 1.0) {
    for (std::size_t i = 1; i < std::min(xs.size(), ys.size()); ++i)
      line(xs[i - 1], ys[i - 1], xs[i], ys[i], c, width);
  }

  /// An anti-aliased filled disc.
  void disc(double cx, double cy, double radius, Color c, double alpha = 1.0) {
    if (!std::isfinite(cx) || !std::isfinite(cy)) return;
    const Rect box = covering(cx - radius, cy - radius, cx + radius, cy + radius);
    for (int y = box.y0; y < box.y1; ++y)
      for (int x = box.x0; x < box.x1; ++x) {
        const double distance = std::hypot(x + 0.5 - cx, y + 0.5 - cy);
        blend(x, y, c, alpha * std::clamp(radius + 0.5 - distance, 0.0, 1.0));
      }
  }

  /// Copies `source` with its top-left corner at (x, y), clipped.
  void draw(const Canvas& source, int x, int y) {
    for (int sy = 0; sy < source.height(); ++sy)
      for (int sx = 0; sx < source.width(); ++sx) blend(x + sx, y + sy, source.pixel(sx, sy), 1.0);
  }

  /// 8-bit RGB bytes, row by row from the top.
  [[nodiscard]] std::vector<std::uint8_t> to_rgb8() const {
    std::vector<std::uint8_t> bytes;
    bytes.reserve(pixels_.size() * 3);
    for (const Color& p : pixels_)
      for (float v : {p.r, p.g, p.b})
        bytes.push_back(static_cast<std::uint8_t>(std::lround(std::clamp(v, 0.f, 1.f) * 255.f)));
    return bytes;
  }

  /// Writes the canvas as a PNG file; throws std::runtime_error naming the path if that fails.
  /// Writes the canvas as a PNG file: encoded in memory, then written to a temporary file, synced
  /// and renamed over `path` (write_file_atomically), so a full disk or a missing folder is an error
  /// and leaves no partial file. @throws std::runtime_error naming the path and the reason.
  void save_png(const std::string& path) const {
    const std::vector<std::uint8_t> pixels = to_rgb8();
    std::vector<std::uint8_t> png;
    const auto append = [](void* context, void* data, int size) {
      const auto* bytes = static_cast<const std::uint8_t*>(data);
      static_cast<std::vector<std::uint8_t>*>(context)->insert(
          static_cast<std::vector<std::uint8_t>*>(context)->end(), bytes, bytes + size);
    };
    if (stbi_write_png_to_func(append, &png, width_, height_, 3, pixels.data(), width_ * 3) == 0)
      throw std::runtime_error("save_png: cannot encode the PNG file '" + path + "'");
    try {
      knead::io::write_file_atomically(path, png);
    } catch (const std::exception& e) {
      throw std::runtime_error("save_png: cannot write the PNG file '" + path + "': " + e.what());
    }
  }

 private:
  [[nodiscard]] std::size_t index(int x, int y) const {
    if (x < 0 || x >= width_ || y < 0 || y >= height_)
      throw std::out_of_range("Canvas: pixel (" + std::to_string(x) + ", " + std::to_string(y) +
                              ") is outside " + std::to_string(width_) + "x" + std::to_string(height_));
    return std::size_t(y) * std::size_t(width_) + std::size_t(x);
  }

  /// Pixels touched by the real box [x0, x1] × [y0, y1] widened by the half-pixel filter, clipped.
  [[nodiscard]] Rect covering(double x0, double y0, double x1, double y1) const {
    auto lo = [](double v, int limit) { return int(std::clamp(std::floor(v - 0.5), -1.0, double(limit))); };
    auto hi = [](double v, int limit) { return int(std::clamp(std::ceil(v + 0.5), -1.0, double(limit))); };
    return Rect{lo(x0, width_), lo(y0, height_), hi(x1, width_), hi(y1, height_)}.intersect(clip_);
  }

  int width_, height_;
  std::vector<Color> pixels_;
  Rect clip_;
};

}  // namespace plot
