// pinvault: the command-line client. Registers, recovers and deletes a PIN-protected
// secret on Juicebox-protocol realms over HTTP(S), and runs a self-contained demo.
// `pinvault --help` documents the commands, options and exit codes.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "api/auth/tenant_keys.h"
#include "api/client/http_transport.h"
#include "api/client/jwt_mint.h"
#include "api/cmd/cli_args.h"
#include "api/cmd/demo.h"
#include "backup/client/client.h"
#include "backup/client/configuration.h"
#include "vault/bytes.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

extern char** environ;

namespace pinvault::api {
namespace {

// Exit codes (also in kUsage).
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitWrongPin = 3;
constexpr int kExitNoGuesses = 4;
constexpr int kExitNotRegistered = 5;
constexpr int kExitInvalidAuth = 6;
constexpr int kExitUpgradeRequired = 7;
constexpr int kExitRateLimited = 8;
constexpr int kExitTransient = 9;
constexpr int kExitAssertion = 10;

constexpr size_t kMaxPinBytes = 1024;
constexpr size_t kMaxConfigBytes = 1 << 20;
constexpr size_t kMaxTokenBytes = 16 * 1024;
constexpr uint16_t kDefaultGuesses = 10;
constexpr int kDefaultTimeoutSeconds = 10;
constexpr std::chrono::seconds kTokenCommandTimeout{60};
constexpr char kDefaultKeysFile[] = "var/tenant-keys.json";

constexpr char kUsage[] = R"(usage: pinvault COMMAND [OPTIONS]

Commands:
  register   store a secret under a PIN on the configured realms
  recover    get the secret back with the PIN (printed to stdout, or --out FILE)
  delete     remove the secret from every configured realm
  demo       run a self-contained realm on 127.0.0.1 (SoftHSM2 token + SQLite in a
             temporary directory) and walk through register, wrong PINs, recover and
             exhaustion; exits 0 if every step behaves as expected
  help       show this text

  pinvault register --config FILE [--pin-file FILE] [--secret-file FILE] [--info TEXT]
                    [--guesses N] AUTH [--previous-configs FILE] [--ca-file FILE] [--timeout S]
  pinvault recover  --config FILE [--pin-file FILE] [--info TEXT] [--out FILE]
                    AUTH [--previous-configs FILE] [--ca-file FILE] [--timeout S]
  pinvault delete   --config FILE AUTH [--ca-file FILE] [--timeout S]
  pinvault demo     [--keep]

Options:
  --config FILE            realm configuration, the JSON the Juicebox SDK takes:
                           {"realms":[{"id":"<32 hex>","address":"https://realm/"}],
                            "register_threshold":1,"recover_threshold":1,
                            "pin_hashing_mode":"Standard2019"}
  --previous-configs FILE  JSON array of earlier configurations, most recent first;
                           recover falls back to them when not registered in --config
  --pin-file FILE          read the PIN from the first line of FILE; without it the PIN is
                           asked for on the terminal (no echo; twice for register). The
                           PIN is never taken from the command line and never printed.
  --secret-file FILE       the secret to register, taken byte for byte (at most 128
                           bytes); "-" or no option reads standard input (on a terminal:
                           one hidden line)
  --info TEXT              public info mixed into the PIN hash (e.g. a user id); recover
                           must give the same. Default: empty
  --guesses N              wrong PINs allowed before the backup is destroyed (1..65535,
                           default 10)
  --out FILE               recover: write the secret to FILE (mode 0600) instead of stdout
  --ca-file FILE           PEM CA certificates to trust for https realms instead of the
                           system trust store
  --timeout S              seconds to wait for each realm request (default 10)

AUTH, one of:
  --token-command CMD      run CMD with /bin/sh once per realm, with the realm id (32
                           lowercase hex) appended as its last argument and in
                           $PINVAULT_REALM_ID; its standard output is the realm's token,
                           e.g. --token-command 'pinvault-admin token mint --tenant acme
                           --user alice --realm'
  --mint-tenant NAME --mint-user USER [--mint-version N] [--keys-file PATH]
                           for testing: mint tokens (aud = realm id, sub = USER, 10 minutes)
                           with the tenant's private key from the keys file (default
                           $PINVAULT_TENANT_KEYS_FILE, else var/tenant-keys.json; the
                           latest version unless --mint-version)

Exit codes:
  0   success ("registered", the secret, "deleted")
  1   other failure (a file cannot be read or written, an internal error)
  2   bad usage or bad input (unknown option, bad configuration, secret too long, ...)
  3   wrong PIN; guesses remain ("wrong PIN: N guesses remaining")
  4   no guesses left: the backup is destroyed
  5   not registered
  6   a realm rejected the auth token, or no token could be had
  7   a realm requires a newer client
  8   a realm is rate limiting; try again later
  9   realms unreachable or failing (transient); try again later
  10  a realm misbehaved or realms disagree (assertion)
)";

