// pinvault-bench: the realm load generator. Drives full Juicebox register and recover flows
// (every protocol step, over HTTP with JWT auth) against one or more running realms, and
// measures next to them, in the same run, the floor of this machine: the work a realm cannot
// avoid (api/bench/bench_floor.h). `pinvault-bench --help` lists the options; deploy/
// BENCHMARKS.md records the figures and the commands that produced them.
//
// Design, so that the generator is not what gets measured:
// - One thread runs every connection (Boost.Asio/Beast, asynchronous, HTTP/1.1 keep-alive,
//   one connection per virtual client per realm); requests are written as prebuilt bytes.
// - Registrations are precomputed (api/bench/bench_material.h): Register2 bodies are ready,
//   Recover2 reuses each registration's blinded input, and answers are checked against the
//   known k_i·U, shares and commitments. One flow in --verify-every does the client's whole
//   work instead (fresh blinding, signature and DLEQ-proof checks, unblinding, decryption).
// - PIN hashing is FastInsecure, done once per registration before the load.
// Tokens are minted per flow (one per realm, as a client session would hold), so the
// realm verifies a fresh JWT on the first request of every flow.
//
// Closed loop: every connection starts its next flow as soon as the last one ends. Open
// loop: flows arrive at --rate per second (Poisson); a flow that finds no idle connection
// waits, and its latency counts from its arrival, not from when it was sent.
#include <sodium.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/vector_body.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "api/auth/authenticator.h"
#include "api/auth/tenant_keys.h"
#include "api/bench/bench_floor.h"
#include "api/bench/bench_material.h"
#include "api/bench/bench_stats.h"
#include "api/client/http_transport.h"
#include "api/client/jwt_mint.h"
#include "api/codec/cbor_codec.h"
#include "api/server/metrics.h"
#include "api/server/realm_assembly.h"
#include "api/server/request_log.h"
#include "api/server/routes.h"
#include "api/server/server.h"
#include "backup/client/configuration.h"
#include "backup/client/realm_endpoint.h"
#include "backup/store/sqlite_record_store.h"
#include "vault/realm.h"

namespace pinvault::api::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

constexpr int kExitOk = 0;
constexpr int kExitErrors = 1;
constexpr int kExitUsage = 2;

constexpr char kUsage[] = R"(usage: pinvault-bench [options]

Drives full register and recover flows over HTTP against Juicebox-protocol realms and
measures the floor of this machine in the same run.

Realms (one of):
  --realm URL#ID          a running realm: base URL and its 32-hex realm id (repeat per realm)
  --config FILE           the realms of an SDK configuration JSON (with its recover threshold)
  --embedded N            start N realms inside this process (SoftHSM2 tokens, SQLite, HTTP
                          server on 127.0.0.1) -- for development and the smoke test
Auth:
  --tenant NAME           tenant of the minted tokens (default bench)
  --tenant-keys FILE      keys file with the tenant's signing key (HS256 secret or private
                          key); its highest version is used. Not needed with --embedded.
  --jwt-alg ALG           with --embedded: HS256 (default), EdDSA or RS256
Load:
  --flow LIST             recover, register or both, comma-separated (default recover)
  --connections N         concurrent connections per realm = virtual clients (default 64)
  --mode closed|open      closed loop (default) or open loop at --rate
  --rate R                open loop: flows per second
  --open-fractions LIST   after each closed phase, open-loop phases at these fractions of
                          the closed phase's flows/s (e.g. 0.5,0.8)
  --seconds S             measured seconds per phase (default 10)
  --warmup S              unmeasured seconds before each phase (default 2)
  --timeout-ms MS         per-request timeout (default 10000)
Users and registrations:
  --users U               recovery users u0..u(U-1) (default 10000)
  --skip-setup            do not register the recovery users first (already populated)
  --populate N            register users u0..u(N-1) (from --populate-from) and exit
  --populate-from K       first user of --populate (default 0)
  --pool P                precomputed registrations; user k uses number k mod P (default 1024)
  --seed TEXT             derivation seed of the registrations (default pinvault-bench)
  --num-guesses G         guess limit registered (default 10)
  --threshold T           recover threshold (default: a majority of the realms)
  --verify-every K        every K-th recovery does the full client-side checks (default 64;
                          0: never)
Floor and reporting:
  --floor-seconds S       seconds per floor measurement (default 5; 0 skips the floor)
  --floor-workers W       floor worker threads (default: CPUs, as the realm's workers)
  --realm-pid PID         process of a realm for RSS and CPU (repeat in realm order; default:
                          the process listening on the realm's port)
  --work-dir DIR          scratch directory for tokens and databases (default $TMPDIR or /tmp)
  --json [FILE]           write the results as JSON to FILE, or to stdout (text goes to stderr)
  --smoke                 a few seconds of everything (for the test suite)
  --help
Exit status: 0 when every phase completed flows and no request failed; 1 when some
request or check failed; 2 for usage or setup errors.
)";

// ---------------------------------------------------------------------------------------
// Options

struct Options {
  std::vector<std::string> realm_specs;
  std::string config_file;
  int embedded = 0;
  std::string tenant = "bench";
  std::string tenant_keys;
  std::string jwt_alg = "HS256";
  std::vector<std::string> flows = {"recover"};
  int connections = 64;
  bool open_mode = false;
  double rate = 0;
  std::vector<double> open_fractions;
  double seconds = 10;
  double warmup = 2;
  int timeout_ms = 10000;
  uint64_t users = 10000;
  bool skip_setup = false;
  std::optional<uint64_t> populate;
  uint64_t populate_from = 0;
  size_t pool = 1024;
  std::string seed = "pinvault-bench";
  int num_guesses = 10;
  int threshold = 0;
  uint64_t verify_every = 64;
  double floor_seconds = 5;
  int floor_workers = 0;
  std::vector<pid_t> realm_pids;
  std::string work_dir;
  bool json = false;
  std::string json_file;
  bool smoke = false;
};

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ',')) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

StatusOr<double> ParseNumber(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end == nullptr || *end != '\0' || !std::isfinite(value) || value < 0) {
    return InvalidArgumentError(flag + " wants a non-negative number, got \"" + text + "\"");
  }
  return value;
}

StatusOr<Options> ParseOptions(int argc, char** argv, bool* help) {
  Options o;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::optional<std::string> inline_value;
    if (size_t eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    auto value = [&]() -> StatusOr<std::string> {
      if (inline_value) return *inline_value;
      if (i + 1 >= args.size()) return InvalidArgumentError(flag + " needs a value");
      return args[++i];
    };
    auto number = [&]() -> StatusOr<double> {
      ASSIGN_OR_RETURN(std::string v, value());
      return ParseNumber(flag, v);
    };
    if (flag == "--help" || flag == "-h") {
      *help = true;
      return o;
    } else if (flag == "--realm") {
      ASSIGN_OR_RETURN(std::string v, value());
      o.realm_specs.push_back(v);
    } else if (flag == "--config") {
      ASSIGN_OR_RETURN(o.config_file, value());
    } else if (flag == "--embedded") {
      ASSIGN_OR_RETURN(double v, number());
      o.embedded = static_cast<int>(v);
    } else if (flag == "--tenant") {
      ASSIGN_OR_RETURN(o.tenant, value());
    } else if (flag == "--tenant-keys") {
      ASSIGN_OR_RETURN(o.tenant_keys, value());
    } else if (flag == "--jwt-alg") {
      ASSIGN_OR_RETURN(o.jwt_alg, value());
    } else if (flag == "--flow") {
      ASSIGN_OR_RETURN(std::string v, value());
      o.flows = SplitList(v);
    } else if (flag == "--connections") {
      ASSIGN_OR_RETURN(double v, number());
      o.connections = static_cast<int>(v);
    } else if (flag == "--mode") {
      ASSIGN_OR_RETURN(std::string v, value());
      if (v != "closed" && v != "open") return InvalidArgumentError("--mode is closed or open");
      o.open_mode = v == "open";
    } else if (flag == "--rate") {
      ASSIGN_OR_RETURN(o.rate, number());
    } else if (flag == "--open-fractions") {
      ASSIGN_OR_RETURN(std::string v, value());
      for (const std::string& part : SplitList(v)) {
        ASSIGN_OR_RETURN(double f, ParseNumber(flag, part));
        o.open_fractions.push_back(f);
      }
    } else if (flag == "--seconds") {
      ASSIGN_OR_RETURN(o.seconds, number());
    } else if (flag == "--warmup") {
      ASSIGN_OR_RETURN(o.warmup, number());
    } else if (flag == "--timeout-ms") {
      ASSIGN_OR_RETURN(double v, number());
      o.timeout_ms = static_cast<int>(v);
    } else if (flag == "--users") {
      ASSIGN_OR_RETURN(double v, number());
      o.users = static_cast<uint64_t>(v);
    } else if (flag == "--skip-setup") {
      o.skip_setup = true;
    } else if (flag == "--populate") {
      ASSIGN_OR_RETURN(double v, number());
      o.populate = static_cast<uint64_t>(v);
    } else if (flag == "--populate-from") {
      ASSIGN_OR_RETURN(double v, number());
      o.populate_from = static_cast<uint64_t>(v);
    } else if (flag == "--pool") {
      ASSIGN_OR_RETURN(double v, number());
      o.pool = static_cast<size_t>(v);
    } else if (flag == "--seed") {
      ASSIGN_OR_RETURN(o.seed, value());
    } else if (flag == "--num-guesses") {
      ASSIGN_OR_RETURN(double v, number());
      o.num_guesses = static_cast<int>(v);
    } else if (flag == "--threshold") {
      ASSIGN_OR_RETURN(double v, number());
      o.threshold = static_cast<int>(v);
    } else if (flag == "--verify-every") {
      ASSIGN_OR_RETURN(double v, number());
      o.verify_every = static_cast<uint64_t>(v);
    } else if (flag == "--floor-seconds") {
      ASSIGN_OR_RETURN(o.floor_seconds, number());
    } else if (flag == "--floor-workers") {
      ASSIGN_OR_RETURN(double v, number());
      o.floor_workers = static_cast<int>(v);
    } else if (flag == "--realm-pid") {
      ASSIGN_OR_RETURN(double v, number());
      o.realm_pids.push_back(static_cast<pid_t>(v));
    } else if (flag == "--work-dir") {
      ASSIGN_OR_RETURN(o.work_dir, value());
    } else if (flag == "--json") {
      o.json = true;
      if (inline_value) {
        o.json_file = *inline_value;
      } else if (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) {
        o.json_file = args[++i];
      }
      if (o.json_file == "-") o.json_file.clear();
    } else if (flag == "--smoke") {
      o.smoke = true;
    } else {
      return InvalidArgumentError("unknown option " + flag + " (see --help)");
    }
  }
  if (o.smoke) {
    o.seconds = std::min(o.seconds, 2.0);
    o.warmup = std::min(o.warmup, 0.5);
    o.users = std::min<uint64_t>(o.users, 200);
    o.pool = std::min<size_t>(o.pool, 64);
    o.floor_seconds = std::min(o.floor_seconds, 0.5);
    o.connections = std::min(o.connections, 16);
    o.verify_every = o.verify_every == 0 ? 0 : std::min<uint64_t>(o.verify_every, 8);
  }
  int sources =
      (o.realm_specs.empty() ? 0 : 1) + (o.config_file.empty() ? 0 : 1) + (o.embedded > 0 ? 1 : 0);
  if (sources != 1) {
    return InvalidArgumentError("name the realms with --realm, --config or --embedded (one of)");
  }
  if (o.connections < 1) return InvalidArgumentError("--connections must be at least 1");
  if (o.open_mode && o.rate <= 0) return InvalidArgumentError("--mode open needs --rate");
  if (o.flows.empty()) return InvalidArgumentError("--flow names no flow");
  for (const std::string& f : o.flows) {
    if (f != "recover" && f != "register") {
      return InvalidArgumentError("--flow takes recover and/or register, not " + f);
    }
  }
  if (o.num_guesses < 1 || o.num_guesses > 65535) {
    return InvalidArgumentError("--num-guesses must be 1..65535");
  }
  if (o.pool < 1) return InvalidArgumentError("--pool must be at least 1");
  if (o.users < 1) return InvalidArgumentError("--users must be at least 1");
  if (o.seconds <= 0) return InvalidArgumentError("--seconds must be positive");
  if (o.timeout_ms < 1) return InvalidArgumentError("--timeout-ms must be positive");
  if (o.embedded < 0 || o.embedded > 9) return InvalidArgumentError("--embedded takes 1..9");
  return o;
}

