// PostgresServer: a throwaway PostgreSQL 15 cluster for a test binary; PostgresFaultProxy: a
// proxy in front of it that cuts a connection at a chosen point of the wire protocol.
//
// PostgresServer runs `initdb` and `pg_ctl` from /usr/lib/postgresql/15/bin (Debian's
// postgresql-15), in a fresh temporary folder holding the data folder, the Unix socket and
// the server log. PostgreSQL refuses to run as root: when the test runs as root the tools run
// as the `postgres` user through `runuser -u postgres --` (the folder is handed to that user);
// otherwise they run as the caller. The server listens on the Unix socket only, plus
// 127.0.0.1 at a free port when Options::tcp asks for it; socket logins are trusted, TCP
// logins need a password (scram-sha-256). Every child is started with posix_spawn from an
// argument vector (no shell); SQL goes to psql on its standard input, so a role's password
// never appears on a command line.
//
// Clean-up: the destructor stops the server and removes the folder. A watchdog process
// (started with the server, in its own session) does the same if the test binary dies
// without running destructors (crash, abort, SIGKILL), so no server is left behind.
//
// If the PostgreSQL binaries or the `postgres` user are missing, Start returns
// FAILED_PRECONDITION naming the package to install: tests then fail, never skip.
//
// Thread-safety: a PostgresServer is used from one thread at a time. PostgresFaultProxy is
// safe for concurrent use.
#ifndef PINVAULT_TESTS_TESTING_POSTGRES_SERVER_H_
#define PINVAULT_TESTS_TESTING_POSTGRES_SERVER_H_

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "vault/status.h"

namespace pinvault::testing {

class PostgresServer {
 public:
  // kBinDir: where the PostgreSQL 15 server binaries are.
  static constexpr const char* kBinDir = "/usr/lib/postgresql/15/bin";
  // kSuperuser: the cluster's superuser (trusted on the Unix socket).
  static constexpr const char* kSuperuser = "postgres";

  struct Options {
    // tcp: also listen on 127.0.0.1 at a free port (for password and sslmode tests).
    bool tcp = false;
  };

  // Start creates and starts a cluster. FAILED_PRECONDITION if PostgreSQL is not installed,
  // INTERNAL (with the tool's output and the server log) if initdb or pg_ctl fails.
  static StatusOr<std::unique_ptr<PostgresServer>> Start(Options options);
  static StatusOr<std::unique_ptr<PostgresServer>> Start() { return Start(Options()); }

  // ~PostgresServer stops the server (immediate shutdown) and removes its folder.
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // Uri returns a key=value connection string for `dbname` over the Unix socket, as the
  // superuser.
  std::string Uri(const std::string& dbname) const;

  // TcpUri returns a key=value connection string for `dbname` over TCP (127.0.0.1) as `user`,
  // without a password, followed by `extra` (e.g. "sslmode=require"). Options::tcp only.
  std::string TcpUri(const std::string& dbname, const std::string& user,
                     const std::string& extra = "") const;

  // CreateDatabase creates an empty database `name` (owned by `owner` if not empty). Names
  // are lowercase SQL identifiers ([a-z_][a-z0-9_]*).
  Status CreateDatabase(const std::string& name, const std::string& owner = "");

  // CreateRole creates a login role with a password (sent to psql on stdin, not argv).
  Status CreateRole(const std::string& name, const std::string& password);

  // Sql runs `sql` (one or more statements) in `dbname` as the superuser through psql and
  // returns its output: unaligned, tuples only, one row per line, columns separated by '|'.
  // INTERNAL with psql's error output if a statement fails.
  StatusOr<std::string> Sql(const std::string& dbname, const std::string& sql) const;

  // Stop shuts the server down (fast mode: sessions are terminated, a checkpoint is taken).
  Status Stop();

  // Restart starts the stopped or killed server again, on the same folder and port.
  Status Restart();

  // Kill sends SIGKILL to the postmaster and waits until it is gone (its backends exit on
  // their own). Restart then runs crash recovery.
  Status Kill();

