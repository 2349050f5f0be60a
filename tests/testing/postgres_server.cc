#include "tests/testing/postgres_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>

extern char** environ;

namespace pinvault::testing {
namespace {

// kUnixOnlyPort: the port of a server without TCP; only its socket name depends on it, and
// the socket is in a private folder, so it never clashes.
constexpr int kUnixOnlyPort = 5432;
constexpr const char* kRunuserPaths[] = {"/usr/sbin/runuser", "/sbin/runuser"};

std::string ErrnoMessage(std::string_view what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

// TempBase is $TMPDIR, or /tmp.
std::string TempBase() {
  const char* base = std::getenv("TMPDIR");
  return base != nullptr && *base != '\0' ? base : "/tmp";
}

// MakeTempDir creates a fresh private folder named after `prefix`.
StatusOr<std::string> MakeTempDir(const std::string& prefix) {
  std::string path = TempBase() + "/" + prefix + "-XXXXXX";
  if (::mkdtemp(path.data()) == nullptr)
    return InternalError(ErrnoMessage("mkdtemp " + path, errno));
  return path;
}

// ConninfoQuote quotes a value for a key=value connection string.
std::string ConninfoQuote(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

// ConfQuote quotes a value for postgresql.conf.
std::string ConfQuote(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

bool IsIdentifier(const std::string& name) {
  static const std::regex kIdentifier("[a-z_][a-z0-9_]{0,62}");
  return std::regex_match(name, kIdentifier);
}

// SendAll writes all of `data` to a socket (no SIGPIPE); false on error.
bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

struct ProcessResult {
  int exit_code = -1;  // 128 + signal if killed by a signal
  std::string out;
  std::string err;
};

// RunProcess runs argv (argv[0] an absolute path) in `cwd` with `input` on its standard input
// and returns its exit code and output. The child gets no file descriptor of ours beyond
// 0, 1 and 2. INTERNAL if it cannot be started.
StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv, const std::string& input,
                                   const std::string& cwd) {
  int in[2];
  int out[2];
  int err[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0) {
    return InternalError(ErrnoMessage("socketpair", errno));
  }
  if (::pipe2(out, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(in[0]);
    ::close(in[1]);
    return InternalError(ErrnoMessage("pipe2", e));
  }
  if (::pipe2(err, O_CLOEXEC) != 0) {
    int e = errno;
    for (int fd : {in[0], in[1], out[0], out[1]}) ::close(fd);
    return InternalError(ErrnoMessage("pipe2", e));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[1], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[1]);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(in[0]);
    ::close(out[0]);
    ::close(err[0]);
    return InternalError(ErrnoMessage("cannot run " + argv[0], rc));
  }

  // Feed stdin and drain stdout and stderr together, so that neither side blocks.
  ProcessResult result;
  int in_fd = in[0];
  size_t written = 0;
  if (input.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  int out_fd = out[0];
  int err_fd = err[0];
  char buffer[16384];
  while (out_fd >= 0 || err_fd >= 0) {
    pollfd fds[3] = {{in_fd, POLLOUT, 0}, {out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (in_fd >= 0 && fds[0].revents != 0) {
      ssize_t n = ::send(in_fd, input.data() + written, input.size() - written,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) written += static_cast<size_t>(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) {
        ::close(in_fd);
        in_fd = -1;
      }
    }
    for (auto [index, fd, sink] :
         {std::tuple{1, &out_fd, &result.out}, {2, &err_fd, &result.err}}) {
      if (*fd < 0 || fds[index].revents == 0) continue;
      ssize_t n = ::read(*fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ::close(*fd);
        *fd = -1;
      } else {
        sink->append(buffer, static_cast<size_t>(n));
      }
    }
  }
  for (int fd : {in_fd, out_fd, err_fd}) {
    if (fd >= 0) ::close(fd);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return InternalError(ErrnoMessage("waitpid", errno));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

// FreeTcpPort returns a port on 127.0.0.1 that nothing listened on a moment ago.
StatusOr<int> FreeTcpPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return InternalError(ErrnoMessage("socket", errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int e = errno;
    ::close(fd);
    return InternalError(ErrnoMessage("binding a free port", e));
  }
  ::close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

// SocketAddress fills a sockaddr_un for `path`; false if the path is too long.
bool SocketAddress(const std::string& path, sockaddr_un& addr) {
  addr = sockaddr_un{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return true;
}

// ProcessGone is true once `pid` no longer runs (gone, or a zombie waiting for its reaper).
bool ProcessGone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

// ChildrenOf lists the processes whose parent is `pid` (from /proc).
std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> children;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    size_t paren = line.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(line.substr(paren + 1));
    std::string state;
    long parent = 0;
    if (fields >> state >> parent && parent == pid) children.push_back(std::stoi(name));
  }
  return children;
}

std::string Tail(const std::string& text, size_t max = 3000) {
  return text.size() <= max ? text : "..." + text.substr(text.size() - max);
}

}  // namespace

// ---- PostgresServer ----

StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start(Options options) {
  for (const char* tool : {"initdb", "pg_ctl", "postgres", "psql"}) {
    std::string path = std::string(kBinDir) + "/" + tool;
    if (::access(path.c_str(), X_OK) != 0) {
      return FailedPreconditionError(
          "PostgreSQL 15 is not installed (no " + path +
          "): install postgresql-15 and postgresql-client-15 (deploy/install-deps.sh)");
    }
  }
  auto server = std::unique_ptr<PostgresServer>(new PostgresServer());
  server->tcp_ = options.tcp;
  server->owner_pid_ = ::getpid();
  if (::geteuid() == 0) {
    // PostgreSQL refuses to run as root: its tools run as the postgres user.
    passwd entry{};
    passwd* found = nullptr;
    std::vector<char> buffer(16384);
    if (::getpwnam_r(kSuperuser, &entry, buffer.data(), buffer.size(), &found) != 0 ||
        found == nullptr) {
      return FailedPreconditionError(
          "running as root needs the `postgres` user to start PostgreSQL: install "
          "postgresql-common (deploy/install-deps.sh)");
    }
    for (const char* path : kRunuserPaths) {
      if (::access(path, X_OK) == 0) {
        server->runuser_ = path;
        break;
      }
    }
    if (server->runuser_.empty()) return FailedPreconditionError("runuser (util-linux) not found");
    server->as_postgres_ = true;
    server->uid_ = found->pw_uid;
    server->gid_ = found->pw_gid;
  }
  ASSIGN_OR_RETURN(server->root_, MakeTempDir("pinvault-pg"));
  if (server->as_postgres_ && ::chown(server->root_.c_str(), server->uid_, server->gid_) != 0) {
    return InternalError(ErrnoMessage("chown " + server->root_, errno));
  }
  // From here on the watchdog removes the folder (and stops the server) if we die.
  RETURN_IF_ERROR(server->StartWatchdog());
  server->data_dir_ = server->root_ + "/data";
  if (options.tcp) {
    ASSIGN_OR_RETURN(server->port_, FreeTcpPort());
  } else {
    server->port_ = kUnixOnlyPort;
  }
  sockaddr_un addr;
  if (!SocketAddress(server->root_ + "/.s.PGSQL." + std::to_string(server->port_), addr)) {
    return FailedPreconditionError("socket path under " + server->root_ +
                                   " is too long; set TMPDIR to a shorter folder");
  }

  RETURN_IF_ERROR(server->Tool({"initdb", "-D", server->data_dir_, "-U", kSuperuser,
                                "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                                "--locale=C", "--no-sync", "--no-instructions"}));
  {
    std::ofstream conf(server->data_dir_ + "/postgresql.conf", std::ios::app);
    conf << "\n# pinvault test cluster (tests/testing/postgres_server.cc)\n"
         << "listen_addresses = " << (options.tcp ? "'127.0.0.1'" : "''") << "\n"
         << "port = " << server->port_ << "\n"
         << "unix_socket_directories = " << ConfQuote(server->root_) << "\n"
         << "max_connections = 50\n"
         << "shared_buffers = 32MB\n"
         << "log_line_prefix = '%m [%p] %q%a '\n";
    conf.flush();
    if (!conf) return InternalError("cannot write " + server->data_dir_ + "/postgresql.conf");
  }
  RETURN_IF_ERROR(server->Restart());
  return server;
}

PostgresServer::~PostgresServer() {
  if (owner_pid_ != ::getpid()) {
    // A forked child: the server and folder belong to the parent.
    if (watchdog_fd_ >= 0) ::close(watchdog_fd_);
    return;
  }
  if (running_) {
    Tool({"pg_ctl", "-D", data_dir_, "-m", "immediate", "-w", "-t", "60", "stop"}).IgnoreError();
  }
  if (!root_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  if (watchdog_fd_ >= 0) {
    SendAll(watchdog_fd_, "d");  // done: the watchdog exits without touching anything
    ::close(watchdog_fd_);
  }
}

Status PostgresServer::StartWatchdog() {
  // Everything the watchdog needs is prepared here: after fork() in a process that may have
  // threads, the child only makes async-signal-safe calls.
  std::vector<std::string> stop = {std::string(kBinDir) + "/pg_ctl",
                                   "-D",
                                   root_ + "/data",
                                   "-m",
                                   "immediate",
                                   "-w",
                                   "-t",
                                   "30",
                                   "stop"};
  if (as_postgres_) stop.insert(stop.begin(), {runuser_, "-u", kSuperuser, "--"});
  std::vector<std::string> remove = {"/bin/rm", "-rf", "--", root_};
  std::vector<char*> stop_argv;
  for (std::string& arg : stop) stop_argv.push_back(arg.data());
  stop_argv.push_back(nullptr);
  std::vector<char*> remove_argv;
  for (std::string& arg : remove) remove_argv.push_back(arg.data());
  remove_argv.push_back(nullptr);

  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return InternalError(ErrnoMessage("socketpair", errno));
  }
  int watch_fd = ::fcntl(pair[0], F_DUPFD_CLOEXEC, 3);  // never one of 0, 1, 2
  ::close(pair[0]);
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (watch_fd < 0 || devnull < 0) {
    int e = errno;
    for (int fd : {watch_fd, devnull, pair[1]}) {
      if (fd >= 0) ::close(fd);
    }
    return InternalError(ErrnoMessage("preparing the watchdog", e));
  }
  pid_t child = ::fork();
  if (child == 0) {
    // A new session (no terminal signals), then a grandchild that init adopts, so that
    // nothing that kills the test process and its children reaches it.
    ::setsid();
    if (::fork() != 0) ::_exit(0);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::close_range(3, static_cast<unsigned>(watch_fd) - 1, 0);
    ::close_range(static_cast<unsigned>(watch_fd) + 1, ~0U, 0);
    if (::chdir("/") != 0) ::_exit(1);
    char byte = 0;
    ssize_t n;
    do {
      n = ::read(watch_fd, &byte, 1);
    } while (n < 0 && errno == EINTR);
    if (n == 1) ::_exit(0);  // the owner cleaned up
    // The owner is gone: stop the server, then remove the folder.
    pid_t stopper = ::fork();
    if (stopper == 0) {
      ::execve(stop_argv[0], stop_argv.data(), environ);
      ::_exit(127);
    }
    if (stopper > 0) {
      int status = 0;
      while (::waitpid(stopper, &status, 0) < 0 && errno == EINTR) {
      }
    }
    ::execve(remove_argv[0], remove_argv.data(), environ);
    ::_exit(127);
  }
  int e = errno;
  ::close(devnull);
  ::close(watch_fd);
  if (child < 0) {
    ::close(pair[1]);
    return InternalError(ErrnoMessage("fork", e));
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  watchdog_fd_ = pair[1];
  return OkStatus();
}

Status PostgresServer::Tool(const std::vector<std::string>& args) const {
  std::vector<std::string> argv;
  if (as_postgres_) argv = {runuser_, "-u", kSuperuser, "--"};
  argv.push_back(std::string(kBinDir) + "/" + args[0]);
  argv.insert(argv.end(), args.begin() + 1, args.end());
  ASSIGN_OR_RETURN(ProcessResult result, RunProcess(argv, "", root_));
  if (result.exit_code != 0) {
    return InternalError(args[0] + " failed (exit " + std::to_string(result.exit_code) +
                         "): " + Tail(result.out + result.err));
  }
  return OkStatus();
}

std::string PostgresServer::Uri(const std::string& dbname) const {
  return "host=" + ConninfoQuote(root_) + " port=" + std::to_string(port_) +
         " dbname=" + ConninfoQuote(dbname) + " user=" + kSuperuser;
}

std::string PostgresServer::TcpUri(const std::string& dbname, const std::string& user,
                                   const std::string& extra) const {
  std::string uri = "host=127.0.0.1 port=" + std::to_string(port_) +
                    " dbname=" + ConninfoQuote(dbname) + " user=" + ConninfoQuote(user);
  if (!extra.empty()) uri += " " + extra;
  return uri;
}

Status PostgresServer::CreateDatabase(const std::string& name, const std::string& owner) {
  if (!IsIdentifier(name) || (!owner.empty() && !IsIdentifier(owner))) {
    return InvalidArgumentError("database and owner names must be lowercase identifiers");
  }
  std::string sql = "CREATE DATABASE " + name;
  if (!owner.empty()) sql += " OWNER " + owner;
  return Sql("postgres", sql + ";").status();
}

Status PostgresServer::CreateRole(const std::string& name, const std::string& password) {
  if (!IsIdentifier(name)) return InvalidArgumentError("role names must be lowercase identifiers");
  std::string quoted;
  for (char c : password) {
    if (c == '\'') quoted += '\'';
    quoted += c;
  }
  return Sql("postgres", "CREATE ROLE " + name + " LOGIN PASSWORD '" + quoted + "';").status();
}

StatusOr<std::string> PostgresServer::Sql(const std::string& dbname, const std::string& sql) const {
  std::vector<std::string> argv = {std::string(kBinDir) + "/psql",
                                   "-X",
                                   "-q",
                                   "-A",
                                   "-t",
                                   "-v",
                                   "ON_ERROR_STOP=1",
                                   "-h",
                                   root_,
                                   "-p",
                                   std::to_string(port_),
                                   "-U",
                                   kSuperuser,
                                   "-d",
                                   dbname,
                                   "-f",
                                   "-"};
  ASSIGN_OR_RETURN(ProcessResult result, RunProcess(argv, sql, root_));
  if (result.exit_code != 0) {
    return InternalError("psql failed (exit " + std::to_string(result.exit_code) +
                         "): " + Tail(result.err));
  }
  return result.out;
}

Status PostgresServer::Stop() {
  if (!running_) return OkStatus();
  RETURN_IF_ERROR(Tool({"pg_ctl", "-D", data_dir_, "-m", "fast", "-w", "-t", "60", "stop"}));
  running_ = false;
  return OkStatus();
}

Status PostgresServer::Restart() {
  if (running_) return OkStatus();
  // After Kill, the killed server's backends may still be exiting (and holding its shared
  // memory): pg_ctl start then fails for a moment, so it is tried a few times.
  Status started;
  for (int attempt = 0; attempt < 20; ++attempt) {
    started =
        Tool({"pg_ctl", "-D", data_dir_, "-l", root_ + "/server.log", "-w", "-t", "60", "start"});
    if (started.ok() || !killed_) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!started.ok()) return InternalError(started.message() + "\nserver log:\n" + log());
  running_ = true;
  killed_ = false;
  return OkStatus();
}

Status PostgresServer::Kill() {
  if (!running_) return FailedPreconditionError("the server is not running");
  std::ifstream pid_file(data_dir_ + "/postmaster.pid");
  long pid = 0;
  if (!(pid_file >> pid) || pid <= 1) return InternalError("cannot read postmaster.pid");
  const auto postmaster = static_cast<pid_t>(pid);
  // Its backends outlive it for a moment (until they notice its death): wait for them too,
  // so that when Kill returns no session of the old server answers any more.
  std::vector<pid_t> processes = ChildrenOf(postmaster);
  processes.push_back(postmaster);
  if (::kill(postmaster, SIGKILL) != 0)
    return InternalError(ErrnoMessage("kill postmaster", errno));
  running_ = false;
  killed_ = true;
  for (int i = 0; i < 1000; ++i) {
    if (std::all_of(processes.begin(), processes.end(), ProcessGone)) return OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return InternalError("the killed server's processes still run after 10 s");
}

std::string PostgresServer::log() const {
  std::ifstream file(root_ + "/server.log");
  std::stringstream text;
  text << file.rdbuf();
  return Tail(text.str());
}

StatusOr<PostgresServer*> SharedPostgresServer() {
  static const StatusOr<std::unique_ptr<PostgresServer>> server = PostgresServer::Start();
  if (!server.ok()) return server.status();
  return server->get();
}

std::string FreshDatabaseName() {
  static std::atomic<int> next{0};
  return "pinvault_test_" + std::to_string(next.fetch_add(1) + 1);
}

// ---- PostgresFaultProxy ----

namespace {

constexpr uint32_t kSslRequestCode = 80877103;
constexpr uint32_t kGssEncRequestCode = 80877104;

uint32_t BigEndian32(std::string_view bytes) {
  return static_cast<uint32_t>(static_cast<uint8_t>(bytes[0])) << 24 |
         static_cast<uint32_t>(static_cast<uint8_t>(bytes[1])) << 16 |
         static_cast<uint32_t>(static_cast<uint8_t>(bytes[2])) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(bytes[3]));
}

// NextMessage returns the length of the complete message at the start of `buffer` (0 if it
// is incomplete). Typed messages are a type byte and a 4-byte length that counts itself;
// untyped (start-up) messages are the length and the body.
size_t NextMessage(std::string_view buffer, bool typed) {
  const size_t header = typed ? 5 : 4;
  if (buffer.size() < header) return 0;
  const size_t length = BigEndian32(buffer.substr(typed ? 1 : 0, 4));
  const size_t total = (typed ? 1 : 0) + length;
  if (length < 4 || buffer.size() < total) return 0;
  return total;
}

}  // namespace

struct PostgresFaultProxy::Link {
  int client = -1;
  int server = -1;
  std::thread thread;
};

StatusOr<std::unique_ptr<PostgresFaultProxy>> PostgresFaultProxy::Start(
    const PostgresServer& server) {
  auto proxy = std::unique_ptr<PostgresFaultProxy>(new PostgresFaultProxy());
  proxy->port_ = server.port();
  proxy->server_socket_ = server.socket_dir() + "/.s.PGSQL." + std::to_string(server.port());
  ASSIGN_OR_RETURN(proxy->dir_, MakeTempDir("pinvault-pgproxy"));
  sockaddr_un addr;
  if (!SocketAddress(proxy->dir_ + "/.s.PGSQL." + std::to_string(proxy->port_), addr)) {
    return FailedPreconditionError("proxy socket path too long; set TMPDIR to a shorter folder");
  }
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, proxy->wake_fd_) != 0) {
    return InternalError(ErrnoMessage("socketpair", errno));
  }
  proxy->listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (proxy->listen_fd_ < 0 ||
      ::bind(proxy->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(proxy->listen_fd_, 64) != 0) {
    return InternalError(ErrnoMessage("proxy socket", errno));
  }
  proxy->acceptor_ = std::thread([p = proxy.get()] { p->AcceptLoop(); });
  return proxy;
}

PostgresFaultProxy::~PostgresFaultProxy() {
  stopping_ = true;
  if (wake_fd_[1] >= 0) SendAll(wake_fd_[1], "x");  // never read: wakes every poll for good
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::unique_ptr<Link>> links;
  {
    std::lock_guard lock(mu_);
    links.swap(links_);
  }
  for (auto& link : links) {
    if (link->thread.joinable()) link->thread.join();
  }
  for (int fd : {listen_fd_, wake_fd_[0], wake_fd_[1]}) {
    if (fd >= 0) ::close(fd);
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string PostgresFaultProxy::Uri(const std::string& dbname) const {
  return "host=" + ConninfoQuote(dir_) + " port=" + std::to_string(port_) +
         " dbname=" + ConninfoQuote(dbname) + " user=" + PostgresServer::kSuperuser;
}

void PostgresFaultProxy::AcceptLoop() {
  sockaddr_un server_addr;
  SocketAddress(server_socket_, server_addr);
  while (!stopping_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    int upstream = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (upstream < 0 ||
        ::connect(upstream, reinterpret_cast<sockaddr*>(&server_addr), sizeof(server_addr)) != 0) {
      if (upstream >= 0) ::close(upstream);
      ::close(client);  // the client sees the server as down
      continue;
    }
    auto link = std::make_unique<Link>();
    link->client = client;
    link->server = upstream;
    Link* raw = link.get();
    std::lock_guard lock(mu_);
    links_.push_back(std::move(link));
    raw->thread = std::thread([this, raw] { Serve(raw); });
  }
}

void PostgresFaultProxy::Serve(Link* link) {
  std::string from_client;  // bytes not yet forwarded (an incomplete message)
  std::string from_server;
  bool client_startup = true;  // the client's next message is untyped
  bool opaque = false;         // TLS/GSS negotiation: forward raw bytes, cut nothing
  bool awaiting_commit_reply = false;
  char buffer[65536];
  bool open = true;
  while (open && !stopping_) {
    pollfd fds[3] = {
        {link->client, POLLIN, 0}, {link->server, POLLIN, 0}, {wake_fd_[0], POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[2].revents != 0) break;
    if (fds[0].revents != 0) {
      ssize_t n = ::recv(link->client, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      from_client.append(buffer, static_cast<size_t>(n));
      size_t used = 0;
      while (open) {
        std::string_view rest = std::string_view(from_client).substr(used);
        if (opaque) {
          open = SendAll(link->server, rest);
          used = from_client.size();
          break;
        }
        const size_t size = NextMessage(rest, !client_startup);
        if (size == 0) break;
        std::string_view message = rest.substr(0, size);
        if (client_startup) {
          const uint32_t code = BigEndian32(message.substr(4, 4));
          if (code == kSslRequestCode || code == kGssEncRequestCode) {
            opaque = true;
          } else {
            client_startup = false;
          }
        } else {
          const char type = message[0];
          const bool commit = type == 'Q' && message.substr(5) == std::string_view("COMMIT\0", 7);
          Cut cut = armed_.load();
          const bool matches =
              (cut == Cut::kNextBind && type == 'B') ||
              ((cut == Cut::kCommitNotForwarded || cut == Cut::kCommitReplyDropped) && commit);
          if (matches && armed_.compare_exchange_strong(cut, Cut::kNone)) {
            fired_.fetch_add(1);
            if (cut != Cut::kCommitReplyDropped) {
              open = false;  // cut: the message is never forwarded
              break;
            }
            awaiting_commit_reply = true;
          }
        }
        open = SendAll(link->server, message);
        used += size;
      }
      from_client.erase(0, used);
    }
    if (open && fds[1].revents != 0) {
      ssize_t n = ::recv(link->server, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      from_server.append(buffer, static_cast<size_t>(n));
      size_t used = 0;
      while (open) {
        std::string_view rest = std::string_view(from_server).substr(used);
        if (opaque) {
          open = SendAll(link->client, rest);
          used = from_server.size();
          break;
        }
        const size_t size = NextMessage(rest, /*typed=*/true);
        if (size == 0) break;
        if (awaiting_commit_reply) {
          // The reply to COMMIT is swallowed; ReadyForQuery ends it: the commit is done.
          if (rest[0] == 'Z') open = false;
        } else {
          open = SendAll(link->client, rest.substr(0, size));
        }
        used += size;
      }
      from_server.erase(0, used);
    }
  }
  ::shutdown(link->client, SHUT_RDWR);
  ::shutdown(link->server, SHUT_RDWR);
  ::close(link->client);
  ::close(link->server);
}

}  // namespace pinvault::testing
