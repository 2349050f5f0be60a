// End-to-end tests of the `pinvault` CLI: the built binary is run as a child process (in its
// own session, so it has no terminal to prompt on) against a real pinvaultd server on
// 127.0.0.1:0 (tests/testing/server_test_fixture.h: real HTTP server, router and JWT checks in
// front of an in-memory realm).
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/testing/server_test_fixture.h"
#include "tests/testing/status_matchers.h"

extern char** environ;

namespace pinvault::api::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const char kBinary[] = PINVAULT_BINARY_DIR "/api/pinvault";

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// RunCli runs the binary with `args`, feeding `input` on stdin, in a new session (no
// controlling terminal). Fails the test if it runs for more than 60 s.
CliResult RunCli(const std::vector<std::string>& args, const std::string& input = "") {
  CliResult result;
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0 ||
      pipe2(err_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  std::vector<std::string> argv_strings = {kBinary};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int spawned = posix_spawn(&pid, kBinary, &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (spawned != 0) {
    ADD_FAILURE() << "cannot run " << kBinary << ": " << std::strerror(spawned);
    close(in_pipe[1]);
    close(out_pipe[0]);
    close(err_pipe[0]);
    return result;
  }
  // Feed stdin (small: fits the pipe buffer) and close it. The child may already have
  // exited without reading it (bad arguments): then the write fails with EPIPE, which must
  // not kill this process.
  signal(SIGPIPE, SIG_IGN);
  if (!input.empty()) {
    ssize_t n = write(in_pipe[1], input.data(), input.size());
    if (!(n < 0 && errno == EPIPE)) {
      EXPECT_EQ(n, static_cast<ssize_t>(input.size()));
    }
  }
  close(in_pipe[1]);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  bool timed_out = false;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    int ready = poll(fds, 2, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[4096];
      ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  if (timed_out) {
    kill(pid, SIGKILL);
    ADD_FAILURE() << "pinvault did not finish within 60 s";
  }
  for (pollfd& p : fds) {
    if (p.fd >= 0) close(p.fd);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

// TerminalStep: wait until the terminal shows `wait_for`, then type `send`.
struct TerminalStep {
  std::string wait_for;
  std::string send;
};

// RunOnTerminal runs the binary in a new session whose controlling terminal is a fresh
// pseudo-terminal, typing `steps` on it; stdout and stderr are pipes. If `stdin_on_terminal`
// the terminal is also stdin, else stdin is empty. `screen` receives all the terminal
// showed (the prompts and whatever was echoed).
CliResult RunOnTerminal(const std::vector<std::string>& args,
                        const std::vector<TerminalStep>& steps, bool stdin_on_terminal,
                        std::string* screen) {
  CliResult result;
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
    ADD_FAILURE() << "no pseudo-terminal: " << std::strerror(errno);
    return result;
  }
  std::string slave = ptsname(master);
  // Hold the terminal open here too, so that the master does not report a hang-up while
  // the child has no descriptor for it (it reopens it through /dev/tty).
  int slave_keepalive = open(slave.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
  EXPECT_GE(slave_keepalive, 0);
  int out_pipe[2], err_pipe[2];
  EXPECT_EQ(pipe2(out_pipe, O_CLOEXEC), 0);
  EXPECT_EQ(pipe2(err_pipe, O_CLOEXEC), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // Opening the terminal first, in the new session, makes it the controlling terminal.
  posix_spawn_file_actions_addopen(&actions, 10, slave.c_str(), O_RDWR, 0);
  if (stdin_on_terminal) {
    posix_spawn_file_actions_adddup2(&actions, 10, STDIN_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, 10);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  std::vector<std::string> argv_strings = {kBinary};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int spawned = posix_spawn(&pid, kBinary, &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (spawned != 0) {
    ADD_FAILURE() << "cannot run " << kBinary << ": " << std::strerror(spawned);
    close(master);
    close(slave_keepalive);
    close(out_pipe[0]);
    close(err_pipe[0]);
    return result;
  }
  size_t step = 0;
  size_t seen = 0;  // screen offset after which the next prompt is looked for
  pollfd fds[3] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}, {master, POLLIN, 0}};
  std::string* sinks[3] = {&result.out, &result.err, screen};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      kill(pid, SIGKILL);
      ADD_FAILURE() << "pinvault did not finish within 60 s; screen: " << *screen;
      break;
    }
    int ready = poll(fds, 3, static_cast<int>(left.count()));
    if (ready <= 0) continue;
    for (int i = 0; i < 3; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[4096];
      ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else {
        if (i < 2) close(fds[i].fd);
        fds[i].fd = -1;  // the terminal reports EIO once the child has closed it
      }
    }
    while (step < steps.size()) {
      size_t at = screen->find(steps[step].wait_for, seen);
      if (at == std::string::npos) break;
      seen = at + steps[step].wait_for.size();
      ssize_t n = write(master, steps[step].send.data(), steps[step].send.size());
      EXPECT_EQ(n, static_cast<ssize_t>(steps[step].send.size()));
      ++step;
    }
  }
  if (step < steps.size()) {
    ADD_FAILURE() << "the terminal never showed \"" << steps[step].wait_for
                  << "\"; screen: " << *screen;
  }
  close(master);
  close(slave_keepalive);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string Describe(const CliResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

class PinvaultCliTest : public ServerFixture {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pinvault_cli_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }

  void TearDown() override {
    ServerFixture::TearDown();
    std::filesystem::remove_all(dir_);
  }

  // Start runs the server and writes the configuration, keys file and PIN files.
  void Start(Setup setup = {}) {
    StartServer(setup);
    config_ = Write("realms.json", ConfigJson(server_->port()));
    keys_file_ = (dir_ / "tenant-keys.json").string();
    ASSERT_OK(keys_->SaveFile(keys_file_));
    pin_ = Write("pin", "1234\n");
    wrong_pin_ = Write("wrong-pin", "0000\n");
  }

  static std::string ConfigJson(uint16_t port) {
    return std::string("{\"realms\":[{\"id\":\"") + kRealmHex +
           "\",\"address\":\"http://127.0.0.1:" + std::to_string(port) +
           "/\"}],\"register_threshold\":1,\"recover_threshold\":1,"
           "\"pin_hashing_mode\":\"FastInsecure\"}";
  }

  std::string Write(const std::string& name, const std::string& content) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  std::vector<std::string> Mint(const std::string& user) {
    return {"--mint-tenant", "acme", "--mint-user", user, "--keys-file", keys_file_};
  }

  // Cmd builds "COMMAND --config CONFIG <auth for user> extra...".
  std::vector<std::string> Cmd(const std::string& command, const std::string& user,
                               std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {command, "--config", config_};
    for (std::string& a : Mint(user)) args.push_back(std::move(a));
    for (std::string& a : extra) args.push_back(std::move(a));
    return args;
  }

  CliResult Register(const std::string& user, const std::string& secret,
                     std::vector<std::string> extra = {}) {
    extra.insert(extra.begin(), {"--pin-file", pin_, "--guesses", "3"});
    return RunCli(Cmd("register", user, extra), secret);
  }

  std::filesystem::path dir_;
  std::string config_;
  std::string keys_file_;
  std::string pin_;
  std::string wrong_pin_;
};

// ---------------------------------------------------------------------------------------
// The operations.

TEST_F(PinvaultCliTest, RegistersAndRecoversABinarySecretFromStdin) {
  Start();
  std::string secret("key\0with\nnewlines and a NUL\n", 28);
  CliResult r = Register("alice", secret);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "registered\n");
  EXPECT_EQ(realm_->inner().State(Context("alice")),
            testing::InMemoryRealm::RecordState::kRegistered);
  EXPECT_THAT(r.out + r.err, Not(HasSubstr("1234")));  // the PIN is never printed

  r = RunCli(Cmd("recover", "alice", {"--pin-file", pin_}));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, secret);  // byte for byte, nothing added when stdout is not a terminal
}

TEST_F(PinvaultCliTest, WrongPinsCountDownUntilTheBackupIsDestroyed) {
  Start();
  ASSERT_EQ(Register("alice", "s3cret").exit_code, 0);
  CliResult r = RunCli(Cmd("recover", "alice", {"--pin-file", wrong_pin_}));
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("wrong PIN: 2 guesses remaining"));
  EXPECT_EQ(r.out, "");
  r = RunCli(Cmd("recover", "alice", {"--pin-file", wrong_pin_}));
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("wrong PIN: 1 guess remaining"));
  r = RunCli(Cmd("recover", "alice", {"--pin-file", wrong_pin_}));
  EXPECT_EQ(r.exit_code, 4) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("no guesses left: the backup is destroyed"));
  EXPECT_EQ(realm_->inner().GuessCount(Context("alice")), 3);
  // Gone for good: the right PIN does not bring it back (the realm erases the secrets on
  // this next attempt).
  r = RunCli(Cmd("recover", "alice", {"--pin-file", pin_}));
  EXPECT_EQ(r.exit_code, 4) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("no guesses left: the backup is destroyed"));
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(realm_->inner().State(Context("alice")),
            testing::InMemoryRealm::RecordState::kNoGuesses);
}