// ---------------------------------------------------------------------------------------
// Realms, tokens

// Target: one realm as the generator reaches it.
struct Target {
  protocol::RealmId id{};
  std::string url;             // base URL as given
  std::string host_header;     // host[:port]
  std::string request_target;  // e.g. "/req"
  tcp::endpoint endpoint;
  std::optional<pid_t> pid;  // the realm's process, for RSS and CPU
};

StatusOr<Target> MakeTarget(const std::string& url, const protocol::RealmId& id) {
  Target t;
  t.id = id;
  t.url = url;
  ASSIGN_OR_RETURN(HttpUrl req, ResolveRelativePath(url, "req"));
  if (req.tls) {
    return InvalidArgumentError(url +
                                ": pinvault-bench speaks plain HTTP only (run it next to "
                                "the realm, on loopback)");
  }
  t.request_target = req.target;
  bool default_port = req.port == 80;
  t.host_header = (req.host.find(':') != std::string::npos ? "[" + req.host + "]" : req.host) +
                  (default_port ? "" : ":" + std::to_string(req.port));
  boost::system::error_code ec;
  asio::ip::address address = asio::ip::make_address(req.host, ec);
  if (ec) {
    if (req.host != "localhost") {
      return InvalidArgumentError(url + ": give the realm's address as an IP literal");
    }
    address = asio::ip::make_address("127.0.0.1");
  }
  t.endpoint = tcp::endpoint(address, req.port);
  return t;
}

// TokenMinter mints one JWT per (user, realm) as a tenant's backend would.
class TokenMinter {
 public:
  TokenMinter(TenantKey key, std::string tenant, uint64_t version, int64_t lifetime)
      : key_(std::move(key)), tenant_(std::move(tenant)), version_(version), lifetime_(lifetime) {}

  StatusOr<std::string> Mint(const std::string& user, const std::string& realm_hex) const {
    JwtMintRequest r;
    r.tenant = tenant_;
    r.version = version_;
    r.user = user;
    r.realm_id_hex = realm_hex;
    r.issued_at = static_cast<int64_t>(std::time(nullptr)) - 1;
    r.lifetime_seconds = lifetime_;
    return MintJwt(key_, r);
  }

  const std::string& tenant() const { return tenant_; }

 private:
  TenantKey key_;
  std::string tenant_;
  uint64_t version_;
  int64_t lifetime_;
};

// RealmMetrics: a realm's Prometheus samples ("name{labels}" -> value), from GET /metrics.
using RealmMetrics = std::map<std::string, double>;

// ScrapeMetrics fetches and parses `target`'s /metrics with a blocking request (2 s timeouts);
// nullopt if the realm does not serve it.
std::optional<RealmMetrics> ScrapeMetrics(const Target& target) {
  asio::io_context io;
  tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect(target.endpoint, ec);
  if (ec) return std::nullopt;
  timeval timeout{2, 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  std::string path = target.request_target.substr(0, target.request_target.rfind('/') + 1);
  std::string request = "GET " + path + "metrics HTTP/1.1\r\nHost: " + target.host_header +
                        "\r\nConnection: close\r\n\r\n";
  asio::write(socket, asio::buffer(request), ec);
  if (ec) return std::nullopt;
  beast::flat_buffer buffer;
  http::response_parser<http::vector_body<uint8_t>> parser;
  parser.body_limit(8 * 1024 * 1024);
  http::read(socket, buffer, parser, ec);
  if (ec || parser.get().result_int() != 200) return std::nullopt;
  const std::vector<uint8_t>& body = parser.get().body();
  RealmMetrics metrics;
  std::istringstream lines(std::string(body.begin(), body.end()));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    metrics[line.substr(0, space)] = std::strtod(line.c_str() + space + 1, nullptr);
  }
  return metrics;
}

// MetricDelta returns end[key] - start[key] (0 where absent).
double MetricDelta(const RealmMetrics& start, const RealmMetrics& end, const std::string& key) {
  auto a = start.find(key);
  auto b = end.find(key);
  return (b == end.end() ? 0 : b->second) - (a == start.end() ? 0 : a->second);
}

// ---------------------------------------------------------------------------------------
// Embedded realms (development and the smoke test)

struct EmbeddedRealm {
  std::unique_ptr<RealmCore> core;
  std::unique_ptr<HttpServer> server;
  protocol::RealmId id{};

  ~EmbeddedRealm() {
    if (server) server->Shutdown(std::chrono::seconds(5));
    server.reset();
    core.reset();
  }
};

StatusOr<std::unique_ptr<EmbeddedRealm>> StartEmbeddedRealm(ScratchTokens& tokens,
                                                            const std::filesystem::path& dir,
                                                            int number,
                                                            std::shared_ptr<TenantKeyStore> keys,
                                                            std::ostream& log) {
  auto e = std::make_unique<EmbeddedRealm>();
  ASSIGN_OR_RETURN(std::unique_ptr<vault::Hsm> hsm,
                   tokens.Open("bench-realm-" + std::to_string(number)));
  std::filesystem::path data = dir / ("realm-" + std::to_string(number));
  std::filesystem::create_directories(data);
  ASSIGN_OR_RETURN(e->core, OpenRealmCore(std::move(hsm), data, vault::RealmOptions()));
  RETURN_IF_ERROR(e->core->realm->Ready().WithContext("embedded realm not ready"));
  RETURN_IF_ERROR(e->core->hsm().GenerateRandom(e->id));
  RouterOptions router_options;
  router_options.realm_id = e->id;
  ServerOptions server_options;
  server_options.address = "127.0.0.1";
  server_options.port = 0;
  ASSIGN_OR_RETURN(
      e->server,
      StartHttpFrontend(router_options, server_options,
                        RouterDeps{e->core->realm, JwtAuthenticatorFor(std::move(keys)), nullptr,
                                   std::make_shared<Metrics>(),
                                   std::make_shared<RequestLogger>(&log, /*enabled=*/false)}));
  return e;
}

// ---------------------------------------------------------------------------------------
// Measurement of one phase

enum Op { kRegister1, kRegister2, kRecover1, kRecover2, kRecover3, kOpCount };
constexpr const char* kOpNames[kOpCount] = {"Register1", "Register2", "Recover1", "Recover2",
                                            "Recover3"};

enum class FlowKind { kRegister, kRecover };

const char* FlowName(FlowKind kind) { return kind == FlowKind::kRegister ? "register" : "recover"; }

// PhaseSpec: what one phase runs.
struct PhaseSpec {
  std::string name;
  FlowKind kind = FlowKind::kRecover;
  bool open = false;
  double rate = 0;     // open loop
  double seconds = 0;  // measured
  double warmup = 0;
  bool populate = false;  // register users [first_user, end_user) once each
  uint64_t first_user = 0;
  uint64_t end_user = 0;
};

// ProcessWindow: a process's CPU time and memory across a phase.
struct ProcessWindow {
  pid_t pid = 0;
  ProcessSample start, end;
};

// MetricsWindow: a realm's /metrics at the window's edges.
struct MetricsWindow {
  size_t realm = 0;
  std::optional<RealmMetrics> start, end;
};

// PhaseResult: what one phase measured.
struct PhaseResult {
  PhaseSpec spec;
  double measured_seconds = 0;
  std::array<LatencyHistogram, kOpCount> ops;
  LatencyHistogram flow;
  uint64_t requests_ok = 0;      // answered and accepted, in the window
  uint64_t requests_failed = 0;  // in the window
  uint64_t flows_ok = 0;         // completed in the window
  uint64_t flows_failed = 0;
  uint64_t flows_total_ok = 0;  // completed at any time (populate)
  uint64_t full_checks = 0;
  uint64_t max_backlog = 0;
  bool overloaded = false;
  std::map<std::string, uint64_t> errors;  // request errors by kind, whole phase
  double generator_cpu_seconds = 0;
  std::optional<double> machine_busy_seconds;
  std::vector<ProcessWindow> realms;
  std::vector<MetricsWindow> metrics;
  std::array<double, 3> load_start{}, load_end{};
  double wall_seconds = 0;  // whole phase including warm-up and drain

