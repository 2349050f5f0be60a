#include "vault/protocol/pin_hash.h"

#include <argon2.h>

#include <limits>
#include <string>

#include "vault/protocol/be.h"

namespace pinvault::protocol {
namespace {

inline constexpr size_t kArgon2OutputSize = kAccessKeySize + kEncryptionKeySeedSize;
inline constexpr uint32_t kMaxArgon2Length = std::numeric_limits<uint32_t>::max();

// libargon2 takes non-const pointers but only reads the inputs (we never set the flags
// that clear them).
uint8_t* Mutable(const uint8_t* p) { return const_cast<uint8_t*>(p); }

}  // namespace

Argon2Params Argon2ParamsFor(PinHashingMode mode) {
  switch (mode) {
    case PinHashingMode::kStandard2019:
      return {.m_cost_kib = 16384, .t_cost = 32, .parallelism = 1};
    case PinHashingMode::kFastInsecure:
      return {.m_cost_kib = 8, .t_cost = 1, .parallelism = 1};
  }
  return {};
}

std::string_view PinHashingModeName(PinHashingMode mode) {
  switch (mode) {
    case PinHashingMode::kStandard2019:
      return "Standard2019";
    case PinHashingMode::kFastInsecure:
      return "FastInsecure";
  }
  return "Unknown";
}

StatusOr<PinHashingMode> ParsePinHashingMode(std::string_view name) {
  if (name == "Standard2019") return PinHashingMode::kStandard2019;
  if (name == "FastInsecure") return PinHashingMode::kFastInsecure;
  return InvalidArgumentError("unknown PIN hashing mode (want Standard2019 or FastInsecure)");
}

Status Argon2id(const Argon2Params& params, std::span<const uint8_t> password, ByteView salt,
                std::span<const uint8_t> secret, ByteView associated_data,
                std::span<uint8_t> out) {
  if (password.size() > kMaxArgon2Length || salt.size() > kMaxArgon2Length ||
      secret.size() > kMaxArgon2Length || associated_data.size() > kMaxArgon2Length ||
      out.size() > kMaxArgon2Length) {
    return InvalidArgumentError("Argon2 input too long");
  }
  argon2_context ctx{};
  ctx.out = out.data();
  ctx.outlen = static_cast<uint32_t>(out.size());
  ctx.pwd = Mutable(password.data());
  ctx.pwdlen = static_cast<uint32_t>(password.size());
  ctx.salt = Mutable(salt.data());
  ctx.saltlen = static_cast<uint32_t>(salt.size());
  ctx.secret = secret.empty() ? nullptr : Mutable(secret.data());
  ctx.secretlen = static_cast<uint32_t>(secret.size());
  ctx.ad = associated_data.empty() ? nullptr : Mutable(associated_data.data());
  ctx.adlen = static_cast<uint32_t>(associated_data.size());
  ctx.t_cost = params.t_cost;
  ctx.m_cost = params.m_cost_kib;
  ctx.lanes = params.parallelism;
  ctx.threads = 1;  // lanes are computed in turn: same result, no thread creation
  ctx.version = ARGON2_VERSION_13;
  ctx.allocate_cbk = nullptr;  // libargon2 wipes its working memory before freeing it
  ctx.free_cbk = nullptr;
  ctx.flags = ARGON2_DEFAULT_FLAGS;
  const int rc = argon2id_ctx(&ctx);
  switch (rc) {
    case ARGON2_OK:
      return OkStatus();
    case ARGON2_MEMORY_ALLOCATION_ERROR:
    case ARGON2_THREAD_FAIL:
      return InternalError(std::string("Argon2 failed: ") + argon2_error_message(rc));
    default:
      return InvalidArgumentError(std::string("Argon2 rejected its input: ") +
                                  argon2_error_message(rc));
  }
}

StatusOr<Bytes> PinHashSalt(const RegistrationVersion& version, ByteView info) {
  if (info.size() > kMaxArgon2Length - 24) return InvalidArgumentError("info too long");
  Bytes salt;
  salt.reserve(24 + info.size());
  AppendBe4(salt, static_cast<uint32_t>(version.size()));
  salt.insert(salt.end(), version.begin(), version.end());
  AppendBe4(salt, static_cast<uint32_t>(info.size()));
  salt.insert(salt.end(), info.begin(), info.end());
  return salt;
}

StatusOr<HashedPin> HashPin(PinHashingMode mode, const SecretBytes& pin,
                            const RegistrationVersion& version, ByteView info) {
  ASSIGN_OR_RETURN(const Bytes salt, PinHashSalt(version, info));
  SecretBytes output(kArgon2OutputSize);
  RETURN_IF_ERROR(Argon2id(Argon2ParamsFor(mode), pin.Reveal(), salt, {}, {},
                           output.RevealMutable()));
  const auto out = output.Reveal();
  HashedPin hashed;
  hashed.access_key = SecretBytes::CopyFrom(out.first(kAccessKeySize));
  hashed.encryption_key_seed = SecretBytes::CopyFrom(out.subspan(kAccessKeySize));
  return hashed;
}

}  // namespace pinvault::protocol
