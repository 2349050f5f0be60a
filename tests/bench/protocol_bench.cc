// bench_protocol: the cost of the protocol's cryptography, each figure printed next to the
// floor it is compared with (measured in the same run):
//   - EvaluateWithProof (the realm's Recover2 work) vs. 2 variable-base + 1 fixed-base
//     ristretto255 scalar multiplications, and vs. the ~90 µs budget (DESIGN.md section 7);
//   - VerifyProof vs. 3 variable-base + 1 fixed-base multiplications;
//   - tags, commitments and sealing, which should be negligible next to one multiplication;
//   - HashPin per mode vs. the bare Argon2id call with the same parameters.
// Usage: bench_protocol [--quick]   (--quick: a few iterations, for the CTest smoke run)
#include <sodium.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>

#include "vault/protocol/oprf.h"
#include "vault/protocol/pin_hash.h"
#include "vault/protocol/ristretto.h"
#include "vault/protocol/secret_box.h"
#include "vault/protocol/shamir.h"
#include "vault/protocol/signing.h"
#include "vault/protocol/tags.h"

namespace pinvault::protocol {
namespace {

int g_failures = 0;

// Returns microseconds per call of `fn` over `iterations` calls (after one warm-up call).
double Measure(int iterations, const std::function<void()>& fn) {
  fn();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) fn();
  const auto end = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::micro>(end - start).count() / iterations;
}

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAILED: %s\n", what);
    ++g_failures;
  }
}

int Run(bool quick) {
  const int n = quick ? 20 : 4000;
  const int n_slow = quick ? 1 : 10;

  const SecretBytes k = RandomScalar();
  const PointBytes public_key = *BasePointMult(k);
  const PointBytes u = HashToGroup(k.Reveal());
  PointBytes sink{};

  const double var_mult = Measure(n, [&] {
    Check(crypto_scalarmult_ristretto255(sink.data(), k.Reveal().data(), u.data()) == 0, "mult");
  });
  const double base_mult = Measure(n, [&] {
    Check(crypto_scalarmult_ristretto255_base(sink.data(), k.Reveal().data()) == 0, "base");
  });
  std::printf("floor: ristretto255 variable-base scalar mult  %8.1f us  (%6.0f /s)\n", var_mult,
              1e6 / var_mult);
  std::printf("floor: ristretto255 fixed-base scalar mult     %8.1f us  (%6.0f /s)\n", base_mult,
              1e6 / base_mult);

  OprfEvaluation eval;
  const double evaluate = Measure(n, [&] {
    auto e = EvaluateWithProof(k, public_key, u);
    Check(e.ok(), "EvaluateWithProof");
    eval = *e;
  });
  const double evaluate_floor = 2 * var_mult + base_mult;
  std::printf("EvaluateWithProof (realm, Recover2)            %8.1f us  vs floor 2 var + 1 base = "
              "%.1f us (x%.2f); budget ~90 us\n",
              evaluate, evaluate_floor, evaluate / evaluate_floor);

  const double verify = Measure(n, [&] {
    Check(VerifyProof(public_key, u, eval.blinded_result, eval.proof).ok(), "VerifyProof");
  });
  const double verify_floor = 3 * var_mult + base_mult;
  std::printf("VerifyProof (client, per realm)                %8.1f us  vs floor 3 var + 1 base = "
              "%.1f us (x%.2f)\n",
              verify, verify_floor, verify / verify_floor);

  const double blind = Measure(n, [&] { Check(Blind(k.Reveal()).ok(), "Blind"); });
  std::printf("Blind (hash-to-group + 1 var mult)             %8.1f us  vs floor 1 var = %.1f us\n",
              blind, var_mult);

  const SecretBytes unlock_key = SecretBytes::Random(32);
  const RealmId realm{};
  const double tag = Measure(n, [&] { Check(ComputeUnlockKeyTag(unlock_key, realm).ok(), "tag"); });
  std::printf("ComputeUnlockKeyTag (BLAKE2s-128)              %8.1f us  vs 1 var mult = %.1f us\n",
              tag, var_mult);
  const SecretBytes key = SecretBytes::Random(32);
  const SecretBytes secret = SecretBytes::Random(128);
  EncryptedSecret box{};
  const double seal = Measure(n, [&] {
    auto s = SealSecret(key, secret);
    Check(s.ok(), "SealSecret");
    box = *s;
  });
  std::printf("SealSecret (128 B, ChaCha20-Poly1305)          %8.1f us  vs 1 var mult = %.1f us\n",
              seal, var_mult);
  const double commit = Measure(n, [&] {
    Check(ComputeEncryptedSecretCommitment(unlock_key, realm, k, box).ok(), "commitment");
  });
  std::printf("ComputeEncryptedSecretCommitment (BLAKE2s-128) %8.1f us  vs 1 var mult = %.1f us\n",
              commit, var_mult);

  const RegistrationVersion version{};
  const SecretBytes pin = SecretBytes::CopyFrom(AsBytes("1234"));
  const Bytes info = ToBytes("info");
  for (PinHashingMode mode : {PinHashingMode::kFastInsecure, PinHashingMode::kStandard2019}) {
    const int iterations = mode == PinHashingMode::kFastInsecure ? n : n_slow;
    const double hash_pin = Measure(iterations, [&] {
      Check(HashPin(mode, pin, version, info).ok(), "HashPin");
    });
    const Bytes salt = *PinHashSalt(version, info);
    Bytes out(64);
    const double argon2 = Measure(iterations, [&] {
      Check(Argon2id(Argon2ParamsFor(mode), pin.Reveal(), salt, {}, {}, out).ok(), "Argon2id");
    });
    std::printf("HashPin %-12s                         %10.1f us  vs bare Argon2id %.1f us (x%.2f)\n",
                std::string(PinHashingModeName(mode)).c_str(), hash_pin, argon2, hash_pin / argon2);
  }
  return g_failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace pinvault::protocol

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  return pinvault::protocol::Run(quick);
}