// Outcome: an exit code and what to tell the user on stderr.
struct Outcome {
  int code = kExitOk;
  std::string message;
};

Outcome UsageError(std::string message) {
  return Outcome{kExitUsage, std::move(message) + "\n(see pinvault --help)"};
}

// ---------------------------------------------------------------------------------------
// Arguments.

// Args: the parsed command line; `command` is the one positional word allowed.
struct Args : cli::ParsedArgs {
  std::string command;
};

const std::set<std::string> kValued = {
    "config",       "previous-configs", "pin-file", "secret-file",   "info",        "guesses",
    "out",          "ca-file",          "timeout",  "token-command", "mint-tenant", "mint-user",
    "mint-version", "keys-file"};
const std::set<std::string> kSwitches = {"help", "keep"};

// Options each command accepts (beyond --help).
const std::map<std::string, std::set<std::string>> kCommandOptions = {
    {"register",
     {"config", "previous-configs", "pin-file", "secret-file", "info", "guesses", "ca-file",
      "timeout", "token-command", "mint-tenant", "mint-user", "mint-version", "keys-file"}},
    {"recover",
     {"config", "previous-configs", "pin-file", "info", "out", "ca-file", "timeout",
      "token-command", "mint-tenant", "mint-user", "mint-version", "keys-file"}},
    {"delete",
     {"config", "ca-file", "timeout", "token-command", "mint-tenant", "mint-user", "mint-version",
      "keys-file"}},
    {"demo", {"keep"}},
};