  double flows_per_second() const { return measured_seconds > 0 ? flows_ok / measured_seconds : 0; }
  double requests_per_second() const {
    return measured_seconds > 0 ? requests_ok / measured_seconds : 0;
  }
};

class Engine;

// Answer: what one connection got for one request.
struct Answer {
  std::string error;  // transport failure kind; empty if an HTTP response arrived
  int status = 0;
  std::vector<uint8_t> body;
};

class Slot;

// Connection: one keep-alive HTTP/1.1 connection to one realm, driven on the engine's
// thread. Sends one request at a time; reports to its slot.
class Connection {
 public:
  Connection(asio::io_context& io, const Target& target, Slot& slot, size_t realm)
      : socket_(io), target_(target), slot_(slot), realm_(realm) {}

  // Send writes a request with `token` and `body`; the slot's OnAnswer gets the outcome.
  void Send(std::string_view token, const Bytes& body, bool wipe_after_write);

  // CheckTimeout closes the connection if its request has run longer than `timeout`.
  void CheckTimeout(Clock::time_point now, std::chrono::milliseconds timeout) {
    if (busy_ && now - sent_ > timeout && !timed_out_) {
      timed_out_ = true;
      boost::system::error_code ignored;
      socket_.close(ignored);
    }
  }

  // Close drops the connection (the next Send reconnects).
  void Close() {
    boost::system::error_code ignored;
    if (socket_.is_open()) socket_.close(ignored);
    open_ = false;
  }

  Clock::time_point sent() const { return sent_; }

 private:
  void Write();
  void Fail(const std::string& kind);

  tcp::socket socket_;
  const Target& target_;
  Slot& slot_;
  const size_t realm_;
  std::string out_;
  bool wipe_ = false;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::vector_body<uint8_t>>> parser_;
  bool open_ = false;
  bool busy_ = false;
  bool timed_out_ = false;
  Clock::time_point sent_;
};

// Slot: one virtual client with a connection to every realm; runs one flow at a time.
class Slot {
 public:
  Slot(Engine& engine, asio::io_context& io, const std::vector<Target>& targets, int index)
      : pause(io), engine_(engine), index_(index) {
    for (size_t r = 0; r < targets.size(); ++r) {
      connections_.push_back(std::make_unique<Connection>(io, targets[r], *this, r));
    }
    answers_.resize(targets.size());
    tokens_.resize(targets.size());
  }

  // StartFlow begins a flow of `kind` for user number `user` (named `user_name`), which
  // arrived at `arrival`.
  void StartFlow(FlowKind kind, uint64_t user, std::string user_name, Clock::time_point arrival);

  // OnAnswer takes connection `realm`'s outcome.
  void OnAnswer(size_t realm, Answer answer);

  void CheckTimeouts(Clock::time_point now, std::chrono::milliseconds timeout) {
    for (auto& c : connections_) c->CheckTimeout(now, timeout);
  }
  void CloseAll() {
    for (auto& c : connections_) c->Close();
  }
  int index() const { return index_; }
  uint64_t closed_loop_counter = 0;  // the engine's per-slot user cursor
  asio::steady_timer pause;          // the engine's back-off after a failed flow

 private:
  void SendStep();
  void StepDone();
  Op CurrentOp() const;
  Status CheckAnswer(size_t realm, const protocol::SecretsResponse& response);

  Engine& engine_;
  const int index_;
  std::vector<std::unique_ptr<Connection>> connections_;
  FlowKind kind_ = FlowKind::kRecover;
  std::string user_name_;
  const PreparedRegistration* registration_ = nullptr;
  Clock::time_point arrival_;
  int step_ = 0;
  size_t pending_ = 0;
  std::string failure_;
  std::vector<std::string> tokens_;
  std::vector<std::optional<protocol::SecretsResponse>> answers_;
  std::unique_ptr<FullRecovery> full_;
};

// Engine: the event loop, the phases and their accounting. Everything runs on the thread
// that calls RunPhase.
class Engine {
 public:
  Engine(const Options& options, std::vector<Target> targets, const RegistrationPool& pool,
         const TokenMinter& minter, std::ostream& text)
      : options_(options),
        targets_(std::move(targets)),
        pool_(pool),
        minter_(minter),
        text_(text),
        arrival_timer_(io_),
        tick_timer_(io_),
        rng_(std::random_device{}()),
        run_nonce_(HexEncode(SecretBytes::Random(4).Reveal())) {
    for (const Target& t : targets_) realm_hex_.push_back(backup::RealmIdHex(t.id));
    for (int i = 0; i < options_.connections; ++i) {
      slots_.push_back(std::make_unique<Slot>(*this, io_, targets_, i));
    }
  }

  const RegistrationPool& pool() const { return pool_; }
  const TokenMinter& minter() const { return minter_; }
  const std::vector<std::string>& realm_hex() const { return realm_hex_; }
  size_t realm_count() const { return targets_.size(); }

  // RunPhase runs `spec` to the end and returns its measurements.
  PhaseResult RunPhase(const PhaseSpec& spec);

  // Callbacks from slots.
  void RecordRequest(Op op, Clock::time_point sent, Clock::time_point now, bool ok,
                     const std::string& error);
  void FlowDone(Slot& slot, bool ok, Clock::time_point arrival, const std::string& error);
  bool WantFullCheck() {
    return options_.verify_every > 0 && (++recoveries_started_ % options_.verify_every) == 0;
  }
  void CountFullCheck() { ++result_.full_checks; }

 private:
  bool InWindow(Clock::time_point t) const { return t >= window_start_ && t < window_end_; }
  void StartNext(Slot& slot, Clock::time_point arrival);
  void Continue(Slot& slot, Clock::time_point now);
  void ScheduleArrivals();
  void Tick();
  void MaybeFinish();
  std::vector<ProcessSample> SampleRealms() const;
  std::vector<std::optional<RealmMetrics>> ScrapeRealms() const {
    std::vector<std::optional<RealmMetrics>> all;
    for (const Target& t : targets_) all.push_back(ScrapeMetrics(t));
    return all;
  }
  std::string UserName(uint64_t user) const { return "u" + std::to_string(user); }

  const Options& options_;
  std::vector<Target> targets_;
  const RegistrationPool& pool_;
  const TokenMinter& minter_;
  std::ostream& text_;
  std::vector<std::string> realm_hex_;
  asio::io_context io_;
  asio::steady_timer arrival_timer_;
  asio::steady_timer tick_timer_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::mt19937_64 rng_;
  const std::string run_nonce_;
  uint64_t recoveries_started_ = 0;
  uint64_t registrations_started_ = 0;

  // The running phase.
  PhaseSpec spec_;
  PhaseResult result_;
  Clock::time_point phase_start_, window_start_, window_end_, drain_deadline_;
  std::vector<Slot*> idle_;
  std::deque<Clock::time_point> backlog_;
  Clock::time_point next_arrival_;
  std::exponential_distribution<double> interarrival_{1.0};
  uint64_t next_populate_user_ = 0;
  bool arrivals_done_ = false;
  bool finished_ = false;
  int busy_slots_ = 0;

  // Per-second progress.
  int tick_number_ = 0;
  uint64_t tick_flows_ = 0, tick_requests_ = 0, tick_errors_ = 0;
  LatencyHistogram tick_latency_;
  double tick_cpu_ = 0;
  std::vector<ProcessSample> tick_realms_;
};

// ---- Connection ----

void Connection::Send(std::string_view token, const Bytes& body, bool wipe_after_write) {
  out_.clear();
  out_.append("POST ").append(target_.request_target).append(" HTTP/1.1\r\nHost: ");
  out_.append(target_.host_header).append("\r\nAuthorization: Bearer ").append(token);
  out_.append("\r\nX-Juicebox-Version: ").append(kJuiceboxClientVersion);
  out_.append("\r\nUser-Agent: pinvault-bench/0.1\r\nContent-Length: ");
  out_.append(std::to_string(body.size())).append("\r\n\r\n");
  out_.append(reinterpret_cast<const char*>(body.data()), body.size());
  wipe_ = wipe_after_write;
  busy_ = true;
  timed_out_ = false;
  sent_ = Clock::now();
  if (open_) {
    Write();
    return;
  }
  boost::system::error_code ignored;
  if (socket_.is_open()) socket_.close(ignored);
  socket_.async_connect(target_.endpoint, [this](const boost::system::error_code& ec) {
    if (ec) return Fail(timed_out_ ? "timeout" : "connect: " + ec.message());
    boost::system::error_code ignored_option;
    socket_.set_option(tcp::no_delay(true), ignored_option);
    open_ = true;
    buffer_.clear();
    Write();
  });
}

void Connection::Write() {
  asio::async_write(
      socket_, asio::buffer(out_), [this](const boost::system::error_code& ec, size_t) {
        if (wipe_) sodium_memzero(out_.data(), out_.size());
        if (ec) return Fail(timed_out_ ? "timeout" : "write: " + ec.message());
        parser_.emplace();
        parser_->body_limit(64 * 1024);
        http::async_read(socket_, buffer_, *parser_,
                         [this](const boost::system::error_code& read_ec, size_t) {
                           if (read_ec) {
                             std::string kind = timed_out_ ? "timeout"
                                                : read_ec == http::error::end_of_stream ||
                                                        read_ec == asio::error::eof ||
                                                        read_ec == asio::error::connection_reset
                                                    ? "connection closed by the realm"
                                                    : "read: " + read_ec.message();
                             return Fail(kind);
                           }
                           auto& response = parser_->get();
                           Answer answer;
                           answer.status = response.result_int();
                           answer.body = std::move(response.body());
                           if (!response.keep_alive()) Close();
                           parser_.reset();
                           busy_ = false;
                           slot_.OnAnswer(realm_, std::move(answer));
                         });
      });
}

