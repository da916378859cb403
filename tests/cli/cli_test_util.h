// Runs the frugal CLI as a child process and captures stdout, stderr and how
// it ended, so tests check exactly what a user sees.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace frugal::testing {

struct CommandResult {
  int exit_code = -1;      // valid when !signaled
  bool signaled = false;   // killed by a signal (a crash)
  std::string out;
  std::string err;
};

inline std::string shell_quote(const std::string& s) {
  std::string r = "'";
  for (char c : s) r += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return r + "'";
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `frugal ARGS...`.
inline CommandResult run_cli(const std::vector<std::string>& args) {
  char dir_template[] = "/tmp/frugal-cli-XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  std::string cmd = shell_quote(FRUGAL_CLI);
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " >" + dir + "/out 2>" + dir + "/err </dev/null";
  const int status = std::system(cmd.c_str());
  CommandResult r;
  // system() runs sh -c; a child killed by a signal shows as 128+N from the shell.
  if (WIFSIGNALED(status)) {
    r.signaled = true;
  } else if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
    if (r.exit_code > 128) r.signaled = true;
  }
  r.out = slurp(dir + "/out");
  r.err = slurp(dir + "/err");
  std::remove((dir + "/out").c_str());
  std::remove((dir + "/err").c_str());
  rmdir(dir.c_str());
  return r;
}

}  // namespace frugal::testing