StatusOr<Args> ParseArgs(const std::vector<std::string>& argv) {
  auto refuse_secrets = [](std::string_view name) -> Status {
    if (name != "pin" && name != "secret") return OkStatus();
    std::string n(name);
    return InvalidArgumentError("--" + n + " is not accepted: a " + n +
                                " on the command line would be visible to other users "
                                "and kept in shell history; use --" +
                                n + "-file FILE or the prompt");
  };
  ASSIGN_OR_RETURN(cli::ParsedArgs parsed,
                   cli::ParseArgs(argv, kValued, kSwitches, refuse_secrets));
  Args out;
  static_cast<cli::ParsedArgs&>(out) = std::move(parsed);
  if (!out.positional.empty()) out.command = out.positional[0];
  if (out.positional.size() > 1) {
    // Not quoted: a stray word might be a PIN typed in the wrong place.
    return InvalidArgumentError("unexpected extra argument after \"" + out.command +
                                "\" (options start with --)");
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Reading files, the PIN and the secret.

// ReadFd reads `fd` to its end into secure memory. OUT_OF_RANGE if it holds more than
// `max` bytes.
StatusOr<SecretBytes> ReadFd(int fd, size_t max) {
  SecretBytes buffer(max + 1);
  size_t n = 0;
  while (n < buffer.size()) {
    ssize_t got = ::read(fd, buffer.RevealMutable().data() + n, buffer.size() - n);
    if (got < 0) {
      if (errno == EINTR) continue;
      return UnavailableError(std::strerror(errno));
    }
    if (got == 0) break;
    n += static_cast<size_t>(got);
  }
  if (n > max) return OutOfRangeError("more than " + std::to_string(max) + " bytes");
  SecretBytes out = SecretBytes::CopyFrom(buffer.Reveal().first(n));
  return out;
}

// ReadFile reads a whole file (at most `max` bytes) into secure memory.
StatusOr<SecretBytes> ReadFile(const std::string& path, size_t max) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFoundError("cannot open " + path + ": " + std::strerror(errno));
  StatusOr<SecretBytes> data = ReadFd(fd, max);
  ::close(fd);
  if (!data.ok()) return data.status().WithContext(path);
  return data;
}

// FirstLine returns `data` up to its first "\n" (a "\r" before it is dropped too).
SecretBytes FirstLine(const SecretBytes& data) {
  std::span<const uint8_t> bytes = data.Reveal();
  size_t end = 0;
  while (end < bytes.size() && bytes[end] != '\n') ++end;
  if (end > 0 && bytes[end - 1] == '\r') --end;
  return SecretBytes::CopyFrom(bytes.first(end));
}

// The terminal state to restore if a signal arrives while echo is off.
int g_tty_fd = -1;
struct termios g_saved_termios;

extern "C" void RestoreTerminalAndDie(int signal_number) {
  if (g_tty_fd >= 0) ::tcsetattr(g_tty_fd, TCSAFLUSH, &g_saved_termios);
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

// ReadHiddenLine shows `prompt` on the terminal `fd` and reads one line with echo off.
// The prompt is shown only once echo is off, so nothing typed after it can appear.
StatusOr<SecretBytes> ReadHiddenLine(int fd, std::string_view prompt, size_t max) {
  struct termios saved;
  if (::tcgetattr(fd, &saved) != 0) return UnavailableError("cannot read terminal settings");
  struct termios quiet = saved;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  quiet.c_lflag |= ECHONL;
  g_saved_termios = saved;
  g_tty_fd = fd;
  struct sigaction action {};
  action.sa_handler = RestoreTerminalAndDie;
  struct sigaction old_int, old_term, old_hup;
  ::sigaction(SIGINT, &action, &old_int);
  ::sigaction(SIGTERM, &action, &old_term);
  ::sigaction(SIGHUP, &action, &old_hup);
  if (::tcsetattr(fd, TCSAFLUSH, &quiet) != 0) {
    g_tty_fd = -1;
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGTERM, &old_term, nullptr);
    ::sigaction(SIGHUP, &old_hup, nullptr);
    return UnavailableError("cannot turn off terminal echo");
  }
  SecretBytes line(max + 1);
  size_t n = 0;
  bool too_long = false;
  Status status;
  if (::write(fd, prompt.data(), prompt.size()) < 0) {
    status = UnavailableError("cannot write to the terminal");
  }
  while (status.ok()) {
    uint8_t c;
    ssize_t got = ::read(fd, &c, 1);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      status = UnavailableError("cannot read from the terminal");
      break;
    }
    if (got == 0 || c == '\n') break;
    if (n < line.size()) {
      line.RevealMutable()[n++] = c;
    } else {
      too_long = true;
    }
    c = 0;
  }
  ::tcsetattr(fd, TCSAFLUSH, &saved);
  g_tty_fd = -1;
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigaction(SIGHUP, &old_hup, nullptr);
  RETURN_IF_ERROR(status);
  if (n > 0 && line.Reveal()[n - 1] == '\r') --n;
  if (too_long || n > max) {
    return OutOfRangeError("longer than " + std::to_string(max) + " bytes");
  }
  return SecretBytes::CopyFrom(line.Reveal().first(n));
}