TEST_F(PinvaultCliTest, TheRightPinResetsTheCount) {
  Start();
  ASSERT_EQ(Register("alice", "s3cret").exit_code, 0);
  EXPECT_EQ(RunCli(Cmd("recover", "alice", {"--pin-file", wrong_pin_})).exit_code, 3);
  EXPECT_EQ(RunCli(Cmd("recover", "alice", {"--pin-file", wrong_pin_})).exit_code, 3);
  CliResult r = RunCli(Cmd("recover", "alice", {"--pin-file", pin_}));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "s3cret");
  r = RunCli(Cmd("recover", "alice", {"--pin-file", wrong_pin_}));
  EXPECT_THAT(r.err, HasSubstr("wrong PIN: 2 guesses remaining"));
}

TEST_F(PinvaultCliTest, AcceptsPreviousConfigurations) {
  Start();
  ASSERT_EQ(Register("alice", "kept").exit_code, 0);
  std::string previous = Write("previous.json", "[" + ConfigJson(server_->port()) + "]");
  CliResult r =
      RunCli(Cmd("recover", "alice", {"--pin-file", pin_, "--previous-configs", previous}));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "kept");
}

TEST_F(PinvaultCliTest, UsersAreSeparate) {
  Start();
  ASSERT_EQ(Register("alice", "alice's").exit_code, 0);
  CliResult r = RunCli(Cmd("recover", "bob", {"--pin-file", pin_}));
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("not registered"));
}

