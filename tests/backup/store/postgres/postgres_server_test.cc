// The test harness itself (tests/testing/postgres_server.h): a cluster that answers, stops,
// restarts, survives SIGKILL with its data, and is cleaned up even when the test process
// dies without running destructors.
#include "tests/testing/postgres_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "tests/testing/status_matchers.h"

namespace pinvault::testing {
namespace {

using ::testing::HasSubstr;

// ServerProcessesUsing counts the processes whose command line mentions `folder`.
int ServerProcessesUsing(const std::string& folder) {
  int count = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::ifstream cmdline(entry.path() / "cmdline");
    std::string text((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    if (text.find(folder) != std::string::npos && text.find("postgres") != std::string::npos) {
      ++count;
    }
  }
  return count;
}

TEST(PostgresServerTest, AnswersSqlOnItsUnixSocketOnly) {
  ASSERT_OK_AND_ASSIGN(auto server, PostgresServer::Start());
  EXPECT_TRUE(server->running());
  EXPECT_THAT(server->Sql("postgres", "SELECT 1 + 1;"), IsOkAndHolds(std::string("2\n")));
  EXPECT_THAT(server->Sql("postgres", "SHOW listen_addresses;"), IsOkAndHolds(std::string("\n")));
  EXPECT_THAT(server->Sql("postgres", "SHOW unix_socket_directories;"),
              IsOkAndHolds(server->socket_dir() + "\n"));
  EXPECT_TRUE(std::filesystem::exists(server->socket_dir() + "/.s.PGSQL." +
                                      std::to_string(server->port())));
  ASSERT_OK(server->CreateDatabase("one"));
  EXPECT_THAT(server->CreateDatabase("one"), StatusIs(StatusCode::kInternal, HasSubstr("exists")));
  EXPECT_THAT(server->CreateDatabase("Bad Name"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(server->Sql("one", "SELECT current_database();"), IsOkAndHolds(std::string("one\n")));
  EXPECT_THAT(server->Sql("one", "SELECT nonsense;"), StatusIs(StatusCode::kInternal));
  if (::geteuid() == 0) {
    // PostgreSQL refuses root: the cluster belongs to the postgres user.
    struct stat st {};
    ASSERT_EQ(::stat((server->socket_dir() + "/data").c_str(), &st), 0);
    EXPECT_NE(st.st_uid, 0u);
  }
}

TEST(PostgresServerTest, TcpListensOnLoopbackWithPasswords) {
  PostgresServer::Options options;
  options.tcp = true;
  ASSERT_OK_AND_ASSIGN(auto server, PostgresServer::Start(options));
  EXPECT_NE(server->port(), 5432);
  EXPECT_THAT(server->Sql("postgres", "SHOW listen_addresses;"),
              IsOkAndHolds(std::string("127.0.0.1\n")));
  ASSERT_OK(server->CreateRole("someone", "it's a secret"));
  EXPECT_THAT(server->Sql("postgres",
                          "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid "
                          "WHERE rolname = 'someone';"),
              IsOkAndHolds(std::string("t\n")));
  EXPECT_THAT(server->TcpUri("db", "someone", "sslmode=disable"),
              HasSubstr("host=127.0.0.1 port=" + std::to_string(server->port())));
}

TEST(PostgresServerTest, StopRestartAndKillKeepCommittedData) {
  ASSERT_OK_AND_ASSIGN(auto server, PostgresServer::Start());
  ASSERT_OK(server->Sql("postgres", "CREATE TABLE t (v int); INSERT INTO t VALUES (1);"));
  ASSERT_OK(server->Stop());
  EXPECT_FALSE(server->running());
  EXPECT_THAT(server->Sql("postgres", "SELECT 1;"), StatusIs(StatusCode::kInternal));
  ASSERT_OK(server->Restart());
  ASSERT_OK(server->Sql("postgres", "INSERT INTO t VALUES (2);"));
  ASSERT_OK(server->Kill());
  EXPECT_FALSE(server->running());
  EXPECT_THAT(server->Sql("postgres", "SELECT 1;"), StatusIs(StatusCode::kInternal));
  ASSERT_OK(server->Restart());  // crash recovery
  EXPECT_THAT(server->Sql("postgres", "SELECT sum(v) FROM t;"), IsOkAndHolds(std::string("3\n")));
}

TEST(PostgresServerTest, DestructorStopsTheServerAndRemovesTheFolder) {
  std::string folder;
  {
    ASSERT_OK_AND_ASSIGN(auto server, PostgresServer::Start());
    folder = server->socket_dir();
    EXPECT_GT(ServerProcessesUsing(folder), 0);
  }
  EXPECT_FALSE(std::filesystem::exists(folder));
  EXPECT_EQ(ServerProcessesUsing(folder), 0);
}

TEST(PostgresServerTest, ServerOfAKilledTestProcessIsStoppedAndRemoved) {
  // A child process starts a server, reports its folder and dies by SIGKILL (no destructor
  // runs); the watchdog must stop the server and remove the folder.
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(report[0]);
    StatusOr<std::unique_ptr<PostgresServer>> server = PostgresServer::Start();
    std::string folder = server.ok() ? (*server)->socket_dir() : "";
    folder += '\n';
    if (::write(report[1], folder.data(), folder.size()) < 0) ::_exit(2);
    ::raise(SIGKILL);
    ::_exit(3);
  }
  ::close(report[1]);
  std::string folder;
  char c;
  while (::read(report[0], &c, 1) == 1 && c != '\n') folder += c;
  ::close(report[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  ASSERT_FALSE(folder.empty()) << "the child could not start a server";
  // The watchdog works on its own time: wait for it (a hang here fails after a minute).
  for (int i = 0; i < 600 && std::filesystem::exists(folder); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_FALSE(std::filesystem::exists(folder)) << folder;
  EXPECT_EQ(ServerProcessesUsing(folder), 0);
}

}  // namespace
}  // namespace pinvault::testing