// ReadPin gets the PIN from --pin-file or the terminal (asking twice if `confirm`).
StatusOr<SecretBytes> ReadPin(const Args& args, bool confirm) {
  SecretBytes pin;
  if (const std::string* file = args.Get("pin-file")) {
    StatusOr<SecretBytes> data = ReadFile(*file, kMaxPinBytes + 2);
    if (!data.ok()) {
      if (data.status().code() == StatusCode::kOutOfRange) {
        return InvalidArgumentError("the PIN file " + *file + " is too long (at most " +
                                    std::to_string(kMaxPinBytes) + " bytes)");
      }
      return data.status();
    }
    pin = FirstLine(*data);
    if (pin.size() > kMaxPinBytes) {
      return InvalidArgumentError("the PIN is longer than " + std::to_string(kMaxPinBytes) +
                                  " bytes");
    }
  } else {
    int tty = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (tty < 0) {
      return FailedPreconditionError(
          "no terminal to ask for the PIN; give it with --pin-file FILE");
    }
    StatusOr<SecretBytes> first = ReadHiddenLine(tty, "PIN: ", kMaxPinBytes);
    if (first.ok() && confirm) {
      StatusOr<SecretBytes> second = ReadHiddenLine(tty, "PIN again: ", kMaxPinBytes);
      if (!second.ok()) {
        first = second.status();
      } else if (!first->Equals(*second)) {
        first = InvalidArgumentError("the two PINs differ");
      }
    }
    ::close(tty);
    if (!first.ok()) {
      if (first.status().code() == StatusCode::kOutOfRange) {
        return InvalidArgumentError("the PIN is longer than " + std::to_string(kMaxPinBytes) +
                                    " bytes");
      }
      return first.status();
    }
    pin = std::move(first).value();
  }
  if (pin.empty()) return InvalidArgumentError("the PIN is empty");
  return pin;
}

// ReadSecret gets the secret from --secret-file or standard input.
StatusOr<SecretBytes> ReadSecret(const Args& args) {
  const std::string* file = args.Get("secret-file");
  StatusOr<SecretBytes> secret = InternalError("unset");
  std::string source;
  if (file != nullptr && *file != "-") {
    source = "the secret file " + *file;
    secret = ReadFile(*file, protocol::kMaxSecretSize);
  } else if (::isatty(STDIN_FILENO)) {
    source = "the secret";
    secret = ReadHiddenLine(STDIN_FILENO, "Secret (hidden, one line): ", protocol::kMaxSecretSize);
  } else {
    source = "the secret on standard input";
    secret = ReadFd(STDIN_FILENO, protocol::kMaxSecretSize);
  }
  if (!secret.ok()) {
    if (secret.status().code() == StatusCode::kOutOfRange) {
      return InvalidArgumentError(source + " is longer than " +
                                  std::to_string(protocol::kMaxSecretSize) +
                                  " bytes, the most a realm stores");
    }
    return secret.status().WithContext("cannot read " + source);
  }
  if (secret->empty()) return InvalidArgumentError(source + " is empty");
  return secret;
}

// ---------------------------------------------------------------------------------------
// Auth tokens.

// TrimToken drops surrounding whitespace from a command's output.
std::string TrimToken(std::string text) {
  auto is_space = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
  while (!text.empty() && is_space(text.back())) text.pop_back();
  size_t start = 0;
  while (start < text.size() && is_space(text[start])) ++start;
  return text.substr(start);
}

// CommandTokenProvider runs a shell command per realm (once; the token is cached for the
// run). Thread-safe: one command runs at a time.
class CommandTokenProvider : public backup::AuthTokenProvider {
 public:
  explicit CommandTokenProvider(std::string command) : command_(std::move(command)) {}

  StatusOr<std::string> GetToken(const protocol::RealmId& realm) override {
    std::lock_guard lock(mu_);
    if (auto it = cache_.find(realm); it != cache_.end()) return it->second;
    ASSIGN_OR_RETURN(std::string token, Run(backup::RealmIdHex(realm)));
    cache_[realm] = token;
    return token;
  }

