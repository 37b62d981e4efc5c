// The `payless` program's plumbing: subcommand registration and argument parsing.
//
// Each subcommand is one file in apps/ that registers itself with a static Command object, so
// adding a subcommand touches no other file. Arguments are `--name value`, `--flag` and
// positionals; an option the subcommand did not declare is an error naming it, never ignored.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace payless::cli {

class Args;

struct Command {
  Command(std::string name, std::string summary, std::function<int(Args&)> run);
};

struct CommandInfo {
  std::string summary;
  std::function<int(Args&)> run;
};
std::map<std::string, CommandInfo>& commands();

class Args {
 public:
  Args(std::string command, std::vector<std::string> argv);

  // Declare options before reading them; usage() lists them for --help.
  std::string get(const std::string& name, const std::string& fallback, const std::string& help);
  std::string require(const std::string& name, const std::string& help);
  int64_t get_int(const std::string& name, int64_t fallback, const std::string& help);
  double get_double(const std::string& name, double fallback, const std::string& help);
  bool flag(const std::string& name, const std::string& help);
  // Options that may repeat (e.g. `--set key=value`), in order.
  std::vector<std::string> get_all(const std::string& name, const std::string& help);
  std::vector<std::string> positionals(const std::string& names, const std::string& help);

  // True when --help was given: print usage() and exit 0.
  bool wants_help() const { return help_; }
  std::string usage(const std::string& description) const;
  // Throws naming any option that was given but never declared.
  void finish();

 private:
  std::string command_;
  std::map<std::string, std::vector<std::string>> values_;
  std::map<std::string, bool> used_;
  std::vector<std::string> positional_;
  std::vector<std::pair<std::string, std::string>> declared_;  // (synopsis, help)
  bool help_ = false;
};

// A progress line on stderr that redraws itself on a terminal and stays quiet otherwise.
bool stderr_is_terminal();

}  // namespace payless::cli