void Connection::Fail(const std::string& kind) {
  Close();
  buffer_.clear();
  parser_.reset();
  busy_ = false;
  timed_out_ = false;
  Answer answer;
  answer.error = kind;
  slot_.OnAnswer(realm_, std::move(answer));
}

// ---- Slot ----

void Slot::StartFlow(FlowKind kind, uint64_t user, std::string user_name,
                     Clock::time_point arrival) {
  kind_ = kind;
  user_name_ = std::move(user_name);
  registration_ = &engine_.pool().ForUser(user);
  arrival_ = arrival;
  step_ = 0;
  failure_.clear();
  full_.reset();
  for (size_t r = 0; r < tokens_.size(); ++r) {
    StatusOr<std::string> token = engine_.minter().Mint(user_name_, engine_.realm_hex()[r]);
    if (!token.ok()) {
      engine_.FlowDone(*this, false, arrival_, "token mint failed: " + token.status().message());
      return;
    }
    tokens_[r] = std::move(token).value();
  }
  if (kind_ == FlowKind::kRecover && engine_.WantFullCheck()) {
    std::vector<protocol::RealmId> ids = engine_.pool().realm_ids();
    StatusOr<std::unique_ptr<FullRecovery>> full = FullRecovery::Start(*registration_, ids);
    if (!full.ok()) {
      engine_.FlowDone(*this, false, arrival_, "blinding failed");
      return;
    }
    full_ = std::move(full).value();
  }
  SendStep();
}

Op Slot::CurrentOp() const {
  if (kind_ == FlowKind::kRegister) return step_ == 0 ? kRegister1 : kRegister2;
  return step_ == 0 ? kRecover1 : step_ == 1 ? kRecover2 : kRecover3;
}

void Slot::SendStep() {
  // Targets are sorted by realm id as the pool's realms are, so connection r is realm r.
  Op op = CurrentOp();
  pending_ = connections_.size();
  for (size_t r = 0; r < connections_.size(); ++r) answers_[r].reset();
  for (size_t r = 0; r < connections_.size(); ++r) {
    const Bytes* body = nullptr;
    switch (op) {
      case kRegister1:
        body = &engine_.pool().register1_body();
        break;
      case kRegister2:
        body = &registration_->realms[r].register2_body;
        break;
      case kRecover1:
        body = &engine_.pool().recover1_body();
        break;
      case kRecover2:
        body = full_ ? &full_->recover2_body() : &registration_->recover2_body;
        break;
      default:
        body = &registration_->realms[r].recover3_body;
        break;
    }
    connections_[r]->Send(tokens_[r], *body, op == kRegister2);
  }
}

Status Slot::CheckAnswer(size_t realm, const protocol::SecretsResponse& response) {
  switch (CurrentOp()) {
    case kRegister1:
      return std::holds_alternative<protocol::Register1Response>(response)
                 ? OkStatus()
                 : DataLossError("Register1 answered with another response type");
    case kRegister2:
      return std::holds_alternative<protocol::Register2Response>(response)
                 ? OkStatus()
                 : DataLossError("Register2 answered with another response type");
    case kRecover1:
      return RegistrationPool::CheckRecover1(*registration_, response);
    case kRecover2:
      if (full_) {
        return std::holds_alternative<protocol::Recover2Response>(response)
                   ? OkStatus()
                   : DataLossError("Recover2 answered with another response type");
      }
      return RegistrationPool::CheckRecover2(*registration_, realm, response);
    default:
      if (full_) {
        return std::holds_alternative<protocol::Recover3Response>(response)
                   ? OkStatus()
                   : DataLossError("Recover3 answered with another response type");
      }
      return RegistrationPool::CheckRecover3(*registration_, realm, response);
  }
}

void Slot::OnAnswer(size_t realm, Answer answer) {
  Clock::time_point now = Clock::now();
  std::string error;
  if (!answer.error.empty()) {
    error = answer.error;
  } else if (answer.status != 200) {
    // The realm's plain-text reason (never a secret: e.g. "jwt: token expired"), shortened.
    std::string reason(answer.body.begin(),
                       answer.body.begin() + std::min<size_t>(answer.body.size(), 60));
    for (char& c : reason) {
      if (c < 0x20 || c > 0x7e) c = '?';
    }
    error = "HTTP " + std::to_string(answer.status) + (reason.empty() ? "" : ": " + reason);
  } else {
    StatusOr<protocol::SecretsResponse> decoded = DecodeResponseCbor(answer.body);
    if (!decoded.ok()) {
      error = "undecodable answer";
    } else {
      Status checked = CheckAnswer(realm, *decoded);
      if (!checked.ok()) {
        error = checked.message();
      } else {
        answers_[realm] = std::move(decoded).value();
      }
    }
  }
  if (!answer.body.empty() && CurrentOp() == kRecover3) {
    sodium_memzero(answer.body.data(), answer.body.size());  // holds a key share
  }
  engine_.RecordRequest(CurrentOp(), connections_[realm]->sent(), now, error.empty(), error);
  if (!error.empty() && failure_.empty()) failure_ = error;
  if (--pending_ == 0) StepDone();
}

void Slot::StepDone() {
  if (failure_.empty() && full_) {
    Op op = CurrentOp();
    if (op == kRecover2) {
      std::vector<const protocol::Recover2Response*> r2;
      for (auto& a : answers_) r2.push_back(&std::get<protocol::Recover2Response>(*a));
      Status s = full_->CheckRecover2(r2, engine_.pool().recover_threshold());
      if (!s.ok()) failure_ = s.message();
    } else if (op == kRecover3) {
      std::vector<const protocol::Recover3Response*> r3;
      for (auto& a : answers_) r3.push_back(&std::get<protocol::Recover3Response>(*a));
      Status s = full_->CheckRecover3(r3, engine_.pool().recover_threshold());
      if (!s.ok()) {
        failure_ = s.message();
      } else {
        engine_.CountFullCheck();
      }
    }
  }
  for (auto& a : answers_) a.reset();
  int last = kind_ == FlowKind::kRegister ? 1 : 2;
  if (!failure_.empty() || step_ == last) {
    full_.reset();
    engine_.FlowDone(*this, failure_.empty(), arrival_, failure_);
    return;
  }
  ++step_;
  SendStep();
}

// ---- Engine ----

void Engine::RecordRequest(Op op, Clock::time_point sent, Clock::time_point now, bool ok,
                           const std::string& error) {
  if (ok) {
    ++tick_requests_;
  } else {
    ++result_.errors[error];
    ++tick_errors_;
  }
  if (!InWindow(sent) && !spec_.populate) return;
  if (ok) {
    ++result_.requests_ok;
    result_.ops[op].Record(static_cast<uint64_t>((now - sent).count()));
  } else {
    ++result_.requests_failed;
  }
}

void Engine::FlowDone(Slot& slot, bool ok, Clock::time_point arrival, const std::string& error) {
  Clock::time_point now = Clock::now();
  (void)error;  // counted per request already
  if (ok) {
    ++result_.flows_total_ok;
    ++tick_flows_;
    tick_latency_.Record(static_cast<uint64_t>((now - arrival).count()));
  }
  if ((spec_.populate || InWindow(arrival)) && ok) {
    result_.flow.Record(static_cast<uint64_t>((now - arrival).count()));
  }
  if (spec_.populate || InWindow(now)) {
    if (ok) {
      ++result_.flows_ok;
    } else {
      ++result_.flows_failed;
    }
  }
  --busy_slots_;
  if (!ok && !spec_.open && !finished_) {
    // A closed loop would retry a failing realm as fast as it answers; pause this client.
    ++busy_slots_;
    slot.pause.expires_after(std::chrono::milliseconds(20));
    slot.pause.async_wait([this, &slot](const boost::system::error_code&) {
      --busy_slots_;
      Continue(slot, Clock::now());
    });
    return;
  }
  Continue(slot, now);
}

void Engine::Continue(Slot& slot, Clock::time_point now) {
  if (spec_.populate) {
    if (next_populate_user_ < spec_.end_user) {
      StartNext(slot, now);
    } else {
      idle_.push_back(&slot);
      MaybeFinish();
    }
    return;
  }
  if (spec_.open) {
    if (!backlog_.empty()) {
      Clock::time_point next = backlog_.front();
      backlog_.pop_front();
      StartNext(slot, next);
    } else {
      idle_.push_back(&slot);
      MaybeFinish();
    }
    return;
  }
  if (now < window_end_) {
    StartNext(slot, now);
  } else {
    idle_.push_back(&slot);
    MaybeFinish();
  }
}

void Engine::StartNext(Slot& slot, Clock::time_point arrival) {
  ++busy_slots_;
  uint64_t user = 0;
  std::string name;
  if (spec_.populate) {
    user = next_populate_user_++;
    name = UserName(user);
  } else if (spec_.kind == FlowKind::kRegister) {
    // Fresh users: new records, as new sign-ups would create.
    user = registrations_started_++;
    name = "r" + run_nonce_ + "-" + std::to_string(user);
  } else if (spec_.open) {
    user = std::uniform_int_distribution<uint64_t>(0, options_.users - 1)(rng_);
    name = UserName(user);
  } else {
    // Closed loop: slot i takes users i, i + N, i + 2N, ... so two flows never share a user.
    uint64_t n = slots_.size();
    uint64_t per_slot = std::max<uint64_t>(1, options_.users / n);
    user = (slot.index() + n * (slot.closed_loop_counter++ % per_slot)) % options_.users;
    name = UserName(user);
  }
  slot.StartFlow(spec_.kind, user, std::move(name), arrival);
}