 private:
  StatusOr<std::string> Run(const std::string& realm_hex) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
      return UnavailableError(std::string("token command: pipe: ") + std::strerror(errno));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    // The command must not read our standard input (it may hold the secret) or the
    // terminal the PIN is typed on.
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    std::string script = command_ + " \"$1\"";
    std::vector<std::string> env_strings;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      if (std::string_view(*e).starts_with("PINVAULT_REALM_ID=")) continue;
      env_strings.emplace_back(*e);
    }
    env_strings.push_back("PINVAULT_REALM_ID=" + realm_hex);
    std::vector<char*> envp;
    for (std::string& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string arg0 = "sh", arg1 = "-c", arg3 = "pinvault-token-command";
    std::string arg4 = realm_hex;
    char* argv[] = {arg0.data(), arg1.data(), script.data(), arg3.data(), arg4.data(), nullptr};
    pid_t pid = 0;
    int spawned = posix_spawn(&pid, "/bin/sh", &actions, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(pipe_fds[1]);
    if (spawned != 0) {
      ::close(pipe_fds[0]);
      return UnavailableError(std::string("cannot run the token command: ") +
                              std::strerror(spawned));
    }
    std::string output;
    bool too_long = false;
    bool timed_out = false;
    auto deadline = std::chrono::steady_clock::now() + kTokenCommandTimeout;
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        timed_out = true;
        break;
      }
      pollfd p{pipe_fds[0], POLLIN, 0};
      int ready = ::poll(&p, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) {
        timed_out = ready == 0;
        break;
      }
      char buffer[4096];
      ssize_t got = ::read(pipe_fds[0], buffer, sizeof(buffer));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) break;
      output.append(buffer, static_cast<size_t>(got));
      if (output.size() > kMaxTokenBytes) {
        too_long = true;
        break;
      }
    }
    ::close(pipe_fds[0]);
    if (timed_out || too_long) ::kill(pid, SIGKILL);
    int wait_status = 0;
    while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) {
      return DeadlineExceededError("the token command did not finish within " +
                                   std::to_string(kTokenCommandTimeout.count()) + " s");
    }
    if (too_long) return InvalidArgumentError("the token command printed too much");
    if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) {
      std::string how = WIFEXITED(wait_status)
                            ? "exited with status " + std::to_string(WEXITSTATUS(wait_status))
                            : "was killed by signal " + std::to_string(WTERMSIG(wait_status));
      return UnavailableError("the token command " + how + " for realm " + realm_hex);
    }
    std::string token = TrimToken(std::move(output));
    if (token.empty()) {
      return InvalidArgumentError("the token command printed nothing for realm " + realm_hex);
    }
    return token;
  }

  const std::string command_;
  std::mutex mu_;
  std::map<protocol::RealmId, std::string> cache_;  // guarded by mu_
};

StatusOr<uint64_t> ParseUnsigned(const std::string& text, const std::string& what, uint64_t min,
                                 uint64_t max) {
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    return InvalidArgumentError(what + " must be a whole number from " + std::to_string(min) +
                                " to " + std::to_string(max) + ", not \"" + text + "\"");
  }
  return value;
}