TEST_F(PinvaultCliTest, InfoMustMatch) {
  Start();
  ASSERT_EQ(Register("alice", "s", {"--info", "alice@example"}).exit_code, 0);
  CliResult r = RunCli(Cmd("recover", "alice", {"--pin-file", pin_, "--info", "other"}));
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  r = RunCli(Cmd("recover", "alice", {"--pin-file", pin_, "--info", "alice@example"}));
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "s");
}

TEST_F(PinvaultCliTest, RecoverWritesAPrivateOutputFile) {
  Start();
  ASSERT_EQ(Register("alice", "to a file").exit_code, 0);
  std::string out = (dir_ / "recovered").string();
  CliResult r = RunCli(Cmd("recover", "alice", {"--pin-file", pin_, "--out", out}));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "");
  std::ifstream in(out, std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "to a file");
  struct stat st;
  ASSERT_EQ(stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(PinvaultCliTest, SecretAndPinFromFiles) {
  Start();
  std::string secret_file = Write("secret", "from a file\n");
  std::string pin_file = Write("pin-crlf", "4321\r\nignored second line\n");
  CliResult r =
      RunCli(Cmd("register", "alice", {"--pin-file", pin_file, "--secret-file", secret_file}));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::string plain_pin = Write("pin-plain", "4321");  // same PIN without the line ending
  r = RunCli(Cmd("recover", "alice", {"--pin-file", plain_pin}));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "from a file\n");
}

TEST_F(PinvaultCliTest, DeleteRemovesTheBackup) {
  Start();
  ASSERT_EQ(Register("alice", "s").exit_code, 0);
  CliResult r = RunCli(Cmd("delete", "alice"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "deleted\n");
  EXPECT_EQ(realm_->inner().State(Context("alice")),
            testing::InMemoryRealm::RecordState::kNotRegistered);
  r = RunCli(Cmd("recover", "alice", {"--pin-file", pin_}));
  EXPECT_EQ(r.exit_code, 5) << Describe(r);
}

// ---------------------------------------------------------------------------------------
// Tokens from a command.

TEST_F(PinvaultCliTest, TokensFromACommand) {
  Start();
  std::string token = Token("carol");
  std::string script =
      Write("token.sh", std::string("#!/bin/sh\n") + "[ \"$1\" = \"" + kRealmHex +
                            "\" ] || exit 3\n[ \"$PINVAULT_REALM_ID\" = \"" + kRealmHex +
                            "\" ] || exit 4\necho '  " + token + "'\n");
  chmod(script.c_str(), 0700);
  CliResult r =
      RunCli({"register", "--config", config_, "--token-command", script, "--pin-file", pin_},
             "via command");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(realm_->inner().State(Context("carol")),
            testing::InMemoryRealm::RecordState::kRegistered);
  r = RunCli({"recover", "--config", config_, "--token-command", script, "--pin-file", pin_});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "via command");
  EXPECT_THAT(r.out + r.err, Not(HasSubstr(token)));
}