void Engine::ScheduleArrivals() {
  if (arrivals_done_) return;
  Clock::time_point now = Clock::now();
  while (next_arrival_ <= now) {
    if (next_arrival_ >= window_end_) {
      arrivals_done_ = true;
      MaybeFinish();
      return;
    }
    Clock::time_point arrival = next_arrival_;
    next_arrival_ += std::chrono::nanoseconds(static_cast<int64_t>(interarrival_(rng_) * 1e9));
    if (!idle_.empty()) {
      Slot* slot = idle_.back();
      idle_.pop_back();
      StartNext(*slot, arrival);
    } else {
      backlog_.push_back(arrival);
      result_.max_backlog = std::max<uint64_t>(result_.max_backlog, backlog_.size());
      // More than 10 s of arrivals waiting: the realm cannot keep up; stop the phase.
      if (backlog_.size() > std::max(1000.0, spec_.rate * 10)) {
        result_.overloaded = true;
        arrivals_done_ = true;
        backlog_.clear();
        MaybeFinish();
        return;
      }
    }
  }
  arrival_timer_.expires_at(next_arrival_);
  arrival_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) ScheduleArrivals();
  });
}

std::vector<ProcessSample> Engine::SampleRealms() const {
  std::vector<ProcessSample> samples;
  for (const Target& t : targets_) {
    samples.push_back(t.pid ? SampleProcess(*t.pid) : ProcessSample{});
  }
  return samples;
}

void Engine::Tick() {
  ++tick_number_;
  Clock::time_point now = Clock::now();
  for (auto& slot : slots_)
    slot->CheckTimeouts(now, std::chrono::milliseconds(options_.timeout_ms));
  if (now > drain_deadline_) {
    // Flows still running long after the end: give up on them.
    for (auto& slot : slots_) slot->CloseAll();
  }
  double cpu = SelfCpuSeconds();
  std::vector<ProcessSample> realms = SampleRealms();
  char line[512];
  int n = std::snprintf(
      line, sizeof(line),
      "[%s] %3ds %7llu flows/s %7llu req/s  flow p50 %s p99 %s ms  errors %llu  busy %d  "
      "backlog %zu  gen CPU %3.0f%%",
      spec_.name.c_str(), tick_number_, static_cast<unsigned long long>(tick_flows_),
      static_cast<unsigned long long>(tick_requests_),
      FormatMillis(tick_latency_.Percentile(0.5)).c_str(),
      FormatMillis(tick_latency_.Percentile(0.99)).c_str(),
      static_cast<unsigned long long>(tick_errors_), busy_slots_, backlog_.size(),
      (cpu - tick_cpu_) * 100);
  std::string text(line, n > 0 ? std::min<size_t>(n, sizeof(line) - 1) : 0);
  for (size_t r = 0; r < realms.size(); ++r) {
    if (!realms[r].ok) continue;
    char realm_text[96];
    std::snprintf(
        realm_text, sizeof(realm_text), "  realm%zu CPU %3.0f%% RSS %.1f MB", r,
        (realms[r].cpu_seconds - (r < tick_realms_.size() ? tick_realms_[r].cpu_seconds : 0)) * 100,
        realms[r].rss_kb / 1024.0);
    text += realm_text;
  }
  if (spec_.populate) {
    text += "  done " + std::to_string(result_.flows_total_ok) + "/" +
            std::to_string(spec_.end_user - spec_.first_user);
  }
  std::array<double, 3> load = LoadAverage();
  char load_text[32];
  std::snprintf(load_text, sizeof(load_text), "  load %.2f", load[0]);
  text += load_text;
  text_ << text << std::endl;
  tick_cpu_ = cpu;
  tick_realms_ = std::move(realms);
  tick_flows_ = tick_requests_ = tick_errors_ = 0;
  tick_latency_.Reset();
  if (finished_) return;
  tick_timer_.expires_at(phase_start_ + std::chrono::seconds(tick_number_ + 1));
  tick_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) Tick();
  });
}

void Engine::MaybeFinish() {
  if (finished_ || busy_slots_ > 0) return;
  bool done = spec_.populate ? next_populate_user_ >= spec_.end_user
              : spec_.open   ? arrivals_done_ && backlog_.empty()
                             : Clock::now() >= window_end_;
  if (!done) return;
  finished_ = true;
  arrival_timer_.cancel();
  tick_timer_.cancel();
  for (auto& slot : slots_) slot->CloseAll();
}

PhaseResult Engine::RunPhase(const PhaseSpec& spec) {
  spec_ = spec;
  result_ = PhaseResult();
  result_.spec = spec;
  finished_ = false;
  arrivals_done_ = false;
  backlog_.clear();
  busy_slots_ = 0;
  tick_number_ = 0;
  tick_flows_ = tick_requests_ = tick_errors_ = 0;
  tick_latency_.Reset();
  idle_.clear();
  next_populate_user_ = spec.first_user;

  result_.load_start = LoadAverage();
  std::vector<ProcessSample> realms_start = SampleRealms();
  std::vector<std::optional<RealmMetrics>> metrics_start = ScrapeRealms();
  double cpu_start = SelfCpuSeconds();
  std::optional<double> busy_start = MachineBusySeconds();
  tick_cpu_ = cpu_start;
  tick_realms_ = realms_start;

  io_.restart();
  phase_start_ = Clock::now();
  if (spec.populate) {
    window_start_ = phase_start_;
    window_end_ = Clock::time_point::max();
    drain_deadline_ = Clock::time_point::max();
  } else {
    window_start_ =
        phase_start_ + std::chrono::microseconds(static_cast<int64_t>(spec.warmup * 1e6));
    window_end_ =
        window_start_ + std::chrono::microseconds(static_cast<int64_t>(spec.seconds * 1e6));
    drain_deadline_ =
        window_end_ + std::chrono::milliseconds(options_.timeout_ms) + std::chrono::seconds(5);
  }
  // Sample the realms' CPU and the machine at the window's edges, not the phase's.
  std::vector<ProcessSample> realms_window_start = realms_start;
  double cpu_window_start = cpu_start;
  std::optional<double> busy_window_start = busy_start;
  asio::steady_timer window_timer(io_);
  if (!spec.populate && spec.warmup > 0) {
    window_timer.expires_at(window_start_);
    window_timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      realms_window_start = SampleRealms();
      metrics_start = ScrapeRealms();
      cpu_window_start = SelfCpuSeconds();
      busy_window_start = MachineBusySeconds();
    });
  }
  std::vector<ProcessSample> realms_window_end;
  std::vector<std::optional<RealmMetrics>> metrics_end;
  double cpu_window_end = 0;
  std::optional<double> busy_window_end;
  asio::steady_timer end_timer(io_);
  if (!spec.populate) {
    end_timer.expires_at(window_end_);
    end_timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      realms_window_end = SampleRealms();
      cpu_window_end = SelfCpuSeconds();
      busy_window_end = MachineBusySeconds();
      result_.load_end = LoadAverage();
      metrics_end = ScrapeRealms();
      MaybeFinish();
    });
  }

  for (auto it = slots_.rbegin(); it != slots_.rend(); ++it) idle_.push_back(it->get());
  if (spec.open) {
    interarrival_ = std::exponential_distribution<double>(spec.rate);
    next_arrival_ = phase_start_;
    asio::post(io_, [this] { ScheduleArrivals(); });
  } else {
    asio::post(io_, [this] {
      std::vector<Slot*> start = idle_;
      idle_.clear();
      for (Slot* slot : start) {
        if (spec_.populate && next_populate_user_ >= spec_.end_user) {
          idle_.push_back(slot);
          continue;
        }
        StartNext(*slot, Clock::now());
      }
      MaybeFinish();
    });
  }
  tick_timer_.expires_at(phase_start_ + std::chrono::seconds(1));
  tick_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) Tick();
  });
  io_.run();
  window_timer.cancel();
  end_timer.cancel();

  Clock::time_point phase_end = Clock::now();
  result_.wall_seconds = std::chrono::duration<double>(phase_end - phase_start_).count();
  if (metrics_end.empty()) metrics_end = ScrapeRealms();
  if (spec.populate) {
    result_.measured_seconds = result_.wall_seconds;
    realms_window_end = SampleRealms();
    cpu_window_end = SelfCpuSeconds();
    busy_window_end = MachineBusySeconds();
    result_.load_end = LoadAverage();
  } else {
    result_.measured_seconds = spec.seconds;
    if (realms_window_end.empty()) {  // the phase ended early (overload)
      realms_window_end = SampleRealms();
      cpu_window_end = SelfCpuSeconds();
      busy_window_end = MachineBusySeconds();
      result_.load_end = LoadAverage();
    }
  }
  result_.generator_cpu_seconds = cpu_window_end - cpu_window_start;
  if (busy_window_start && busy_window_end) {
    result_.machine_busy_seconds = *busy_window_end - *busy_window_start;
  }
  for (size_t r = 0; r < targets_.size(); ++r) {
    result_.metrics.push_back(MetricsWindow{r, metrics_start[r], metrics_end[r]});
  }
  for (size_t r = 0; r < targets_.size(); ++r) {
    if (!targets_[r].pid) continue;
    ProcessWindow w;
    w.pid = *targets_[r].pid;
    w.start = realms_window_start[r];
    w.end = realms_window_end[r];
    result_.realms.push_back(w);
  }
  return std::move(result_);
}

// ---------------------------------------------------------------------------------------
// Reports

struct FloorReport {
  bool measured = false;
  std::string hsm;
  FloorCosts costs;
  std::optional<FloorResult> recovery;
  std::optional<FloorResult> registration;
  int workers = 0;
  int clients = 0;
  std::array<double, 3> load{};
};

std::string Fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.*f", decimals, value);
  return text;
}

const FloorResult* FloorFor(const FloorReport& floor, FlowKind kind) {
  const std::optional<FloorResult>& r =
      kind == FlowKind::kRecover ? floor.recovery : floor.registration;
  return r ? &*r : nullptr;
}

// OtherCpuSeconds is the CPU time the machine spent on neither the generator nor the realms
// during the window (other people's work on a shared machine), when every realm was readable
// and is not this process.
std::optional<double> OtherCpuSeconds(const PhaseResult& p) {
  if (!p.machine_busy_seconds) return std::nullopt;
  double ours = p.generator_cpu_seconds;
  for (const ProcessWindow& w : p.realms) {
    if (!w.end.ok || w.pid == getpid()) return std::nullopt;
    ours += w.end.cpu_seconds - w.start.cpu_seconds;
  }
  return std::max(0.0, *p.machine_busy_seconds - ours);
}