StatusOr<std::shared_ptr<backup::AuthTokenProvider>> MakeTokenProvider(const Args& args) {
  const std::string* command = args.Get("token-command");
  const std::string* tenant = args.Get("mint-tenant");
  const std::string* user = args.Get("mint-user");
  bool minting = tenant != nullptr || user != nullptr || args.Get("mint-version") != nullptr ||
                 args.Get("keys-file") != nullptr;
  if (command != nullptr && minting) {
    return InvalidArgumentError(
        "give either --token-command or --mint-tenant/--mint-user, "
        "not both");
  }
  if (command != nullptr) {
    if (TrimToken(*command).empty()) return InvalidArgumentError("--token-command is empty");
    return std::shared_ptr<backup::AuthTokenProvider>(
        std::make_shared<CommandTokenProvider>(*command));
  }
  if (!minting) {
    return InvalidArgumentError(
        "no auth: give --token-command CMD, or --mint-tenant NAME --mint-user USER for testing");
  }
  if (tenant == nullptr || user == nullptr) {
    return InvalidArgumentError("minting tokens needs both --mint-tenant and --mint-user");
  }
  if (!IsValidTenantName(*tenant)) {
    return InvalidArgumentError("--mint-tenant \"" + *tenant + "\" is not a tenant name");
  }
  if (user->empty()) return InvalidArgumentError("--mint-user is empty");
  std::string keys_file = kDefaultKeysFile;
  if (const std::string* file = args.Get("keys-file")) {
    keys_file = *file;
  } else if (const char* env = std::getenv("PINVAULT_TENANT_KEYS_FILE"); env && *env) {
    keys_file = env;
  }
  StatusOr<std::unique_ptr<TenantKeyStore>> store = TenantKeyStore::LoadFile(keys_file, nullptr);
  if (!store.ok()) {
    return FailedPreconditionError("cannot load tenant keys from " + keys_file + ": " +
                                   store.status().message());
  }
  uint64_t version = 0;
  if (const std::string* text = args.Get("mint-version")) {
    ASSIGN_OR_RETURN(version, ParseUnsigned(*text, "--mint-version", 0, UINT64_MAX));
  } else {
    std::optional<uint64_t> latest = (*store)->LatestVersion(*tenant);
    if (!latest) {
      return FailedPreconditionError("tenant " + *tenant + " has no key in " + keys_file);
    }
    version = *latest;
  }
  std::optional<TenantKey> key = (*store)->Find(*tenant, version);
  if (!key) {
    return FailedPreconditionError("tenant " + *tenant + " has no key version " +
                                   std::to_string(version) + " in " + keys_file);
  }
  if (!key->can_sign()) {
    return FailedPreconditionError("the key " + *tenant + ":" + std::to_string(version) + " in " +
                                   keys_file + " has no private part to sign with");
  }
  return std::shared_ptr<backup::AuthTokenProvider>(
      std::make_shared<MintTokenProvider>(*key, *tenant, version, *user));
}

// ---------------------------------------------------------------------------------------
// Commands.

Outcome FromStatus(const Status& status) {
  int code = status.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  if (status.code() == StatusCode::kFailedPrecondition) code = kExitUsage;
  return Outcome{code, status.message()};
}

// FromClientError turns a failed operation into the user's message and exit code.
Outcome FromClientError(const backup::ClientError& error) {
  switch (error.kind) {
    case backup::ErrorKind::kInvalidPin:
      if (error.guesses_remaining == 0) {
        return {kExitNoGuesses, "no guesses left: the backup is destroyed"};
      }
      return {kExitWrongPin, "wrong PIN: " + std::to_string(error.guesses_remaining) +
                                 (error.guesses_remaining == 1 ? " guess" : " guesses") +
                                 " remaining"};
    case backup::ErrorKind::kNotRegistered:
      return {kExitNotRegistered, "not registered"};
    case backup::ErrorKind::kInvalidAuth:
      return {kExitInvalidAuth,
              "auth error: a realm rejected the token or none could be had: " + error.message};
    case backup::ErrorKind::kUpgradeRequired:
      return {kExitUpgradeRequired,
              "upgrade required: a realm needs a newer client: " + error.message};
    case backup::ErrorKind::kRateLimited:
      return {kExitRateLimited, "rate limited: try again later: " + error.message};
    case backup::ErrorKind::kTransient:
      return {kExitTransient,
              "transient error: realms unreachable or failing; try again later: " + error.message};
    case backup::ErrorKind::kAssertion:
      return {kExitAssertion,
              "assertion: a realm misbehaved or the realms disagree: " + error.message};
    case backup::ErrorKind::kInvalidArgument:
      return {kExitUsage, error.message};
  }
  return {kExitFailure, error.ToString()};
}

StatusOr<backup::Configuration> LoadConfiguration(const std::string& path) {
  StatusOr<SecretBytes> text = ReadFile(path, kMaxConfigBytes);
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kOutOfRange) {
      return InvalidArgumentError("configuration " + path + " is too large");
    }
    return text.status();
  }
  std::string_view json(reinterpret_cast<const char*>(text->Reveal().data()), text->size());
  StatusOr<backup::Configuration> configuration = backup::Configuration::FromJson(json);
  if (!configuration.ok()) {
    return InvalidArgumentError("configuration " + path + ": " + configuration.status().message());
  }
  return configuration;
}

