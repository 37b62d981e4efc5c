// See apps/cli.h.
#include "apps/cli.h"

#include <unistd.h>

#include <cstdio>
#include <sstream>

#include "core/error.h"

namespace payless::cli {

std::map<std::string, CommandInfo>& commands() {
  static std::map<std::string, CommandInfo> table;
  return table;
}

Command::Command(std::string name, std::string summary, std::function<int(Args&)> run) {
  commands()[std::move(name)] = {std::move(summary), std::move(run)};
}

Args::Args(std::string command, std::vector<std::string> argv) : command_(std::move(command)) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--help" || a == "-h") {
      help_ = true;
    } else if (a.rfind("--", 0) == 0 && a.size() > 2) {
      std::string name = a.substr(2), value;
      size_t eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      } else if (i + 1 < argv.size() && argv[i + 1].rfind("--", 0) != 0) {
        value = argv[++i];
      } else {
        value = "\x01";  // a flag without a value
      }
      values_[name].push_back(value);
    } else {
      positional_.push_back(a);
    }
  }
}

std::string Args::get(const std::string& name, const std::string& fallback, const std::string& help) {
  declared_.push_back({"--" + name + " VALUE (default: " + fallback + ")", help});
  used_[name] = true;
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  if (it->second.back() == "\x01") fail(command_, ": option --", name, " needs a value");
  return it->second.back();
}

std::string Args::require(const std::string& name, const std::string& help) {
  declared_.push_back({"--" + name + " VALUE (required)", help});
  used_[name] = true;
  auto it = values_.find(name);
  if (it == values_.end() || it->second.back() == "\x01") {
    if (help_) return "";
    fail(command_, ": missing required option --", name, " (", help, ")");
  }
  return it->second.back();
}

int64_t Args::get_int(const std::string& name, int64_t fallback, const std::string& help) {
  std::string text = get(name, std::to_string(fallback), help);
  try {
    size_t used = 0;
    long long v = std::stoll(text, &used);
    if (used != text.size()) throw std::invalid_argument(text);
    return v;
  } catch (const std::exception&) {
    fail(command_, ": option --", name, " wants a whole number, got '", text, "'");
  }
}

double Args::get_double(const std::string& name, double fallback, const std::string& help) {
  std::ostringstream def;
  def << fallback;
  std::string text = get(name, def.str(), help);
  try {
    size_t used = 0;
    double v = std::stod(text, &used);
    if (used != text.size()) throw std::invalid_argument(text);
    return v;
  } catch (const std::exception&) {
    fail(command_, ": option --", name, " wants a number, got '", text, "'");
  }
}

bool Args::flag(const std::string& name, const std::string& help) {
  declared_.push_back({"--" + name, help});
  used_[name] = true;
  auto it = values_.find(name);
  if (it == values_.end()) return false;
  if (it->second.back() != "\x01") {
    // `--flag value`: the value was really a positional argument.
    positional_.push_back(it->second.back());
    it->second.back() = "\x01";
  }
  return true;
}

std::vector<std::string> Args::get_all(const std::string& name, const std::string& help) {
  declared_.push_back({"--" + name + " VALUE (repeatable)", help});
  used_[name] = true;
  auto it = values_.find(name);
  if (it == values_.end()) return {};
  for (const std::string& v : it->second)
    if (v == "\x01") fail(command_, ": option --", name, " needs a value");
  return it->second;
}

std::vector<std::string> Args::positionals(const std::string& names, const std::string& help) {
  declared_.push_back({names, help});
  return positional_;
}

std::string Args::usage(const std::string& description) const {
  std::ostringstream out;
  out << "usage: payless " << command_ << " [options]\n\n" << description << "\n\noptions:\n";
  for (const auto& [synopsis, help] : declared_) out << "  " << synopsis << "\n      " << help << "\n";
  out << "  --help\n      print this help\n";
  return out.str();
}

void Args::finish() {
  for (const auto& [name, values] : values_)
    if (!used_.count(name))
      fail(command_, ": unknown option --", name, " (see 'payless ", command_, " --help')");
}

bool stderr_is_terminal() { return isatty(fileno(stderr)); }

}  // namespace payless::cli