  // running is true between a successful Start/Restart and Stop/Kill.
  bool running() const { return running_; }

  // socket_dir is the folder holding the Unix socket; port the server's port (the socket is
  // socket_dir()/.s.PGSQL.<port>).
  const std::string& socket_dir() const { return root_; }
  int port() const { return port_; }

  // log returns the server log so far (for failure messages).
  std::string log() const;

 private:
  PostgresServer() = default;

  // Tool runs a PostgreSQL tool from kBinDir as the server's user; INTERNAL on failure.
  Status Tool(const std::vector<std::string>& args) const;
  Status StartWatchdog();

  std::string root_;  // the temporary folder; also the socket folder
  std::string data_dir_;
  int port_ = 0;
  bool tcp_ = false;
  bool as_postgres_ = false;  // running as root: tools run as the postgres user
  std::string runuser_;       // as_postgres_: the runuser binary
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  pid_t owner_pid_ = 0;  // the process that started the server (a forked child leaves it alone)
  bool running_ = false;
  bool killed_ = false;   // Kill() ran: Restart tolerates a moment of leftover shared memory
  int watchdog_fd_ = -1;  // closing it without a "done" byte makes the watchdog clean up
};

// SharedPostgresServer returns a cluster shared by the tests of this process (each test makes
// its own database, named by FreshDatabaseName), started on first use and stopped at exit.
// If the start failed, every call returns that error. Thread-safe.
StatusOr<PostgresServer*> SharedPostgresServer();

// FreshDatabaseName returns a database name not used before in this process. Thread-safe.
std::string FreshDatabaseName();

// PostgresFaultProxy forwards connections from its own Unix socket to a PostgresServer's and
// can cut one of them at a chosen point of the PostgreSQL wire protocol, as a network failure
// would. It watches the messages a client sends (simple Query 'Q', Bind 'B') and the server's
// replies; it never changes the bytes it forwards.
class PostgresFaultProxy {
 public:
  enum class Cut {
    kNone,
    // kNextBind: at the next Bind message (a prepared statement's execution, e.g. inside a
    // transaction after BEGIN), close both sides without forwarding it: the server rolls the
    // open transaction back.
    kNextBind,
    // kCommitNotForwarded: at the next COMMIT query, close both sides without forwarding it:
    // the transaction is rolled back, but the client cannot know.
    kCommitNotForwarded,
    // kCommitReplyDropped: forward the next COMMIT, wait for the server to finish it, then
    // close both sides without passing on the reply: the transaction is committed, but the
    // client cannot know.
    kCommitReplyDropped,
  };

  // Start listens on a socket in a new temporary folder and forwards to `server`'s socket
  // (which must outlive the proxy). INTERNAL if the socket cannot be created.
  static StatusOr<std::unique_ptr<PostgresFaultProxy>> Start(const PostgresServer& server);

  // ~PostgresFaultProxy closes every connection and removes the folder.
  ~PostgresFaultProxy();
  PostgresFaultProxy(const PostgresFaultProxy&) = delete;
  PostgresFaultProxy& operator=(const PostgresFaultProxy&) = delete;

  // Uri returns a key=value connection string for `dbname` through the proxy, as the
  // superuser.
  std::string Uri(const std::string& dbname) const;

  // Arm sets the cut to make on the next matching message of any connection (one shot).
  void Arm(Cut cut) { armed_.store(cut); }

  // fired counts the cuts made so far.
  int fired() const { return fired_.load(); }

 private:
  struct Link;

  PostgresFaultProxy() = default;
  void AcceptLoop();
  void Serve(Link* link);

  std::string dir_;
  std::string server_socket_;
  int port_ = 0;
  int listen_fd_ = -1;
  int wake_fd_[2] = {-1, -1};  // a socket pair; writing to [1] wakes every poll
  std::atomic<Cut> armed_{Cut::kNone};
  std::atomic<int> fired_{0};
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Link>> links_;  // guarded by mu_
};

}  // namespace pinvault::testing

#endif  // PINVAULT_TESTS_TESTING_POSTGRES_SERVER_H_
