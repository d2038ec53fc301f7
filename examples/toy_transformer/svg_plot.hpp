// SPDX-License-Identifier: MIT
// A small SVG line-plot writer (panels side by side, linear or log axes, legend), so that the demo
// draws its figure without a plotting dependency.
#ifndef RCPU_EXAMPLES_SVG_PLOT_HPP
#define RCPU_EXAMPLES_SVG_PLOT_HPP

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace rcpu_toy {

struct Series {
  std::string name;
  std::string color;  ///< any SVG colour
  bool dashed = false;
  std::vector<double> x, y;  ///< points with a non-finite or (log axis) non-positive value are skipped
};

struct Panel {
  std::string title, x_label, y_label;
  bool log_x = false, log_y = false;
  std::vector<double> x_ticks;  ///< empty: chosen automatically
  std::vector<Series> series;
  bool legend = true;
  enum class Corner { top_left, bottom_right } legend_corner = Corner::top_left;  ///< inside the frame
};

namespace detail {

inline std::string svg_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '&') o += "&amp;";
    else if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

inline std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

inline std::string tick_label(double v) {
  char b[32];
  if (v != 0 && (std::abs(v) >= 1e5 || std::abs(v) < 1e-3)) std::snprintf(b, sizeof b, "%.0e", v);
  else std::snprintf(b, sizeof b, "%g", v);
  return b;
}

// "Nice" linear ticks covering [lo, hi].
inline std::vector<double> linear_ticks(double lo, double hi) {
  const double span = hi - lo > 0 ? hi - lo : 1.0;
  const double raw = span / 5.0, mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + 1e-9 * span; v += step) t.push_back(std::abs(v) < 1e-12 * step ? 0.0 : v);
  return t;
}

// 1, 2, 5 per decade (or decades only when the range is wide) inside [lo, hi].
inline std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> t;
  const int d0 = int(std::floor(std::log10(lo))), d1 = int(std::ceil(std::log10(hi)));
  const bool dense = d1 - d0 <= 3;
  for (int d = d0; d <= d1; ++d)
    for (double m : {1.0, 2.0, 5.0}) {
      if (!dense && m != 1.0) continue;
      const double v = m * std::pow(10.0, d);
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) t.push_back(v);
    }
  return t;
}

}  // namespace detail

