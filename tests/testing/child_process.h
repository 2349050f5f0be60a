// Child processes for tests that run the built binaries: RunCaptured runs a command to its end
// and returns its exit code, standard output and standard error apart; DaemonProcess runs a
// server (pinvaultd) in the background with its standard error in a log file.
//
// Children are started with posix_spawn from an argument vector (no shell, no PATH search),
// with the test's environment minus the variables a test names and plus the ones it sets, so
// that a variable set in the developer's shell (PINVAULT_STORE_URI, ...) cannot change what a
// test sees. Standard input is /dev/null.
//
// Thread-safety: a DaemonProcess is used from one thread at a time.
#ifndef PINVAULT_TESTS_TESTING_CHILD_PROCESS_H_
#define PINVAULT_TESTS_TESTING_CHILD_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pinvault::testing {

// ProgramOutput is how a program run by RunCaptured ended.
struct ProgramOutput {
  int exit_code = -1;  // -1: it could not be started, or a signal ended it
  std::string out;     // its standard output
  std::string err;     // its standard error
};

// RunCaptured runs `argv` (argv[0] a path) with the test's environment, minus every variable
// named in `unset_env`, plus `set_env` ("NAME=value", replacing an inherited NAME), and waits
// for it. A spawn failure fails the test and returns exit_code -1.
ProgramOutput RunCaptured(const std::vector<std::string>& argv,
                          const std::vector<std::string>& set_env = {},
                          const std::vector<std::string>& unset_env = {});

// DaemonProcess is one background process with standard error written to `log_path` and
// standard output discarded; the environment is built as RunCaptured's. The destructor kills
// (SIGKILL) and reaps it if it is still running.
class DaemonProcess {
 public:
  DaemonProcess(const std::string& binary, const std::vector<std::string>& args,
                const std::vector<std::string>& set_env, const std::string& log_path,
                const std::vector<std::string>& unset_env = {});
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // WaitForPort reads the port of pinvaultd's "listening" event from the log, waiting up to
  // 30 s; 0 if the process exited first or the time ran out.
  uint16_t WaitForPort();

  // Exited is true once the process has ended (it is reaped then).
  bool Exited();

  // Wait waits up to 60 s for the exit and returns the exit code (-1 on a signal or timeout).
  int Wait();

  // Signal sends `signal` to the process.
  void Signal(int signal);

  // Log returns the standard error written so far.
  std::string Log() const;

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

}  // namespace pinvault::testing

#endif  // PINVAULT_TESTS_TESTING_CHILD_PROCESS_H_