StatusOr<std::vector<backup::Configuration>> LoadPreviousConfigurations(const Args& args) {
  const std::string* path = args.Get("previous-configs");
  if (path == nullptr) return std::vector<backup::Configuration>();
  StatusOr<SecretBytes> text = ReadFile(*path, kMaxConfigBytes);
  if (!text.ok()) return text.status();
  std::string_view json(reinterpret_cast<const char*>(text->Reveal().data()), text->size());
  StatusOr<std::vector<backup::Configuration>> list = backup::Configuration::ListFromJson(json);
  if (!list.ok()) {
    return InvalidArgumentError("previous configurations " + *path + ": " +
                                list.status().message());
  }
  return list;
}

StatusOr<std::unique_ptr<backup::Client>> MakeClient(const Args& args) {
  const std::string* config_path = args.Get("config");
  if (config_path == nullptr) return InvalidArgumentError("--config FILE is required");
  ASSIGN_OR_RETURN(backup::Configuration configuration, LoadConfiguration(*config_path));
  ASSIGN_OR_RETURN(std::vector<backup::Configuration> previous, LoadPreviousConfigurations(args));
  ASSIGN_OR_RETURN(std::shared_ptr<backup::AuthTokenProvider> tokens, MakeTokenProvider(args));
  HttpTransportOptions options;
  uint64_t timeout = kDefaultTimeoutSeconds;
  if (const std::string* text = args.Get("timeout")) {
    ASSIGN_OR_RETURN(timeout, ParseUnsigned(*text, "--timeout", 1, 3600));
  }
  options.request_timeout = std::chrono::seconds(timeout);
  if (const std::string* ca = args.Get("ca-file")) options.ca_file = *ca;
  ASSIGN_OR_RETURN(std::unique_ptr<HttpTransport> transport, HttpTransport::Create(options));
  StatusOr<std::unique_ptr<backup::Client>> client = backup::Client::Create(
      std::move(configuration), std::move(previous),
      std::shared_ptr<backup::Transport>(std::move(transport)), std::move(tokens));
  if (!client.ok() && client.status().code() == StatusCode::kUnimplemented) {
    return InvalidArgumentError(client.status().message());
  }
  return client;
}

ByteView InfoBytes(const Args& args) {
  const std::string* info = args.Get("info");
  return info == nullptr ? ByteView() : AsBytes(*info);
}

Outcome Register(const Args& args) {
  uint64_t guesses = kDefaultGuesses;
  if (const std::string* text = args.Get("guesses")) {
    StatusOr<uint64_t> parsed = ParseUnsigned(*text, "--guesses", 1, UINT16_MAX);
    if (!parsed.ok()) return UsageError(parsed.status().message());
    guesses = *parsed;
  }
  StatusOr<std::unique_ptr<backup::Client>> client = MakeClient(args);
  if (!client.ok()) return FromStatus(client.status());
  StatusOr<SecretBytes> secret = ReadSecret(args);
  if (!secret.ok()) return FromStatus(secret.status());
  StatusOr<SecretBytes> pin = ReadPin(args, /*confirm=*/true);
  if (!pin.ok()) return FromStatus(pin.status());
  backup::RegisterResult result =
      (*client)->Register(*pin, *secret, InfoBytes(args), static_cast<uint16_t>(guesses));
  if (!result.ok()) return FromClientError(result.error());
  std::cout << "registered" << std::endl;
  return {};
}

// WriteSecretFile writes the secret to a new or truncated file with mode 0600.
Status WriteSecretFile(const std::string& path, const SecretBytes& secret) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return UnavailableError("cannot create " + path + ": " + std::strerror(errno));
  Status status;
  if (::fchmod(fd, 0600) != 0) {
    status = UnavailableError("cannot make " + path + " private: " + std::strerror(errno));
  }
  std::span<const uint8_t> bytes = secret.Reveal();
  size_t written = 0;
  while (status.ok() && written < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = UnavailableError("cannot write " + path + ": " + std::strerror(errno));
      break;
    }
    written += static_cast<size_t>(n);
  }
  if (status.ok() && ::fsync(fd) != 0) {
    status = UnavailableError("cannot sync " + path + ": " + std::strerror(errno));
  }
  if (::close(fd) != 0 && status.ok()) {
    status = UnavailableError("cannot close " + path + ": " + std::strerror(errno));
  }
  return status;
}