TEST_F(PinvaultCliTest, AFailingOrRejectedTokenIsAnAuthError) {
  Start();
  CliResult r =
      RunCli({"recover", "--config", config_, "--token-command", "exit 7 #", "--pin-file", pin_});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("auth error"));
  EXPECT_THAT(r.err, HasSubstr("exited with status 7"));

  r = RunCli(
      {"recover", "--config", config_, "--token-command", "echo not.a.jwt #", "--pin-file", pin_});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("HTTP 401"));

  // A token for another realm is refused too.
  std::string other = Token("alice", "ffffffffffffffffffffffffffffffff");
  r = RunCli({"recover", "--config", config_, "--token-command", "echo " + other + " #",
              "--pin-file", pin_});
  EXPECT_EQ(r.exit_code, 6) << Describe(r);
  EXPECT_EQ(realm_->submits(), 0);
}

TEST_F(PinvaultCliTest, MintingNeedsAKeyThatExists) {
  Start();
  CliResult r = RunCli({"recover", "--config", config_, "--pin-file", pin_, "--mint-tenant",
                        "nobody", "--mint-user", "u", "--keys-file", keys_file_});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("tenant nobody has no key"));
  r = RunCli({"recover", "--config", config_, "--pin-file", pin_, "--mint-tenant", "acme",
              "--mint-user", "u", "--keys-file", (dir_ / "missing.json").string()});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("cannot load tenant keys"));
  r = RunCli({"recover", "--config", config_, "--pin-file", pin_, "--mint-tenant", "acme",
              "--mint-user", "u", "--mint-version", "9", "--keys-file", keys_file_});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("no key version 9"));
}

// ---------------------------------------------------------------------------------------
// The terminal prompts.

TEST_F(PinvaultCliTest, PromptsForThePinAndSecretWithoutEcho) {
  Start();
  std::string screen;
  CliResult r = RunOnTerminal(Cmd("register", "alice"),
                              {{"Secret (hidden, one line): ", "typed secret\n"},
                               {"PIN: ", "2580\n"},
                               {"PIN again: ", "2580\n"}},
                              /*stdin_on_terminal=*/true, &screen);
  ASSERT_EQ(r.exit_code, 0) << Describe(r) << "\nscreen: " << screen;
  EXPECT_EQ(r.out, "registered\n");
  EXPECT_THAT(screen, Not(HasSubstr("2580")));
  EXPECT_THAT(screen, Not(HasSubstr("typed secret")));

  screen.clear();
  r = RunOnTerminal(Cmd("recover", "alice"), {{"PIN: ", "2580\n"}},
                    /*stdin_on_terminal=*/false, &screen);
  ASSERT_EQ(r.exit_code, 0) << Describe(r) << "\nscreen: " << screen;
  EXPECT_EQ(r.out, "typed secret");
  EXPECT_THAT(screen, Not(HasSubstr("2580")));
  EXPECT_THAT(screen, Not(HasSubstr("typed secret")));
}

TEST_F(PinvaultCliTest, RegisterRejectsDifferingPins) {
  Start();
  std::string screen;
  CliResult r = RunOnTerminal(Cmd("register", "alice", {"--secret-file", Write("s", "x")}),
                              {{"PIN: ", "2580\n"}, {"PIN again: ", "2581\n"}},
                              /*stdin_on_terminal=*/false, &screen);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("the two PINs differ"));
  EXPECT_EQ(realm_->submits(), 0);
}

// ---------------------------------------------------------------------------------------
// Realm-side refusals.

TEST_F(PinvaultCliTest, AnUnreachableRealmIsTransient) {
  Start();
  uint16_t port;
  {
    net::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    port = acceptor.local_endpoint().port();
  }
  std::string dead = Write("dead.json", ConfigJson(port));
  CliResult r = RunCli({"recover", "--config", dead, "--pin-file", pin_, "--mint-tenant", "acme",
                        "--mint-user", "u", "--keys-file", keys_file_});
  EXPECT_EQ(r.exit_code, 9) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("transient"));
}

