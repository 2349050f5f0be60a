// bench_pkcs11: the cost of pinvault's PKCS#11 layer over raw PKCS#11 calls.
//
// On a fresh SoftHSM2 token (tmpfs when available) with the realm key set, it measures, in the
// same run, on the same session and the same keys:
//   AES-GCM seal of 64 bytes   raw C_EncryptInit+C_Encrypt   vs TokenHsm::Seal
//   AES-GCM unseal of 64 bytes raw C_DecryptInit+C_Decrypt   vs TokenHsm::Unseal
//   HMAC-SHA256 of 64 bytes    raw C_SignInit+C_Sign         vs TokenHsm::Mac
// and the same three on session keys (SoftHSM's fast path: its file store re-reads a token
// object's generation file on every use, so token-key calls cost ~3x more), comparing the layer's
// operations (pkcs11/operations.h through the session pool) with the raw calls.
// Raw and layer batches alternate, and each figure is the median over the rounds, so load from
// other processes hits both sides alike. The floor is the raw call; the layer's overhead must stay
// under 10% of it. Prints PASS/FAIL per operation.
//
// Usage: bench_pkcs11 [--seconds S] [--strict]
//   --seconds  total measuring time (default 3)
//   --strict   exit 1 if any overhead is at or above the floor (default: exit 0 unless an error)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "pkcs11/hsm_keys.h"
#include "pkcs11/key_set.h"
#include "pkcs11/module.h"
#include "pkcs11/operations.h"
#include "pkcs11/session_pool.h"
#include "pkcs11/token_setup.h"
#include "pkcs11/uri.h"
#include "tests/testing/softhsm_token.h"

namespace pinvault::pkcs11 {
namespace {

constexpr double kOverheadFloorPercent = 10.0;
constexpr size_t kMessageSize = 64;
constexpr size_t kBatch = 500;

using Clock = std::chrono::steady_clock;

int Fail(const char* what, const Status& status) {
  std::fprintf(stderr, "bench_pkcs11: %s: %s\n", what, status.ToString().c_str());
  return 2;
}

// TimeBatch runs `op` kBatch times and returns nanoseconds per call, or a negative value if an
// op failed.
double TimeBatch(const std::function<bool()>& op) {
  Clock::time_point start = Clock::now();
  for (size_t i = 0; i < kBatch; ++i) {
    if (!op()) return -1;
  }
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() / kBatch;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Comparison {
  const char* name;
  std::function<bool()> raw;
  std::function<bool()> layer;
  std::vector<double> raw_ns;
  std::vector<double> layer_ns;
};

int Main(int argc, char** argv) {
  double seconds = 3.0;
  bool strict = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (std::strcmp(argv[i], "--strict") == 0) {
      strict = true;
    } else {
      std::fprintf(stderr, "usage: bench_pkcs11 [--seconds S] [--strict]\n");
      return 2;
    }
  }
  if (seconds <= 0) seconds = 0.1;

  StatusOr<std::unique_ptr<testing::SoftHsmToken>> token = testing::SoftHsmToken::Create();
  if (!token.ok()) return Fail("creating a SoftHSM2 token", token.status());
  StatusOr<std::unique_ptr<Module>> loaded = Module::Load(testing::SoftHsmToken::kModulePath);
  if (!loaded.ok()) return Fail("loading SoftHSM2", loaded.status());
  std::shared_ptr<Module> module = *std::move(loaded);
  StatusOr<TokenUri> uri = ParseTokenUri((*token)->uri());
  if (!uri.ok()) return Fail("parsing the token URI", uri.status());
  StatusOr<std::unique_ptr<SessionPool>> opened = SessionPool::Open(module, *std::move(uri));
  if (!opened.ok()) return Fail("opening the token", opened.status());
  std::shared_ptr<SessionPool> pool = *std::move(opened);
  TokenDescription description = pool->token();
  StatusOr<ProvisionedRealm> realm = ProvisionRealm(pool);
  if (!realm.ok()) return Fail("creating and opening the realm keys", realm.status());
  std::unique_ptr<TokenHsm> hsm = std::move(realm->hsm);
  RealmKeys keys = hsm->keys();
  CK_OBJECT_HANDLE seal_key = keys.sealing.at(1);
  CK_OBJECT_HANDLE mac_key = keys.record_id_mac;

  // The session both sides use: leased once and returned, so the layer pops the same one (the
  // pool reuses idle sessions last-in first-out and nothing else runs here).
  CK_SESSION_HANDLE session;
  {
    StatusOr<SessionPool::Lease> lease = pool->Acquire();
    if (!lease.ok()) return Fail("leasing a session", lease.status());
    session = lease->handle();
  }
  CK_FUNCTION_LIST* f = pool->functions();

  std::vector<uint8_t> message(kMessageSize);
  for (size_t i = 0; i < message.size(); ++i) message[i] = static_cast<uint8_t>(i * 13);
  std::vector<uint8_t> aad = {'r', 'e', 'c', 'o', 'r', 'd', '-', '0',
                              '0', '0', '1', '|', 'v', '0', '0', '7'};
  std::vector<uint8_t> out(kMessageSize + 64);
  uint8_t iv[12] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0};
  uint32_t counter = 0;