void PrintPhase(std::ostream& out, const PhaseResult& p, const FloorReport& floor,
                size_t realm_count, int connections) {
  const PhaseSpec& s = p.spec;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  out << "\n== " << s.name << ": " << FlowName(s.kind) << " flows, "
      << (s.populate ? "populate"
          : s.open   ? "open loop at " + Fixed(s.rate, 0) + " flows/s"
                     : "closed loop")
      << ", " << connections << " connections x " << realm_count << " realm(s), "
      << Fixed(p.measured_seconds, 1) << " s measured (load average " << Fixed(p.load_start[0], 2)
      << " -> " << Fixed(p.load_end[0], 2) << ")\n";
  out << "flows: " << p.flows_ok << " ok, " << p.flows_failed
      << " failed: " << Fixed(p.flows_per_second(), 1) << " flows/s; requests: " << p.requests_ok
      << " ok, " << p.requests_failed << " failed: " << Fixed(p.requests_per_second(), 1)
      << " req/s";
  if (p.full_checks > 0) out << "; " << p.full_checks << " recoveries fully verified";
  out << "\n";
  if (s.open) {
    out << "open loop: most flows waiting for a connection " << p.max_backlog
        << (p.overloaded ? " -- OVERLOADED: more than 10 s of arrivals queued, phase stopped" : "")
        << "\n";
  }
  char header[128];
  std::snprintf(header, sizeof(header), "  %-10s %9s %9s %9s %9s %9s %9s\n", "latency ms", "count",
                "mean", "p50", "p90", "p99", "max");
  out << header;
  auto row = [&](const char* name, const LatencyHistogram& h) {
    if (h.count() == 0) return;
    char line[160];
    std::snprintf(line, sizeof(line), "  %-10s %9llu %9.2f %9s %9s %9s %9s\n", name,
                  static_cast<unsigned long long>(h.count()), h.mean_nanos() / 1e6,
                  FormatMillis(h.Percentile(0.5)).c_str(), FormatMillis(h.Percentile(0.9)).c_str(),
                  FormatMillis(h.Percentile(0.99)).c_str(), FormatMillis(h.max_nanos()).c_str());
    out << line;
  };
  for (int op = 0; op < kOpCount; ++op) row(kOpNames[op], p.ops[op]);
  row(s.kind == FlowKind::kRecover ? "recovery" : "register", p.flow);
  if (p.errors.empty()) {
    out << "errors: none\n";
  } else {
    out << "errors:\n";
    for (const auto& [kind, count] : p.errors) out << "  " << count << "  " << kind << "\n";
  }
  double seconds = p.measured_seconds;
  out << "generator CPU: " << Fixed(p.generator_cpu_seconds / seconds, 2) << " cores ("
      << Fixed(100 * p.generator_cpu_seconds / seconds / cpus, 1) << "% of the machine)";
  if (p.machine_busy_seconds) {
    out << "; machine busy " << Fixed(100 * *p.machine_busy_seconds / seconds / cpus, 1) << "%";
    if (std::optional<double> others = OtherCpuSeconds(p)) {
      out << "; other processes " << Fixed(*others / seconds, 2) << " cores";
    }
  }
  out << "\n";
  for (const ProcessWindow& w : p.realms) {
    if (!w.end.ok) {
      out << "realm pid " << w.pid << ": not readable\n";
      continue;
    }
    double cpu = w.end.cpu_seconds - w.start.cpu_seconds;
    out << "realm pid " << w.pid << ": CPU " << Fixed(cpu / seconds, 2) << " cores ("
        << Fixed(100 * cpu / seconds / cpus, 1) << "%), RSS " << Fixed(w.end.rss_kb / 1024.0, 1)
        << " MB (peak " << Fixed(w.end.hwm_kb / 1024.0, 1) << " MB), " << w.end.threads
        << " threads";
    if (p.flows_ok > 0) {
      out << ", " << Fixed(cpu * 1e6 / p.flows_ok, 0) << " us CPU per flow";
    }
    out << "\n";
  }
  for (const MetricsWindow& m : p.metrics) {
    if (!m.start || !m.end) continue;
    out << "realm " << m.realm << " /metrics over the window:";
    for (int op = 0; op < kOpCount; ++op) {
      std::string labels = std::string("{endpoint=\"/req\",operation=\"") + kOpNames[op] + "\"}";
      double count =
          MetricDelta(*m.start, *m.end, "pinvault_request_duration_seconds_count" + labels);
      if (count <= 0) continue;
      double sum = MetricDelta(*m.start, *m.end, "pinvault_request_duration_seconds_sum" + labels);
      out << " " << kOpNames[op] << " " << Fixed(sum / count * 1e3, 2) << " ms in realm;";
    }
    out << "\n  HSM calls per flow (mean us):";
    for (const char* call : {"mac", "seal", "unseal", "store_anchor", "load_anchor", "sign"}) {
      std::string labels = std::string("{call=\"") + call + "\"}";
      double count =
          MetricDelta(*m.start, *m.end, "pinvault_hsm_call_duration_seconds_count" + labels);
      if (count <= 0) continue;
      double sum = MetricDelta(*m.start, *m.end, "pinvault_hsm_call_duration_seconds_sum" + labels);
      double flows = std::max<double>(1, p.spec.populate ? p.flows_total_ok : p.flows_ok);
      out << " " << call << " " << Fixed(count / flows, 2) << " x " << Fixed(sum / count * 1e6, 1)
          << ";";
    }
    double commits = MetricDelta(*m.start, *m.end,
                                 "pinvault_hsm_call_duration_seconds_count{call=\"store_anchor\"}");
    if (commits > 0) {
      out << "\n  group commits (anchor writes): " << Fixed(commits / p.measured_seconds, 0)
          << "/s";
    }
    out << "\n";
  }
  if (const FloorResult* f = FloorFor(floor, s.kind); f && !s.populate && !s.open) {
    double realm_ops = p.flows_per_second() * realm_count;
    double ratio = realm_ops / f->operations_per_second;
    out << "floor (" << FlowName(s.kind) << "): " << Fixed(f->operations_per_second, 0)
        << " ops/s; realm " << Fixed(realm_ops, 0) << " " << FlowName(s.kind)
        << " ops/s (flows x realms) -> realm/floor " << Fixed(ratio, 2)
        << (ratio >= 0.6 ? " (>= 0.60: PASS)" : " (< 0.60: FAIL)") << "\n";
    double realm_cpu = 0;
    bool all_read = !p.realms.empty();
    for (const ProcessWindow& w : p.realms) {
      if (!w.end.ok) all_read = false;
      realm_cpu += w.end.cpu_seconds - w.start.cpu_seconds;
    }
    if (all_read && p.flows_ok > 0 && f->cpu_us_per_operation > 0) {
      double per_op = realm_cpu * 1e6 / (static_cast<double>(p.flows_ok) * realm_count);
      out << "CPU per " << FlowName(s.kind) << " op: realm " << Fixed(per_op, 0) << " us, floor "
          << Fixed(f->cpu_us_per_operation, 0) << " us (floor/realm "
          << Fixed(f->cpu_us_per_operation / per_op, 2) << ")\n";
    }
  }
}

Json HistogramJson(const LatencyHistogram& h) {
  Json j;
  j["count"] = h.count();
  j["mean_ms"] = h.mean_nanos() / 1e6;
  j["p50_ms"] = h.Percentile(0.5) / 1e6;
  j["p90_ms"] = h.Percentile(0.9) / 1e6;
  j["p99_ms"] = h.Percentile(0.99) / 1e6;
  j["max_ms"] = h.max_nanos() / 1e6;
  return j;
}

Json PhaseJson(const PhaseResult& p, const FloorReport& floor, size_t realm_count) {
  Json j;
  j["name"] = p.spec.name;
  j["flow"] = FlowName(p.spec.kind);
  j["mode"] = p.spec.populate ? "populate" : p.spec.open ? "open" : "closed";
  if (p.spec.open) j["target_rate"] = p.spec.rate;
  j["measured_seconds"] = p.measured_seconds;
  j["wall_seconds"] = p.wall_seconds;
  j["flows_ok"] = p.flows_ok;
  j["flows_failed"] = p.flows_failed;
  j["flows_per_second"] = p.flows_per_second();
  j["requests_ok"] = p.requests_ok;
  j["requests_failed"] = p.requests_failed;
  j["requests_per_second"] = p.requests_per_second();
  j["full_checks"] = p.full_checks;
  if (p.spec.open) {
    j["max_backlog"] = p.max_backlog;
    j["overloaded"] = p.overloaded;
  }
  Json latency;
  for (int op = 0; op < kOpCount; ++op) {
    if (p.ops[op].count() > 0) latency[kOpNames[op]] = HistogramJson(p.ops[op]);
  }
  latency["flow"] = HistogramJson(p.flow);
  j["latency"] = latency;
  j["errors"] = Json::object();
  for (const auto& [kind, count] : p.errors) j["errors"][kind] = count;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  j["generator_cpu_cores"] = p.generator_cpu_seconds / p.measured_seconds;
  j["generator_cpu_share"] = p.generator_cpu_seconds / p.measured_seconds / cpus;
  if (p.machine_busy_seconds) {
    j["machine_busy_share"] = *p.machine_busy_seconds / p.measured_seconds / cpus;
    if (std::optional<double> others = OtherCpuSeconds(p)) {
      j["other_processes_cpu_cores"] = *others / p.measured_seconds;
    }
  }
  j["realms"] = Json::array();
  for (const ProcessWindow& w : p.realms) {
    Json r;
    r["pid"] = w.pid;
    if (w.end.ok) {
      r["cpu_cores"] = (w.end.cpu_seconds - w.start.cpu_seconds) / p.measured_seconds;
      r["rss_mb"] = w.end.rss_kb / 1024.0;
      r["peak_rss_mb"] = w.end.hwm_kb / 1024.0;
      r["threads"] = w.end.threads;
    }
    j["realms"].push_back(r);
  }
  j["realm_metrics"] = Json::array();
  for (const MetricsWindow& m : p.metrics) {
    Json r;
    r["realm"] = m.realm;
    if (m.start && m.end) {
      for (int op = 0; op < kOpCount; ++op) {
        std::string labels = std::string("{endpoint=\"/req\",operation=\"") + kOpNames[op] + "\"}";
        double count =
            MetricDelta(*m.start, *m.end, "pinvault_request_duration_seconds_count" + labels);
        if (count <= 0) continue;
        double sum =
            MetricDelta(*m.start, *m.end, "pinvault_request_duration_seconds_sum" + labels);
        r["in_realm_mean_ms"][kOpNames[op]] = sum / count * 1e3;
      }
      for (const char* call : {"mac", "seal", "unseal", "store_anchor", "load_anchor", "sign"}) {
        std::string labels = std::string("{call=\"") + call + "\"}";
        double count =
            MetricDelta(*m.start, *m.end, "pinvault_hsm_call_duration_seconds_count" + labels);
        if (count <= 0) continue;
        double sum =
            MetricDelta(*m.start, *m.end, "pinvault_hsm_call_duration_seconds_sum" + labels);
        r["hsm_calls"][call] = {{"count", count}, {"mean_us", sum / count * 1e6}};
      }
    }
    j["realm_metrics"].push_back(r);
  }
  j["load_average_start"] = p.load_start;
  j["load_average_end"] = p.load_end;
  if (const FloorResult* f = FloorFor(floor, p.spec.kind); f && !p.spec.populate && !p.spec.open) {
    j["realm_over_floor"] = p.flows_per_second() * realm_count / f->operations_per_second;
    double realm_cpu = 0;
    bool all_read = !p.realms.empty();
    for (const ProcessWindow& w : p.realms) {
      if (!w.end.ok) all_read = false;
      realm_cpu += w.end.cpu_seconds - w.start.cpu_seconds;
    }
    if (all_read && p.flows_ok > 0) {
      j["realm_cpu_us_per_op"] = realm_cpu * 1e6 / (static_cast<double>(p.flows_ok) * realm_count);
      j["floor_cpu_us_per_op"] = f->cpu_us_per_operation;
    }
  }
  return j;
}