TEST_F(PinvaultCliTest, AnOldClientIsToldToUpgrade) {
  Setup setup;
  setup.min_version = JuiceboxVersion{0, 4};
  Start(setup);
  CliResult r = Register("alice", "s");
  EXPECT_EQ(r.exit_code, 7) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("upgrade required"));
}

TEST_F(PinvaultCliTest, RateLimitingIsReported) {
  Setup setup;
  RateLimiterConfig limits;
  limits.user = TokenBucketConfig{0.001, 1};  // one request, then nothing for a long time
  setup.rate_limits = limits;
  Start(setup);
  CliResult r = Register("alice", "s");
  EXPECT_EQ(r.exit_code, 8) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("rate limited"));
}

// ---------------------------------------------------------------------------------------
// Bad input: clear errors, exit 2 (or 1 for unreadable files), nothing sent.

TEST_F(PinvaultCliTest, HelpAndUsage) {
  CliResult r = RunCli({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("Exit codes"));
  EXPECT_THAT(r.out, HasSubstr("pinvault register --config FILE"));
  r = RunCli({"recover", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  r = RunCli({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("usage"));
}

struct BadCase {
  std::vector<std::string> args;
  std::string input;
  int exit_code;
  std::string message;
};

TEST_F(PinvaultCliTest, BadArgumentsGetClearErrors) {
  Start();
  std::string long_pin = Write("long-pin", std::string(2000, '7'));
  std::string empty_pin = Write("empty-pin", "\n");
  std::string bad_json = Write("bad.json", "{\"realms\": [");
  std::string no_realms = Write("none.json",
                                "{\"realms\":[],\"register_threshold\":1,"
                                "\"recover_threshold\":1,\"pin_hashing_mode\":\"FastInsecure\"}");
  std::vector<std::string> auth = Mint("alice");
  auto with_auth = [&](std::vector<std::string> args) {
    args.insert(args.end(), auth.begin(), auth.end());
    return args;
  };
  const BadCase cases[] = {
      {{"frobnicate"}, "", 2, "unknown command \"frobnicate\""},
      {{"register", "--config", config_, "--bogus", "x"}, "", 2, "unknown option --bogus"},
      {{"register", "--config", config_, "--pin", "1234"}, "", 2, "--pin is not accepted"},
      {{"register", "--config", config_, "--secret", "x"}, "", 2, "--secret is not accepted"},
      {{"register", "--config"}, "", 2, "--config needs a value"},
      {{"register", "--config", config_, "--config", config_}, "", 2, "given twice"},
      {{"recover", "--config", config_, "--guesses", "3"},
       "",
       2,
       "recover does not take --guesses"},
      {{"delete", "--config", config_, "--pin-file", pin_},
       "",
       2,
       "delete does not take --pin-file"},
      {with_auth({"register", "--pin-file", pin_}), "s", 2, "--config FILE is required"},
      {with_auth({"register", "--config", (dir_ / "nope.json").string(), "--pin-file", pin_}), "s",
       1, "cannot open"},
      {with_auth({"register", "--config", bad_json, "--pin-file", pin_}), "s", 2,
       "configuration " + bad_json},
      {with_auth({"register", "--config", no_realms, "--pin-file", pin_}), "s", 2, "configuration"},
      {{"register", "--config", config_, "--pin-file", pin_}, "s", 2, "no auth"},
      {with_auth(
           {"recover", "--config", config_, "--pin-file", pin_, "--previous-configs", bad_json}),
       "", 2, "previous configurations " + bad_json},
      {with_auth(
           {"recover", "--config", config_, "--pin-file", pin_, "--previous-configs", config_}),
       "", 2, "previous configurations"},  // an object, not an array
      {with_auth({"register", "--config", config_, "--pin-file", pin_, "--token-command", "x"}),
       "s", 2, "either --token-command or --mint-tenant"},
      {{"register", "--config", config_, "--pin-file", pin_, "--mint-tenant", "acme"},
       "s",
       2,
       "needs both --mint-tenant and --mint-user"},
      {with_auth({"register", "--config", config_, "--pin-file", pin_, "--guesses", "0"}), "s", 2,
       "--guesses must be a whole number from 1 to 65535"},
      {with_auth({"register", "--config", config_, "--pin-file", pin_, "--guesses", "70000"}), "s",
       2, "--guesses must be"},
      {with_auth({"register", "--config", config_, "--pin-file", pin_, "--guesses", "3x"}), "s", 2,
       "--guesses must be"},
      {with_auth({"register", "--config", config_, "--pin-file", pin_, "--timeout", "0"}), "s", 2,
       "--timeout must be"},
      {with_auth({"register", "--config", config_, "--pin-file", pin_}), std::string(129, 'x'), 2,
       "longer than 128 bytes"},
      {with_auth({"register", "--config", config_, "--pin-file", pin_}), "", 2,
       "the secret on standard input is empty"},
      {with_auth({"register", "--config", config_, "--pin-file", pin_, "--secret-file",
                  (dir_ / "nope").string()}),
       "", 1, "cannot open"},
      {with_auth({"register", "--config", config_, "--pin-file", long_pin}), "s", 2, "too long"},
      {with_auth({"register", "--config", config_, "--pin-file", empty_pin}), "s", 2,
       "the PIN is empty"},
      {with_auth({"register", "--config", config_}), "s", 2,
       "no terminal to ask for the PIN; give it with --pin-file"},
      {with_auth({"recover", "--config", config_}), "", 2, "no terminal"},
      {with_auth({"register", "--config", config_, "--pin-file", pin_, "--ca-file",
                  (dir_ / "nope.pem").string()}),
       "s", 2, "cannot load CA file"},
  };
  for (const BadCase& c : cases) {
    std::string shown;
    for (const std::string& a : c.args) shown += a + " ";
    CliResult r = RunCli(c.args, c.input);
    EXPECT_EQ(r.exit_code, c.exit_code) << shown << "\n" << Describe(r);
    EXPECT_THAT(r.err, HasSubstr(c.message)) << shown;
    EXPECT_EQ(r.out, "") << shown;
  }
  EXPECT_EQ(realm_->submits(), 0);  // none of those reached the realm
  std::string exactly_128(128, 'y');
  CliResult r = Register("alice", exactly_128);
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(realm_->inner().State(Context("alice")),
            testing::InMemoryRealm::RecordState::kRegistered);
}

// ---------------------------------------------------------------------------------------
// `pinvault demo`: a whole realm (SoftHSM2 token, SQLite, HSM-backed core, HTTP server) in
// the CLI's process.

// DemoDirectory extracts the temporary directory the demo names in its first step.
std::string DemoDirectory(const std::string& out) {
  const std::string marker = " created in ";
  size_t at = out.find(marker);
  if (at == std::string::npos) return "";
  size_t start = at + marker.size();
  size_t end = out.find("/tokens", start);
  return end == std::string::npos ? "" : out.substr(start, end - start);
}

TEST(PinvaultDemoTest, EveryStepBehavesAsExpected) {
  CliResult r = RunCli({"demo"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, Not(HasSubstr("FAILED")));
  EXPECT_THAT(r.out, HasSubstr("pinvault-record-seal-1: AES-256 secret key"));
  EXPECT_THAT(r.out, HasSubstr("wrong PIN: 2 guesses remaining"));
  EXPECT_THAT(r.out, HasSubstr("wrong PIN: 1 guess remaining"));
  EXPECT_THAT(r.out, HasSubstr("recovered \"alice's messaging identity key backup\""));
  EXPECT_THAT(r.out, HasSubstr("no guesses left: the backup is destroyed"));
  EXPECT_THAT(r.out, HasSubstr("realm's record for bob: NoGuesses"));
  EXPECT_THAT(r.out, HasSubstr("after delete: not registered"));
  EXPECT_THAT(r.out, HasSubstr("demo passed"));
  EXPECT_EQ(r.err, "");
  std::string dir = DemoDirectory(r.out);
  ASSERT_FALSE(dir.empty()) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir)) << "the demo left " << dir << " behind";
}

TEST(PinvaultDemoTest, KeepLeavesTheRealmsFiles) {
  CliResult r = RunCli({"demo", "--keep"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::string dir = DemoDirectory(r.out);
  ASSERT_FALSE(dir.empty()) << r.out;
  EXPECT_THAT(r.out, HasSubstr("kept " + dir));
  EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(dir) / "data" / "records.sqlite"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pinvault::api::test