  // A sealed message for the unseal comparison (same key, same session).
  StatusOr<vault::SealedBlob> blob = hsm->Seal(1, message, aad);
  if (!blob.ok()) return Fail("sealing", blob.status());
  if (hsm->pool().token().slot != description.slot) return Fail("pool", InternalError("slot"));

  auto raw_seal = [&]() {
    ++counter;
    iv[8] = static_cast<uint8_t>(counter >> 24);
    iv[9] = static_cast<uint8_t>(counter >> 16);
    iv[10] = static_cast<uint8_t>(counter >> 8);
    iv[11] = static_cast<uint8_t>(counter);
    CK_GCM_PARAMS params{iv, 12, 96, aad.data(), aad.size(), 128};
    CK_MECHANISM mechanism{CKM_AES_GCM, &params, sizeof(params)};
    if (f->C_EncryptInit(session, &mechanism, seal_key) != CKR_OK) return false;
    CK_ULONG length = out.size();
    return f->C_Encrypt(session, message.data(), message.size(), out.data(), &length) == CKR_OK;
  };
  auto layer_seal = [&]() { return hsm->Seal(1, message, aad).ok(); };

  auto raw_unseal = [&]() {
    CK_GCM_PARAMS params{blob->iv.data(), 12, 96, aad.data(), aad.size(), 128};
    CK_MECHANISM mechanism{CKM_AES_GCM, &params, sizeof(params)};
    if (f->C_DecryptInit(session, &mechanism, seal_key) != CKR_OK) return false;
    CK_ULONG length = out.size();
    return f->C_Decrypt(session, blob->ciphertext.data(), blob->ciphertext.size(), out.data(),
                        &length) == CKR_OK;
  };
  auto layer_unseal = [&]() { return hsm->Unseal(*blob, aad).ok(); };

  auto raw_mac = [&]() {
    CK_MECHANISM mechanism{CKM_SHA256_HMAC, nullptr, 0};
    if (f->C_SignInit(session, &mechanism, mac_key) != CKR_OK) return false;
    CK_ULONG length = 32;
    return f->C_Sign(session, message.data(), message.size(), out.data(), &length) == CKR_OK;
  };
  auto layer_mac = [&]() { return hsm->Mac(vault::MacKeyRole::kRecordId, message).ok(); };

  // Session keys on the same session, same templates apart from CKA_TOKEN.
  CK_OBJECT_HANDLE session_seal_key = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE session_mac_key = CK_INVALID_HANDLE;
  {
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
    CK_KEY_TYPE aes = CKK_AES, generic = CKK_GENERIC_SECRET;
    CK_ULONG length = 32;
    CK_ATTRIBUTE aes_template[] = {{CKA_CLASS, &secret, sizeof(secret)},
                                   {CKA_KEY_TYPE, &aes, sizeof(aes)},
                                   {CKA_TOKEN, &no, 1},
                                   {CKA_SENSITIVE, &yes, 1},
                                   {CKA_EXTRACTABLE, &no, 1},
                                   {CKA_VALUE_LEN, &length, sizeof(length)},
                                   {CKA_ENCRYPT, &yes, 1},
                                   {CKA_DECRYPT, &yes, 1}};
    CK_ATTRIBUTE mac_template[] = {{CKA_CLASS, &secret, sizeof(secret)},
                                   {CKA_KEY_TYPE, &generic, sizeof(generic)},
                                   {CKA_TOKEN, &no, 1},
                                   {CKA_SENSITIVE, &yes, 1},
                                   {CKA_EXTRACTABLE, &no, 1},
                                   {CKA_VALUE_LEN, &length, sizeof(length)},
                                   {CKA_SIGN, &yes, 1},
                                   {CKA_VERIFY, &yes, 1}};
    CK_MECHANISM aes_gen{CKM_AES_KEY_GEN, nullptr, 0};
    CK_MECHANISM mac_gen{CKM_GENERIC_SECRET_KEY_GEN, nullptr, 0};
    if (f->C_GenerateKey(session, &aes_gen, aes_template, 8, &session_seal_key) != CKR_OK ||
        f->C_GenerateKey(session, &mac_gen, mac_template, 8, &session_mac_key) != CKR_OK) {
      return Fail("session keys", InternalError("C_GenerateKey failed"));
    }
  }
  GcmIvSource session_ivs;
  StatusOr<GcmSealed> session_sealed =
      AesGcmEncrypt(*pool, session_seal_key, session_ivs, message, aad);
  if (!session_sealed.ok()) return Fail("sealing with a session key", session_sealed.status());