/// Renders panels side by side (each panel_w x panel_h pixels) under an optional title.
inline std::string render_svg(const std::vector<Panel>& panels, const std::string& title, int panel_w = 440,
                              int panel_h = 320) {
  using detail::fmt;
  const int top = title.empty() ? 10 : 40;
  const int W = panel_w * int(panels.size()), Ht = panel_h + top + 10;
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << Ht << "\" viewBox=\"0 0 " << W
    << " " << Ht << "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
    << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  if (!title.empty())
    s << "<text x=\"" << W / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">"
      << detail::svg_escape(title) << "</text>\n";
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const Panel& P = panels[p];
    const double ox = double(p) * panel_w, oy = top;
    const double L = ox + 62, R = ox + panel_w - 24, T = oy + 24, B = oy + panel_h - 46;
    // Data range.
    double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
    auto usable = [&](double x, double y) {
      return std::isfinite(x) && std::isfinite(y) && (!P.log_x || x > 0) && (!P.log_y || y > 0);
    };
    for (const auto& se : P.series)
      for (std::size_t i = 0; i < se.x.size() && i < se.y.size(); ++i)
        if (usable(se.x[i], se.y[i])) {
          x0 = std::min(x0, se.x[i]);
          x1 = std::max(x1, se.x[i]);
          y0 = std::min(y0, se.y[i]);
          y1 = std::max(y1, se.y[i]);
        }
    if (!(x0 <= x1)) x0 = P.log_x ? 1 : 0, x1 = P.log_x ? 10 : 1;
    if (!(y0 <= y1)) y0 = P.log_y ? 1 : 0, y1 = P.log_y ? 10 : 1;
    if (P.log_y) {
      y0 = std::pow(10.0, std::floor(std::log10(y0) * 4) / 4);
      y1 = std::pow(10.0, std::ceil(std::log10(y1) * 4) / 4);
    } else {
      const double pad = (y1 - y0) * 0.06 + (y1 == y0 ? 1e-3 : 0);
      y0 = std::max(0.0, y0 - pad);
      y1 += pad;
    }
    if (x0 == x1) x1 = x0 + (P.log_x ? x0 : 1);
    auto tx = [&](double x) {
      const double f = P.log_x ? std::log(x / x0) / std::log(x1 / x0) : (x - x0) / (x1 - x0);
      return L + f * (R - L);
    };
    auto ty = [&](double y) {
      const double f = P.log_y ? std::log(y / y0) / std::log(y1 / y0) : (y - y0) / (y1 - y0);
      return B - f * (B - T);
    };
    // Frame, grid, ticks.
    s << "<g>\n<text x=\"" << fmt((L + R) / 2) << "\" y=\"" << fmt(oy + 14)
      << "\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">" << detail::svg_escape(P.title) << "</text>\n";
    const std::vector<double> xt = !P.x_ticks.empty() ? P.x_ticks : P.log_x ? detail::log_ticks(x0, x1) : detail::linear_ticks(x0, x1);
    const std::vector<double> yt = P.log_y ? detail::log_ticks(y0, y1) : detail::linear_ticks(y0, y1);
    for (double v : xt) {
      if (v < x0 * (1 - 1e-9) || v > x1 * (1 + 1e-9)) continue;
      const double X = tx(v);
      s << "<line x1=\"" << fmt(X) << "\" y1=\"" << fmt(T) << "\" x2=\"" << fmt(X) << "\" y2=\"" << fmt(B)
        << "\" stroke=\"#e4e4e4\"/>\n<text x=\"" << fmt(X) << "\" y=\"" << fmt(B + 15) << "\" text-anchor=\"middle\">"
        << detail::tick_label(v) << "</text>\n";
    }
    for (double v : yt) {
      const double Y = ty(v);
      s << "<line x1=\"" << fmt(L) << "\" y1=\"" << fmt(Y) << "\" x2=\"" << fmt(R) << "\" y2=\"" << fmt(Y)
        << "\" stroke=\"#e4e4e4\"/>\n<text x=\"" << fmt(L - 5) << "\" y=\"" << fmt(Y + 4) << "\" text-anchor=\"end\">"
        << detail::tick_label(v) << "</text>\n";
    }
    s << "<rect x=\"" << fmt(L) << "\" y=\"" << fmt(T) << "\" width=\"" << fmt(R - L) << "\" height=\"" << fmt(B - T)
      << "\" fill=\"none\" stroke=\"#333\"/>\n";
    s << "<text x=\"" << fmt((L + R) / 2) << "\" y=\"" << fmt(B + 33) << "\" text-anchor=\"middle\">"
      << detail::svg_escape(P.x_label) << "</text>\n";
    s << "<text transform=\"translate(" << fmt(ox + 16) << "," << fmt((T + B) / 2)
      << ") rotate(-90)\" text-anchor=\"middle\">" << detail::svg_escape(P.y_label) << "</text>\n";
    // Lines and markers.
    for (const auto& se : P.series) {
      std::string pts;
      for (std::size_t i = 0; i < se.x.size() && i < se.y.size(); ++i)
        if (usable(se.x[i], se.y[i])) pts += fmt(tx(se.x[i])) + "," + fmt(ty(se.y[i])) + " ";
      if (pts.empty()) continue;
      s << "<polyline fill=\"none\" stroke=\"" << se.color << "\" stroke-width=\"2\""
        << (se.dashed ? " stroke-dasharray=\"6,4\"" : "") << " points=\"" << pts << "\"/>\n";
      for (std::size_t i = 0; i < se.x.size() && i < se.y.size(); ++i)
        if (usable(se.x[i], se.y[i]))
          s << "<circle cx=\"" << fmt(tx(se.x[i])) << "\" cy=\"" << fmt(ty(se.y[i])) << "\" r=\"2.8\" fill=\""
            << se.color << "\"/>\n";
    }
    // Legend inside the frame, on a white box so that lines behind it stay readable.
    if (P.legend) {
      std::size_t n = 0, longest = 0;
      for (const auto& se : P.series)
        if (!se.name.empty()) ++n, longest = std::max(longest, se.name.size());
      const double w = 40 + 6.2 * double(longest), h = 14.0 * double(n) + 6;
      const bool br = P.legend_corner == Panel::Corner::bottom_right;
      const double x0l = br ? R - w - 6 : L + 6, y0l = br ? B - h - 6 : T + 6;
      if (n > 0)
        s << "<rect x=\"" << fmt(x0l) << "\" y=\"" << fmt(y0l) << "\" width=\"" << fmt(w) << "\" height=\"" << fmt(h)
          << "\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n";
      double ly = y0l + 15;
      for (const auto& se : P.series) {
        if (se.name.empty()) continue;
        s << "<line x1=\"" << fmt(x0l + 6) << "\" y1=\"" << fmt(ly - 4) << "\" x2=\"" << fmt(x0l + 28) << "\" y2=\""
          << fmt(ly - 4) << "\" stroke=\"" << se.color << "\" stroke-width=\"2\""
          << (se.dashed ? " stroke-dasharray=\"6,4\"" : "") << "/>\n<text x=\"" << fmt(x0l + 33) << "\" y=\""
          << fmt(ly) << "\" font-size=\"11\">" << detail::svg_escape(se.name) << "</text>\n";
        ly += 14;
      }
    }
    s << "</g>\n";
  }
  s << "</svg>\n";
  return s.str();
}

}  // namespace rcpu_toy

#endif  // RCPU_EXAMPLES_SVG_PLOT_HPP
