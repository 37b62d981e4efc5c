// See apps/svg.h.
#include "apps/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace payless::svg {
namespace {

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};

std::string number(double v) {
  char buf[32];
  double a = std::fabs(v);
  if (v == 0) return "0";
  if (a >= 1e5 || a < 1e-3) std::snprintf(buf, sizeof buf, "%.1e", v);
  else if (a >= 100) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

// Round tick positions covering [lo, hi]: 1, 2 or 5 times a power of ten apart.
std::vector<double> ticks(double lo, double hi) {
  double span = hi - lo;
  if (!(span > 0)) return {lo};
  double raw = span / 5, power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = raw / power < 1.5 ? power : raw / power < 3.5 ? 2 * power : raw / power < 7.5 ? 5 * power : 10 * power;
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + 1e-9 * span; t += step) out.push_back(t);
  return out;
}

}  // namespace

std::string render(const std::vector<Panel>& panels, int width, int panel_height) {
  const int left = 70, right = 170, top = 30, bottom = 45;
  std::ostringstream out;
  const int height = panel_height * static_cast<int>(panels.size());
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  for (size_t p = 0; p < panels.size(); ++p) {
    const Panel& panel = panels[p];
    const double y0 = p * panel_height;
    auto tx = [&](double v) { return panel.log_x ? std::log10(v) : v; };
    auto ty = [&](double v) { return panel.log_y ? std::log10(v) : v; };
    double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
    for (const Series& s : panel.series)
      for (size_t i = 0; i < s.x.size(); ++i) {
        if (!std::isfinite(s.y[i]) || (panel.log_y && s.y[i] <= 0) || (panel.log_x && s.x[i] <= 0)) continue;
        xmin = std::min(xmin, tx(s.x[i])), xmax = std::max(xmax, tx(s.x[i]));
        ymin = std::min(ymin, ty(s.y[i])), ymax = std::max(ymax, ty(s.y[i]));
      }
    out << "<text x=\"" << left << "\" y=\"" << y0 + 18 << "\" font-weight=\"bold\">" << escape(panel.title) << "</text>\n";
    if (!(xmax >= xmin)) {
      out << "<text x=\"" << left << "\" y=\"" << y0 + panel_height / 2 << "\">no data</text>\n";
      continue;
    }
    if (xmax == xmin) xmax = xmin + 1;
    if (ymax == ymin) ymax = ymin + 1, ymin -= 1;
    const double plot_w = width - left - right, plot_h = panel_height - top - bottom;
    auto px = [&](double v) { return left + (tx(v) - xmin) / (xmax - xmin) * plot_w; };
    auto py = [&](double v) { return y0 + top + (1 - (ty(v) - ymin) / (ymax - ymin)) * plot_h; };
    out << "<rect x=\"" << left << "\" y=\"" << y0 + top << "\" width=\"" << plot_w << "\" height=\"" << plot_h
        << "\" fill=\"none\" stroke=\"#444\"/>\n";
    for (double t : ticks(xmin, xmax)) {
      double v = panel.log_x ? std::pow(10.0, t) : t, x = px(v);
      out << "<line x1=\"" << x << "\" x2=\"" << x << "\" y1=\"" << y0 + top << "\" y2=\"" << y0 + top + plot_h
          << "\" stroke=\"#eee\"/><text x=\"" << x << "\" y=\"" << y0 + top + plot_h + 15
          << "\" text-anchor=\"middle\">" << number(v) << "</text>\n";
    }
    for (double t : ticks(ymin, ymax)) {
      double v = panel.log_y ? std::pow(10.0, t) : t, y = py(v);
      out << "<line x1=\"" << left << "\" x2=\"" << left + plot_w << "\" y1=\"" << y << "\" y2=\"" << y
          << "\" stroke=\"#eee\"/><text x=\"" << left - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">"
          << number(v) << "</text>\n";
    }
    out << "<text x=\"" << left + plot_w / 2 << "\" y=\"" << y0 + panel_height - 8 << "\" text-anchor=\"middle\">"
        << escape(panel.x_label) << "</text>\n";
    out << "<text transform=\"translate(14," << y0 + top + plot_h / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
        << escape(panel.y_label) << "</text>\n";
    for (size_t s = 0; s < panel.series.size(); ++s) {
      const Series& series = panel.series[s];
      const char* color = kColors[s % 6];
      out << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.5\" points=\"";
      for (size_t i = 0; i < series.x.size(); ++i) {
        if (!std::isfinite(series.y[i]) || (panel.log_y && series.y[i] <= 0)) continue;
        out << px(series.x[i]) << "," << py(series.y[i]) << " ";
      }
      out << "\"/>\n";
      if (series.points)
        for (size_t i = 0; i < series.x.size(); ++i)
          if (std::isfinite(series.y[i]) && !(panel.log_y && series.y[i] <= 0))
            out << "<circle cx=\"" << px(series.x[i]) << "\" cy=\"" << py(series.y[i]) << "\" r=\"3\" fill=\"" << color << "\"/>\n";
      double ly = y0 + top + 12 + 18 * s;
      out << "<line x1=\"" << left + plot_w + 12 << "\" x2=\"" << left + plot_w + 32 << "\" y1=\"" << ly - 4
          << "\" y2=\"" << ly - 4 << "\" stroke=\"" << color << "\" stroke-width=\"2\"/><text x=\"" << left + plot_w + 38
          << "\" y=\"" << ly << "\">" << escape(series.label) << "</text>\n";
    }
  }
  out << "</svg>\n";
  return out.str();
}

}  // namespace payless::svg
