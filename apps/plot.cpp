// payless plot: training curves (loss, perplexity, learning rate) from a training log written by
// `payless train` (JSON lines, one object per log event), as one SVG file.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "apps/svg.h"
#include "core/error.h"

namespace payless {
namespace {

int run_plot(cli::Args& args) {
  const std::string out_path = args.get("out", "", "SVG file to write (default: LOG with .svg)");
  std::vector<std::string> logs = args.positionals("LOG", "training log (train.jsonl)");
  if (args.wants_help()) {
    std::printf("%s", args.usage("Draws loss, perplexity and learning-rate curves of a training log as SVG.").c_str());
    return 0;
  }
  args.finish();
  if (logs.size() != 1) fail("give exactly one training log (got ", logs.size(), ")");
  const std::string& log_path = logs[0];
  std::ifstream in(log_path);
  if (!in) fail(log_path, ": cannot open the file");

  svg::Series train_loss{"train loss", {}, {}, false}, valid_loss{"valid loss", {}, {}, true};
  svg::Series train_ppl{"train ppl", {}, {}, false}, valid_ppl{"valid ppl", {}, {}, true};
  svg::Series lr{"learning rate", {}, {}, false};
  std::string line;
  int64_t line_number = 0, events = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      fail(log_path, ":", line_number, ": not a JSON object (is this a payless training log?)");
    if (!j.contains("type") || !j.contains("update")) continue;  // other events (start, end)
    const std::string type = j["type"].get<std::string>();
    const double update = j["update"].get<double>();
    auto value = [&](const char* key) {
      if (!j.contains(key) || !j[key].is_number())
        fail(log_path, ":", line_number, ": a '", type, "' event without a number '", key, "'");
      return j[key].get<double>();
    };
    if (type == "train") {
      train_loss.x.push_back(update), train_loss.y.push_back(value("loss"));
      train_ppl.x.push_back(update), train_ppl.y.push_back(value("ppl"));
      lr.x.push_back(update), lr.y.push_back(value("lr"));
      ++events;
    } else if (type == "valid") {
      valid_loss.x.push_back(update), valid_loss.y.push_back(value("loss"));
      valid_ppl.x.push_back(update), valid_ppl.y.push_back(value("ppl"));
      ++events;
    }
  }
  if (events == 0) fail(log_path, ": no training or validation events to plot");

  std::vector<svg::Panel> panels = {
      {"Loss (base 2)", "update", "loss", false, false, {train_loss, valid_loss}},
      {"Perplexity", "update", "perplexity (log scale)", true, false, {train_ppl, valid_ppl}},
      {"Learning rate", "update", "lr", false, false, {lr}},
  };
  std::string path = out_path;
  if (path.empty()) {
    size_t dot = log_path.rfind('.');
    path = (dot == std::string::npos ? log_path : log_path.substr(0, dot)) + ".svg";
  }
  std::ofstream out(path);
  if (!out) fail(path, ": cannot write the file");
  out << svg::render(panels);
  if (!out.flush()) fail(path, ": write failed");
  std::printf("wrote %s (%lld events)\n", path.c_str(), static_cast<long long>(events));
  return 0;
}

cli::Command plot_command("plot", "draw training curves from a training log as SVG", run_plot);

}  // namespace
}  // namespace payless