  auto raw_session_seal = [&]() {
    ++counter;
    iv[11] = static_cast<uint8_t>(counter);
    iv[10] = static_cast<uint8_t>(counter >> 8);
    CK_GCM_PARAMS params{iv, 12, 96, aad.data(), aad.size(), 128};
    CK_MECHANISM mechanism{CKM_AES_GCM, &params, sizeof(params)};
    if (f->C_EncryptInit(session, &mechanism, session_seal_key) != CKR_OK) return false;
    CK_ULONG length = out.size();
    return f->C_Encrypt(session, message.data(), message.size(), out.data(), &length) == CKR_OK;
  };
  auto layer_session_seal = [&]() {
    return AesGcmEncrypt(*pool, session_seal_key, session_ivs, message, aad).ok();
  };
  auto raw_session_unseal = [&]() {
    CK_GCM_PARAMS params{session_sealed->iv.data(), 12, 96, aad.data(), aad.size(), 128};
    CK_MECHANISM mechanism{CKM_AES_GCM, &params, sizeof(params)};
    if (f->C_DecryptInit(session, &mechanism, session_seal_key) != CKR_OK) return false;
    CK_ULONG length = out.size();
    return f->C_Decrypt(session, session_sealed->ciphertext.data(),
                        session_sealed->ciphertext.size(), out.data(), &length) == CKR_OK;
  };
  auto layer_session_unseal = [&]() {
    return AesGcmDecrypt(*pool, session_seal_key, session_sealed->iv, session_sealed->ciphertext,
                         aad)
        .ok();
  };
  auto raw_session_mac = [&]() {
    CK_MECHANISM mechanism{CKM_SHA256_HMAC, nullptr, 0};
    if (f->C_SignInit(session, &mechanism, session_mac_key) != CKR_OK) return false;
    CK_ULONG length = 32;
    return f->C_Sign(session, message.data(), message.size(), out.data(), &length) == CKR_OK;
  };
  auto layer_session_mac = [&]() { return HmacSha256(*pool, session_mac_key, message).ok(); };

  std::vector<Comparison> comparisons = {
      {"token key: AES-GCM seal 64 B", raw_seal, layer_seal, {}, {}},
      {"token key: AES-GCM unseal 64 B", raw_unseal, layer_unseal, {}, {}},
      {"token key: HMAC-SHA256 64 B", raw_mac, layer_mac, {}, {}},
      {"session key: AES-GCM seal 64 B", raw_session_seal, layer_session_seal, {}, {}},
      {"session key: AES-GCM unseal 64 B", raw_session_unseal, layer_session_unseal, {}, {}},
      {"session key: HMAC-SHA256 64 B", raw_session_mac, layer_session_mac, {}, {}},
  };
  // Warm up both paths.
  for (Comparison& c : comparisons) {
    if (TimeBatch(c.raw) < 0 || TimeBatch(c.layer) < 0) {
      return Fail(c.name, InternalError("an operation failed during warm-up"));
    }
  }
  Clock::time_point deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                  std::chrono::duration<double>(seconds));
  int rounds = 0;
  while (Clock::now() < deadline || rounds < 3) {
    for (Comparison& c : comparisons) {
      // Alternate which side goes first so neither always runs on a warmer cache.
      bool raw_first = rounds % 2 == 0;
      double first = TimeBatch(raw_first ? c.raw : c.layer);
      double second = TimeBatch(raw_first ? c.layer : c.raw);
      if (first < 0 || second < 0) return Fail(c.name, InternalError("an operation failed"));
      c.raw_ns.push_back(raw_first ? first : second);
      c.layer_ns.push_back(raw_first ? second : first);
    }
    ++rounds;
  }

  StatusOr<ModuleInfo> info = module->GetInfo();
  std::printf("bench_pkcs11: %s %s via %s, token directory %s\n",
              info.ok() ? info->manufacturer.c_str() : "?",
              info.ok() ? info->library_version.c_str() : "?", module->path().c_str(),
              (*token)->dir().c_str());
  std::printf("median of %d alternating rounds of %zu calls each, same session and keys\n\n",
              rounds, kBatch);
  std::printf("token key rows: TokenHsm (vault::Hsm) vs raw calls on the realm's token keys\n");
  std::printf("session key rows: pkcs11/operations.h through the pool vs raw calls\n\n");
  std::printf("%-34s %16s %16s %10s %8s  %s\n", "operation", "raw PKCS#11", "pinvault layer",
              "overhead", "floor", "result");
  bool all_pass = true;
  for (const Comparison& c : comparisons) {
    double raw = Median(c.raw_ns);
    double layer = Median(c.layer_ns);
    double overhead = (layer - raw) / raw * 100.0;
    bool pass = overhead < kOverheadFloorPercent;
    all_pass = all_pass && pass;
    std::printf("%-34s %10.0f ops/s %10.0f ops/s %+9.1f%% %7s%%  %s  (%.2f us vs %.2f us)\n",
                c.name, 1e9 / raw, 1e9 / layer, overhead, "<10", pass ? "PASS" : "FAIL",
                layer / 1000.0, raw / 1000.0);
  }
  std::printf("\noverall: %s (layer overhead < %.0f%% of the raw PKCS#11 call)\n",
              all_pass ? "PASS" : "FAIL", kOverheadFloorPercent);

  hsm.reset();
  pool.reset();
  module.reset();
  return strict && !all_pass ? 1 : 0;
}

}  // namespace
}  // namespace pinvault::pkcs11

int main(int argc, char** argv) { return pinvault::pkcs11::Main(argc, argv); }
