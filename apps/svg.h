// A small SVG line-chart writer: panels of (x, y) series with axes, ticks and a legend, viewable
// in any browser. Used by `payless plot` (training curves) and `payless bench` (layer scaling).
// What it is not: a plotting library; it draws lines and points on linear or log10 axes, no more.
#pragma once

#include <string>
#include <vector>

namespace payless::svg {

struct Series {
  std::string label;
  std::vector<double> x, y;
  bool points = false;  // mark each point (for sparse series such as validation)
};

struct Panel {
  std::string title, x_label, y_label;
  bool log_y = false;
  bool log_x = false;
  std::vector<Series> series;
};

// Panels stacked vertically in one SVG document.
std::string render(const std::vector<Panel>& panels, int width = 760, int panel_height = 260);

}  // namespace payless::svg