Outcome Recover(const Args& args) {
  StatusOr<std::unique_ptr<backup::Client>> client = MakeClient(args);
  if (!client.ok()) return FromStatus(client.status());
  StatusOr<SecretBytes> pin = ReadPin(args, /*confirm=*/false);
  if (!pin.ok()) return FromStatus(pin.status());
  backup::RecoverResult result = (*client)->Recover(*pin, InfoBytes(args));
  if (!result.ok()) return FromClientError(result.error());
  const SecretBytes& secret = result.value();
  if (const std::string* out = args.Get("out")) {
    Status written = WriteSecretFile(*out, secret);
    if (!written.ok()) return {kExitFailure, written.message()};
    std::cerr << "recovered: the secret (" << secret.size() << " bytes) is in " << *out
              << std::endl;
    return {};
  }
  std::cout.flush();
  std::span<const uint8_t> bytes = secret.Reveal();
  size_t written = 0;
  while (written < bytes.size()) {
    ssize_t n = ::write(STDOUT_FILENO, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return {kExitFailure, std::string("cannot write the secret: ") + std::strerror(errno)};
    written += static_cast<size_t>(n);
  }
  if (::isatty(STDOUT_FILENO)) std::cout << std::endl;
  return {};
}

Outcome Delete(const Args& args) {
  StatusOr<std::unique_ptr<backup::Client>> client = MakeClient(args);
  if (!client.ok()) return FromStatus(client.status());
  backup::DeleteResult result = (*client)->Delete();
  if (!result.ok()) return FromClientError(result.error());
  std::cout << "deleted" << std::endl;
  return {};
}

int Run(const std::vector<std::string>& argv) {
  StatusOr<Args> parsed = ParseArgs(argv);
  if (!parsed.ok()) {
    std::cerr << "pinvault: " << parsed.status().message() << "\n(see pinvault --help)\n";
    return kExitUsage;
  }
  const Args& args = *parsed;
  if (args.command.empty() || args.command == "help" || args.switches.contains("help")) {
    bool asked = args.command == "help" || args.switches.contains("help");
    (asked ? std::cout : std::cerr) << kUsage;
    return asked ? kExitOk : kExitUsage;
  }
  auto allowed = kCommandOptions.find(args.command);
  if (allowed == kCommandOptions.end()) {
    std::cerr << "pinvault: unknown command \"" << args.command << "\"\n(see pinvault --help)\n";
    return kExitUsage;
  }
  for (const auto& [name, value] : args.values) {
    if (!allowed->second.contains(name)) {
      std::cerr << "pinvault: " << args.command << " does not take --" << name
                << "\n(see pinvault --help)\n";
      return kExitUsage;
    }
  }
  for (const std::string& name : args.switches) {
    if (!allowed->second.contains(name)) {
      std::cerr << "pinvault: " << args.command << " does not take --" << name
                << "\n(see pinvault --help)\n";
      return kExitUsage;
    }
  }
  if (args.command == "demo") {
    DemoOptions options;
    options.keep_directory = args.switches.contains("keep");
    return RunDemo(options, std::cout, std::cerr);
  }
  Outcome outcome;
  if (args.command == "register") {
    outcome = Register(args);
  } else if (args.command == "recover") {
    outcome = Recover(args);
  } else {
    outcome = Delete(args);
  }
  if (!outcome.message.empty()) std::cerr << "pinvault: " << outcome.message << std::endl;
  return outcome.code;
}

}  // namespace
}  // namespace pinvault::api

int main(int argc, char** argv) {
  try {
    std::vector<std::string> args(argv + 1, argv + argc);
    return pinvault::api::Run(args);
  } catch (const std::exception& e) {
    std::cerr << "pinvault: internal error: " << e.what() << std::endl;
    return pinvault::api::kExitFailure;
  }
}
