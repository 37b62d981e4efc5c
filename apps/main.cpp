// payless: one program, one subcommand per file in apps/ (see apps/cli.h).
#include <cstdio>
#include <exception>

#include "apps/cli.h"
#include "core/error.h"
#include "core/parallel.h"

using namespace payless;

static void print_overview() {
  std::printf(
      "payless: lightweight and dynamic convolutions, attention and the models of\n"
      "\"Pay Less Attention with Lightweight and Dynamic Convolutions\" on your CPU.\n\n"
      "usage: payless COMMAND [options]     (payless COMMAND --help for its options)\n\ncommands:\n");
  for (const auto& [name, info] : cli::commands()) std::printf("  %-10s %s\n", name.c_str(), info.summary.c_str());
}

int main(int argc, char** argv) {
  payless::default_to_passive_wait_policy(argv);  // may re-run the program; see core/parallel.h
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    print_overview();
    return argc < 2 ? 2 : 0;
  }
  const std::string name = argv[1];
  auto it = cli::commands().find(name);
  if (it == cli::commands().end()) {
    std::fprintf(stderr, "payless: unknown command '%s'\n\n", name.c_str());
    print_overview();
    return 2;
  }
  try {
    cli::Args args(name, std::vector<std::string>(argv + 2, argv + argc));
    return it->second.run(args);
  } catch (const Error& e) {
    std::fprintf(stderr, "payless %s: error: %s\n", name.c_str(), e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "payless %s: unexpected error: %s\n", name.c_str(), e.what());
    return 1;
  }
}