// ---------------------------------------------------------------------------------------
// main

StatusOr<std::vector<std::pair<std::string, protocol::RealmId>>> RealmsFromSpecs(
    const Options& o, uint32_t* threshold) {
  std::vector<std::pair<std::string, protocol::RealmId>> realms;
  if (!o.config_file.empty()) {
    std::ifstream in(o.config_file);
    if (!in) return NotFoundError("cannot read " + o.config_file);
    std::stringstream text;
    text << in.rdbuf();
    ASSIGN_OR_RETURN(backup::Configuration c, backup::Configuration::FromJson(text.str()));
    for (const backup::RealmEndpoint& r : c.realms()) realms.emplace_back(r.address, r.id);
    *threshold = c.recover_threshold();
    return realms;
  }
  for (const std::string& spec : o.realm_specs) {
    size_t hash = spec.rfind('#');
    if (hash == std::string::npos) {
      return InvalidArgumentError("--realm wants URL#REALM_ID, got " + spec);
    }
    ASSIGN_OR_RETURN(protocol::RealmId id, backup::ParseRealmId(spec.substr(hash + 1)));
    realms.emplace_back(spec.substr(0, hash), id);
  }
  return realms;
}

StatusOr<TenantKey> LoadSigningKey(const Options& o, uint64_t* version) {
  if (o.tenant_keys.empty()) {
    return InvalidArgumentError("--tenant-keys FILE is needed to mint tokens for running realms");
  }
  std::vector<std::string> warnings;
  ASSIGN_OR_RETURN(std::unique_ptr<TenantKeyStore> store,
                   TenantKeyStore::LoadFile(o.tenant_keys, &warnings));
  std::optional<uint64_t> latest = store->LatestVersion(o.tenant);
  if (!latest) return NotFoundError("no key for tenant " + o.tenant + " in " + o.tenant_keys);
  std::optional<TenantKey> key = store->Find(o.tenant, *latest);
  if (!key || !key->can_sign()) {
    return FailedPreconditionError("the key of tenant " + o.tenant +
                                   " cannot sign (a public key only)");
  }
  *version = *latest;
  return *key;
}

