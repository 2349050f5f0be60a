#include "tests/testing/child_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

extern char** environ;

namespace pinvault::testing {
namespace {

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// EnvName returns the part of "NAME=value" before '='.
std::string EnvName(const std::string& entry) { return entry.substr(0, entry.find('=')); }

// BuildEnv is the test's environment without `unset_env` and the names `set_env` sets, then
// `set_env`.
std::vector<std::string> BuildEnv(const std::vector<std::string>& set_env,
                                  const std::vector<std::string>& unset_env) {
  std::vector<std::string> removed = unset_env;
  for (const std::string& entry : set_env) removed.push_back(EnvName(entry));
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    bool drop = false;
    for (const std::string& name : removed) drop = drop || EnvName(entry) == name;
    if (!drop) env.push_back(std::move(entry));
  }
  env.insert(env.end(), set_env.begin(), set_env.end());
  return env;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Spawn starts `binary` with `args` (argv[0] is `binary`) and the given streams.
pid_t Spawn(const std::string& binary, const std::vector<std::string>& args,
            std::vector<std::string> env, const std::string& stdout_path,
            const std::string& stderr_path) {
  std::vector<std::string> argv = {binary};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> argp = Pointers(argv);
  std::vector<char*> envp = Pointers(env);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, stdout_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << binary << ": " << std::strerror(rc);
    return -1;
  }
  return pid;
}

}  // namespace

ProgramOutput RunCaptured(const std::vector<std::string>& argv,
                          const std::vector<std::string>& set_env,
                          const std::vector<std::string>& unset_env) {
  ProgramOutput result;
  if (argv.empty()) {
    ADD_FAILURE() << "RunCaptured: empty argv";
    return result;
  }
  std::string pattern = ::testing::TempDir() + "pinvault-run-XXXXXX";
  std::vector<char> dir(pattern.begin(), pattern.end());
  dir.push_back('\0');
  if (::mkdtemp(dir.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << pattern << ": " << std::strerror(errno);
    return result;
  }
  const std::string out_path = std::string(dir.data()) + "/stdout";
  const std::string err_path = std::string(dir.data()) + "/stderr";
  pid_t pid = Spawn(argv[0], std::vector<std::string>(argv.begin() + 1, argv.end()),
                    BuildEnv(set_env, unset_env), out_path, err_path);
  if (pid > 0) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  }
  result.out = ReadWholeFile(out_path);
  result.err = ReadWholeFile(err_path);
  ::unlink(out_path.c_str());
  ::unlink(err_path.c_str());
  ::rmdir(dir.data());
  return result;
}

DaemonProcess::DaemonProcess(const std::string& binary, const std::vector<std::string>& args,
                             const std::vector<std::string>& set_env, const std::string& log_path,
                             const std::vector<std::string>& unset_env)
    : log_path_(log_path) {
  pid_ = Spawn(binary, args, BuildEnv(set_env, unset_env), "/dev/null", log_path);
  if (pid_ <= 0) exited_ = true;
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0 && !exited_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

uint16_t DaemonProcess::WaitForPort() {
  std::regex listening(R"re("event":"listening".*"port":([0-9]+))re");
  for (int i = 0; i < 3000; ++i) {
    std::smatch m;
    std::string log = Log();
    if (std::regex_search(log, m, listening)) return static_cast<uint16_t>(std::stoi(m[1]));
    if (Exited()) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 0;
}

bool DaemonProcess::Exited() {
  if (exited_) return true;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    exited_ = true;
    status_ = status;
  }
  return exited_;
}

int DaemonProcess::Wait() {
  for (int i = 0; i < 6000 && !Exited(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!exited_ || pid_ <= 0) return -1;
  return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
}

void DaemonProcess::Signal(int signal) {
  if (pid_ > 0 && !exited_) ::kill(pid_, signal);
}

std::string DaemonProcess::Log() const { return ReadWholeFile(log_path_); }

}  // namespace pinvault::testing
