// bench_client: the client library's cost per register and per recover, against in-memory
// realms reached through an inline transport, printed next to the cost of the Argon2 call
// alone (HashPin with the same mode), measured in the same run.
//
// The in-memory realms' own work (Recover2's evaluation and proof, ...) runs inline on the
// same thread; it is timed separately and subtracted, so "client" is the client library's
// share: PIN hashing, sharing and signing at registration, proof and signature checks,
// Lagrange combination, finalisation and decryption at recovery, plus the fan-out.
//
// Usage: bench_client [--quick]   (--quick: a few iterations, for the CTest smoke run)
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backup/client/client.h"
#include "tests/testing/in_memory_realm.h"
#include "vault/protocol/pin_hash.h"

namespace pinvault::backup {
namespace {

using Clock = std::chrono::steady_clock;
using ::pinvault::testing::FixedTokenProvider;
using ::pinvault::testing::InMemoryRealm;
using ::pinvault::testing::InMemoryTransport;

int g_failures = 0;

void Check(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "FAILED: %s\n", what.c_str());
    ++g_failures;
  }
}

// TimedRealm forwards to an InMemoryRealm and adds the time spent there to a counter.
class TimedRealm : public vault::RealmService {
 public:
  TimedRealm(std::shared_ptr<InMemoryRealm> realm, std::shared_ptr<std::atomic<int64_t>> ns)
      : realm_(std::move(realm)), ns_(std::move(ns)) {}
  void Submit(vault::RequestContext context, protocol::SecretsRequest request,
              vault::ResponseCallback done) override {
    std::optional<StatusOr<protocol::SecretsResponse>> answer;
    const auto start = Clock::now();
    realm_->Submit(
        std::move(context), std::move(request),
        [&answer](StatusOr<protocol::SecretsResponse> r) { answer.emplace(std::move(r)); });
    *ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
    done(std::move(*answer));
  }
  Status Ready() const override { return realm_->Ready(); }

 private:
  std::shared_ptr<InMemoryRealm> realm_;
  std::shared_ptr<std::atomic<int64_t>> ns_;
};

struct Setup {
  std::shared_ptr<std::atomic<int64_t>> realm_ns = std::make_shared<std::atomic<int64_t>>(0);
  std::unique_ptr<Client> client;
};

Setup MakeSetup(int realms, uint32_t threshold, protocol::PinHashingMode mode) {
  Setup setup;
  auto transport = std::make_shared<InMemoryTransport>();
  std::vector<RealmEndpoint> list;
  for (int i = 0; i < realms; ++i) {
    RealmId id{};
    id[0] = static_cast<uint8_t>(0x10 + i);
    transport->AddRealm(
        id, std::make_shared<TimedRealm>(std::make_shared<InMemoryRealm>(id), setup.realm_ns));
    list.push_back(
        RealmEndpoint{id, "https://realm" + std::to_string(i) + ".example/", std::nullopt});
  }
  StatusOr<Configuration> configuration =
      Configuration::Create(std::move(list), static_cast<uint32_t>(realms), threshold, mode);
  Check(configuration.ok(), "configuration");
  StatusOr<std::unique_ptr<Client>> client =
      Client::Create(*configuration, {}, transport, std::make_shared<FixedTokenProvider>("bench"));
  Check(client.ok(), "client");
  setup.client = std::move(client).value();
  return setup;
}

struct Timing {
  double total_us = 0;
  double realm_us = 0;
  double client_us() const { return total_us - realm_us; }
};

// Measure runs `fn` `iterations` times (after one warm-up call) and splits the time per
// call between the realms and the client.
Timing Measure(const Setup& setup, int iterations, const std::function<void()>& fn) {
  fn();
  setup.realm_ns->store(0);
  const auto start = Clock::now();
  for (int i = 0; i < iterations; ++i) fn();
  const double total_ns = static_cast<double>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
  Timing t;
  t.total_us = total_ns / 1000.0 / iterations;
  t.realm_us = static_cast<double>(setup.realm_ns->load()) / 1000.0 / iterations;
  return t;
}

double MeasureArgon2(protocol::PinHashingMode mode, int iterations) {
  const SecretBytes pin = SecretBytes::CopyFrom(AsBytes("1234"));
  const protocol::RegistrationVersion version{};
  auto once = [&] {
    Check(protocol::HashPin(mode, pin, version, AsBytes("info")).ok(), "HashPin");
  };
  once();
  const auto start = Clock::now();
  for (int i = 0; i < iterations; ++i) once();
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count() / iterations;
}

void Row(const char* mode, int realms, uint32_t t, const char* op, const Timing& timing,
         double argon2_us) {
  std::printf(
      "%-13s %d realms t=%u  %-8s  total %10.1f us  realms %8.1f us  client %10.1f us"
      "  | Argon2 alone %10.1f us  client/Argon2 x%.2f\n",
      mode, realms, t, op, timing.total_us, timing.realm_us, timing.client_us(), argon2_us,
      timing.client_us() / argon2_us);
}

void Bench(protocol::PinHashingMode mode, int realms, uint32_t t, int iterations,
           double argon2_us) {
  const std::string mode_name(protocol::PinHashingModeName(mode));
  Setup setup = MakeSetup(realms, t, mode);
  const SecretBytes pin = SecretBytes::CopyFrom(AsBytes("1234"));
  const SecretBytes secret = SecretBytes::Random(64);

  Timing reg = Measure(setup, iterations, [&] {
    RegisterResult r = setup.client->Register(pin, secret, AsBytes("info"), 10);
    Check(r.ok(), "register: " + (r.ok() ? std::string() : r.error().ToString()));
  });
  Row(mode_name.c_str(), realms, t, "register", reg, argon2_us);

  Timing rec = Measure(setup, iterations, [&] {
    RecoverResult r = setup.client->Recover(pin, AsBytes("info"));
    Check(r.ok() && r.value().Equals(secret),
          "recover: " + (r.ok() ? std::string("wrong secret") : r.error().ToString()));
  });
  Row(mode_name.c_str(), realms, t, "recover", rec, argon2_us);
}

int Run(bool quick) {
  const int fast_iterations = quick ? 20 : 400;
  const int slow_iterations = quick ? 1 : 5;

  const double argon2_fast =
      MeasureArgon2(protocol::PinHashingMode::kFastInsecure, quick ? 50 : 2000);
  const double argon2_standard =
      MeasureArgon2(protocol::PinHashingMode::kStandard2019, slow_iterations);
  std::printf("floor: Argon2 alone (HashPin) FastInsecure %10.1f us, Standard2019 %10.1f us\n",
              argon2_fast, argon2_standard);
  std::printf(
      "(one register and one recover each hash the PIN once; with Standard2019 the "
      "client's cost should be ~x1 Argon2)\n");

  for (auto [realms, t] : {std::pair{1, 1u}, std::pair{3, 2u}, std::pair{5, 3u}}) {
    Bench(protocol::PinHashingMode::kFastInsecure, realms, t, fast_iterations, argon2_fast);
  }
  if (quick) {
    Bench(protocol::PinHashingMode::kStandard2019, 3, 2, slow_iterations, argon2_standard);
  } else {
    for (auto [realms, t] : {std::pair{1, 1u}, std::pair{3, 2u}, std::pair{5, 3u}}) {
      Bench(protocol::PinHashingMode::kStandard2019, realms, t, slow_iterations, argon2_standard);
    }
  }
  if (g_failures != 0) {
    std::fprintf(stderr, "%d failures\n", g_failures);
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace pinvault::backup

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  return pinvault::backup::Run(quick);
}