std::filesystem::path MakeWorkDir(const Options& o) {
  std::string base = o.work_dir;
  if (base.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    base = tmp && *tmp ? tmp : "/tmp";
  }
  std::filesystem::create_directories(base);
  std::string pattern = (std::filesystem::path(base) / "pinvault-bench-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) return {};
  return pattern;
}

int Run(const Options& o) {
  std::ostream& text = o.json && o.json_file.empty() ? std::cerr : std::cout;
  auto fail = [&](const std::string& what, const Status& status) {
    std::cerr << "pinvault-bench: " << what << ": " << status << std::endl;
    return kExitUsage;
  };
  std::filesystem::path work = MakeWorkDir(o);
  if (work.empty()) return fail("work directory", InternalError("mkdtemp failed"));
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{work};

  // SoftHSM2 tokens of this process (floor, embedded realms) before anything loads it.
  std::unique_ptr<ScratchTokens> tokens;
  if (o.floor_seconds > 0 || o.embedded > 0) {
    std::vector<std::string> labels;
    if (o.floor_seconds > 0) labels.push_back("bench-floor");
    for (int i = 0; i < o.embedded; ++i) labels.push_back("bench-realm-" + std::to_string(i));
    StatusOr<std::unique_ptr<ScratchTokens>> t = ScratchTokens::Create(work / "softhsm", labels);
    if (!t.ok()) return fail("SoftHSM2", t.status());
    tokens = std::move(t).value();
  }

  // Realms and the signing key.
  uint32_t threshold = 0;
  std::vector<std::pair<std::string, protocol::RealmId>> realm_list;
  std::vector<std::unique_ptr<EmbeddedRealm>> embedded;
  std::optional<TenantKey> signing_key;
  uint64_t key_version = 1;
  std::ostringstream request_log;
  if (o.embedded > 0) {
    StatusOr<TenantKey> key = TenantKey::Generate(o.jwt_alg == "EdDSA"   ? JwtAlgorithm::kEdDsa
                                                  : o.jwt_alg == "RS256" ? JwtAlgorithm::kRs256
                                                                         : JwtAlgorithm::kHs256);
    if (!key.ok()) return fail("tenant key", key.status());
    auto keys = std::make_shared<TenantKeyStore>();
    if (Status s = keys->Add(o.tenant, 1, key->PublicOnly()); !s.ok()) return fail("tenant", s);
    signing_key = *key;
    for (int i = 0; i < o.embedded; ++i) {
      StatusOr<std::unique_ptr<EmbeddedRealm>> e =
          StartEmbeddedRealm(*tokens, work, i, keys, request_log);
      if (!e.ok()) return fail("embedded realm", e.status());
      realm_list.emplace_back("http://127.0.0.1:" + std::to_string((*e)->server->port()) + "/",
                              (*e)->id);
      embedded.push_back(std::move(e).value());
    }
  } else {
    StatusOr<std::vector<std::pair<std::string, protocol::RealmId>>> r =
        RealmsFromSpecs(o, &threshold);
    if (!r.ok()) return fail("realms", r.status());
    realm_list = std::move(r).value();
    StatusOr<TenantKey> key = LoadSigningKey(o, &key_version);
    if (!key.ok()) return fail("tenant key", key.status());
    signing_key = *key;
  }
  if (o.threshold > 0) threshold = static_cast<uint32_t>(o.threshold);
  if (threshold == 0) threshold = static_cast<uint32_t>(realm_list.size() / 2 + 1);

  std::sort(realm_list.begin(), realm_list.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  std::vector<Target> targets;
  std::vector<protocol::RealmId> ids;
  for (size_t i = 0; i < realm_list.size(); ++i) {
    StatusOr<Target> t = MakeTarget(realm_list[i].first, realm_list[i].second);
    if (!t.ok()) return fail("realm", t.status());
    if (o.embedded > 0) {
      t->pid = getpid();
    } else if (!o.realm_pids.empty()) {
      // --realm-pid values follow the order the realms were given in; map them by id.
      std::vector<std::pair<std::string, protocol::RealmId>> given;
      uint32_t ignored = 0;
      given = RealmsFromSpecs(o, &ignored).value();
      for (size_t g = 0; g < given.size() && g < o.realm_pids.size(); ++g) {
        if (given[g].second == t->id) t->pid = o.realm_pids[g];
      }
    } else if (t->endpoint.address().is_loopback()) {
      t->pid = FindListeningPid(t->endpoint.port());
    }
    ids.push_back(t->id);
    targets.push_back(std::move(t).value());
  }

  Json report;
  report["tool"] = "pinvault-bench";
  report["machine"] = MachineDescription();
  Json versions;
  for (const auto& [name, version] : SoftwareVersions()) versions[name] = version;
  report["versions"] = versions;
  text << "pinvault-bench: " << MachineDescription() << "\n";
  for (const auto& [name, version] : SoftwareVersions())
    text << "  " << name << " " << version << "\n";
  text << "realms (" << targets.size() << ", recover threshold " << threshold << "):\n";
  report["realms"] = Json::array();
  for (const Target& t : targets) {
    text << "  " << t.url << "  id " << backup::RealmIdHex(t.id) << "  pid "
         << (t.pid ? std::to_string(*t.pid) : std::string("unknown"))
         << (o.embedded > 0 ? " (embedded: RSS and CPU include the generator)" : "") << "\n";
    report["realms"].push_back({{"url", t.url},
                                {"id", backup::RealmIdHex(t.id)},
                                {"pid", t.pid ? *t.pid : 0},
                                {"embedded", o.embedded > 0}});
  }

  // PreparedRegistration material.
  Clock::time_point material_start = Clock::now();
  StatusOr<std::unique_ptr<RegistrationPool>> pool = RegistrationPool::Create(
      o.seed, o.pool, ids, threshold, static_cast<uint16_t>(o.num_guesses));
  if (!pool.ok()) return fail("registration material", pool.status());
  double material_seconds = std::chrono::duration<double>(Clock::now() - material_start).count();
  text << "precomputed " << o.pool << " registrations (FastInsecure PIN hashing) in "
       << Fixed(material_seconds, 2) << " s\n";

  // Tokens are minted per flow, so they only need to outlive one flow.
  TokenMinter minter(*signing_key, o.tenant, key_version, /*lifetime=*/600);
  if (StatusOr<std::string> probe = minter.Mint("u0", backup::RealmIdHex(ids[0])); !probe.ok()) {
    return fail("minting a token", probe.status());
  }
  Engine engine(o, targets, **pool, minter, text);

  Json config;
  config["connections"] = o.connections;
  config["flows"] = o.flows;
  config["seconds"] = o.seconds;
  config["warmup"] = o.warmup;
  config["users"] = o.users;
  config["pool"] = o.pool;
  config["seed"] = o.seed;
  config["num_guesses"] = o.num_guesses;
  config["recover_threshold"] = threshold;
  config["verify_every"] = o.verify_every;
  config["pin_hashing"] = "FastInsecure (precomputed)";
  config["tenant"] = o.tenant;
  report["config"] = config;
  report["phases"] = Json::array();

  bool any_errors = false;
  bool empty_phase = false;
  auto run_phase = [&](const PhaseSpec& spec) {
    PhaseResult result = engine.RunPhase(spec);
    FloorReport none;
    PrintPhase(text, result, none, targets.size(), o.connections);
    if (result.requests_failed > 0 || result.flows_failed > 0 || !result.errors.empty()) {
      any_errors = true;
    }
    if (result.flows_ok == 0) empty_phase = true;
    return result;
  };

  // Populate only.
  if (o.populate) {
    PhaseSpec spec;
    spec.name = "populate";
    spec.kind = FlowKind::kRegister;
    spec.populate = true;
    spec.first_user = o.populate_from;
    spec.end_user = o.populate_from + *o.populate;
    PhaseResult r = run_phase(spec);
    text << "populated users u" << spec.first_user << "..u" << spec.end_user - 1 << " in "
         << Fixed(r.wall_seconds, 1) << " s (" << Fixed(r.flows_total_ok / r.wall_seconds, 0)
         << " registrations/s)\n";
    report["phases"].push_back(PhaseJson(r, FloorReport(), targets.size()));
  } else {
    bool wants_recover = std::find(o.flows.begin(), o.flows.end(), "recover") != o.flows.end();
    if (wants_recover && !o.skip_setup) {
      PhaseSpec spec;
      spec.name = "setup";
      spec.kind = FlowKind::kRegister;
      spec.populate = true;
      spec.end_user = o.users;
      PhaseResult r = run_phase(spec);
      report["setup"] = PhaseJson(r, FloorReport(), targets.size());
    }

    // The floor, with the realms idle.
    FloorReport floor;
    if (o.floor_seconds > 0) {
      int cpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
      floor.workers = o.floor_workers > 0 ? o.floor_workers : std::max(2, cpus);
      floor.clients = o.connections;
      floor.load = LoadAverage();
      StatusOr<std::unique_ptr<vault::Hsm>> hsm = tokens->Open("bench-floor");
      if (!hsm.ok()) return fail("floor token", hsm.status());
      floor.hsm = tokens->description();
      StatusOr<FloorCosts> costs = MeasureFloorCosts(**hsm, work);
      if (!costs.ok()) return fail("floor costs", costs.status());
      floor.costs = *costs;
      for (const std::string& flow : o.flows) {
        FloorShape shape = flow == "recover" ? FloorShape::kRecovery : FloorShape::kRegistration;
        StatusOr<FloorResult> f =
            MeasureFloor(**hsm, work, shape, floor.clients, floor.workers, o.floor_seconds);
        if (!f.ok()) return fail("floor", f.status());
        (shape == FloorShape::kRecovery ? floor.recovery : floor.registration) = *f;
      }
      floor.measured = true;
      text << "\n== floor (" << floor.hsm << "; " << floor.workers << " worker threads + 1 writer, "
           << floor.clients << " closed-loop clients, load average " << Fixed(floor.load[0], 2)
           << ")\n";
      text << "  one thread: EvaluateWithProof " << Fixed(floor.costs.evaluate_with_proof_us, 1)
           << " us, HSM HMAC " << Fixed(floor.costs.hsm_hmac_us, 1) << " us, HSM seal "
           << Fixed(floor.costs.hsm_seal_us, 1) << " us, HSM unseal "
           << Fixed(floor.costs.hsm_unseal_us, 1) << " us, SQLite row in a 64-row durable batch "
           << Fixed(floor.costs.sqlite_row_in_batch_us, 1) << " us (commit alone "
           << Fixed(floor.costs.sqlite_commit_us, 0) << " us); per group commit the realm also "
           << "writes its anchor to the token: " << Fixed(floor.costs.hsm_anchor_write_us, 0)
           << " us, and the next HSM HMAC takes "
           << Fixed(floor.costs.hsm_hmac_after_anchor_write_us, 1) << " us\n";
      if (floor.recovery) {
        text << "  recovery floor (3 HMAC, unseal, EvaluateWithProof, 2 seals, 2 durable rows): "
             << Fixed(floor.recovery->operations_per_second, 0) << " ops/s (avg "
             << Fixed(floor.recovery->average_batch, 1) << " rows/commit), "
             << Fixed(floor.recovery->cpu_us_per_operation, 0) << " us CPU per op\n";
      }
      if (floor.registration) {
        text << "  registration floor (HMAC, seal, 1 durable row): "
             << Fixed(floor.registration->operations_per_second, 0) << " ops/s (avg "
             << Fixed(floor.registration->average_batch, 1) << " rows/commit), "
             << Fixed(floor.registration->cpu_us_per_operation, 0) << " us CPU per op\n";
      }
      Json fj;
      fj["hsm"] = floor.hsm;
      fj["workers"] = floor.workers;
      fj["clients"] = floor.clients;
      fj["load_average"] = floor.load;
      fj["evaluate_with_proof_us"] = floor.costs.evaluate_with_proof_us;
      fj["hsm_hmac_us"] = floor.costs.hsm_hmac_us;
      fj["hsm_seal_us"] = floor.costs.hsm_seal_us;
      fj["hsm_unseal_us"] = floor.costs.hsm_unseal_us;
      fj["sqlite_row_in_batch_us"] = floor.costs.sqlite_row_in_batch_us;
      fj["sqlite_commit_us"] = floor.costs.sqlite_commit_us;
      fj["hsm_anchor_write_us"] = floor.costs.hsm_anchor_write_us;
      fj["hsm_hmac_after_anchor_write_us"] = floor.costs.hsm_hmac_after_anchor_write_us;
      if (floor.recovery) {
        fj["recovery_ops_per_second"] = floor.recovery->operations_per_second;
        fj["recovery_cpu_us_per_op"] = floor.recovery->cpu_us_per_operation;
      }
      if (floor.registration) {
        fj["registration_ops_per_second"] = floor.registration->operations_per_second;
        fj["registration_cpu_us_per_op"] = floor.registration->cpu_us_per_operation;
      }
      report["floor"] = fj;
    }

    for (const std::string& flow : o.flows) {
      FlowKind kind = flow == "recover" ? FlowKind::kRecover : FlowKind::kRegister;
      PhaseSpec spec;
      spec.kind = kind;
      spec.seconds = o.seconds;
      spec.warmup = o.warmup;
      spec.open = o.open_mode;
      spec.rate = o.rate;
      spec.name = flow + (o.open_mode ? " open " + Fixed(o.rate, 0) + "/s" : " closed");
      PhaseResult r = engine.RunPhase(spec);
      PrintPhase(text, r, floor, targets.size(), o.connections);
      if (r.requests_failed > 0 || r.flows_failed > 0 || !r.errors.empty()) any_errors = true;
      if (r.flows_ok == 0) empty_phase = true;
      report["phases"].push_back(PhaseJson(r, floor, targets.size()));
      if (!o.open_mode) {
        double peak = r.flows_per_second();
        for (double fraction : o.open_fractions) {
          PhaseSpec open = spec;
          open.open = true;
          open.rate = std::max(1.0, peak * fraction);
          open.name = flow + " open " + Fixed(fraction * 100, 0) + "%";
          PhaseResult ro = engine.RunPhase(open);
          PrintPhase(text, ro, floor, targets.size(), o.connections);
          if (ro.requests_failed > 0 || ro.flows_failed > 0 || !ro.errors.empty()) {
            any_errors = true;
          }
          if (ro.flows_ok == 0) empty_phase = true;
          Json pj = PhaseJson(ro, floor, targets.size());
          pj["fraction_of_peak"] = fraction;
          report["phases"].push_back(pj);
        }
      }
    }
  }

  report["result"] = any_errors ? "errors" : empty_phase ? "no flows completed" : "ok";
  if (o.json) {
    std::string dumped = report.dump(2);
    if (o.json_file.empty()) {
      std::cout << dumped << std::endl;
    } else {
      std::ofstream out(o.json_file);
      out << dumped << "\n";
      if (!out) return fail("--json", InternalError("cannot write " + o.json_file));
    }
  }
  text << "\nresult: "
       << (any_errors    ? "ERRORS (see above)"
           : empty_phase ? "NO FLOWS"
                         : "ok")
       << std::endl;
  return any_errors || empty_phase ? kExitErrors : kExitOk;
}

}  // namespace
}  // namespace pinvault::api::bench

int main(int argc, char** argv) {
  if (sodium_init() < 0) {
    std::fprintf(stderr, "pinvault-bench: libsodium failed to initialise\n");
    return 2;
  }
  bool help = false;
  pinvault::StatusOr<pinvault::api::bench::Options> options =
      pinvault::api::bench::ParseOptions(argc, argv, &help);
  if (help) {
    std::cout << pinvault::api::bench::kUsage;
    return 0;
  }
  if (!options.ok()) {
    std::cerr << "pinvault-bench: " << options.status().message() << "\n(see --help)" << std::endl;
    return 2;
  }
  return pinvault::api::bench::Run(*options);
}
