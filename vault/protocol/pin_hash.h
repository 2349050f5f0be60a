// PIN hashing as the Juicebox SDK does it (PROTOCOL-NOTES section (a)): Argon2id v0x13
// (libargon2), 64-byte output split into the access key (the OPRF input) and the
// encryption key seed.
//
//   salt = be4(16) ‖ version(16) ‖ be4(len(info)) ‖ info
//
// All functions are pure and thread-safe. HashPin in kStandard2019 mode takes 16 MiB of
// memory and tens of milliseconds; callers should not run it on a latency-critical thread.
#ifndef PINVAULT_VAULT_PROTOCOL_PIN_HASH_H_
#define PINVAULT_VAULT_PROTOCOL_PIN_HASH_H_

#include <cstdint>
#include <span>
#include <string_view>

#include "vault/bytes.h"
#include "vault/protocol/messages.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::protocol {

// PinHashingMode is the Argon2 cost setting the configuration asks for.
enum class PinHashingMode {
  kStandard2019,  // m = 16384 KiB, t = 32, p = 1
  kFastInsecure,  // m = 8 KiB, t = 1, p = 1 (tests only)
};

// Argon2Params are Argon2id cost parameters (m in KiB).
struct Argon2Params {
  uint32_t m_cost_kib = 0;
  uint32_t t_cost = 0;
  uint32_t parallelism = 0;
};

// Argon2ParamsFor returns the parameters of `mode`.
Argon2Params Argon2ParamsFor(PinHashingMode mode);

// PinHashingModeName returns the configuration spelling: "Standard2019" or "FastInsecure".
std::string_view PinHashingModeName(PinHashingMode mode);

// ParsePinHashingMode parses the configuration spelling (exact, case-sensitive).
// INVALID_ARGUMENT for anything else.
StatusOr<PinHashingMode> ParsePinHashingMode(std::string_view name);

// kAccessKeySize and kEncryptionKeySeedSize are the halves of the Argon2 output.
inline constexpr size_t kAccessKeySize = 32;
inline constexpr size_t kEncryptionKeySeedSize = 32;

// HashedPin is the split Argon2 output. Both halves are secret.
struct HashedPin {
  SecretBytes access_key;           // 32 bytes: the OPRF input
  SecretBytes encryption_key_seed;  // 32 bytes: keys the user-secret encryption key MAC
};

// PinHashSalt returns the salt layout above (24 + info.size() bytes). INVALID_ARGUMENT if
// info does not fit a be4 length.
StatusOr<Bytes> PinHashSalt(const RegistrationVersion& version, ByteView info);

// Argon2id computes Argon2id version 0x13 with `params` into `out` (its size is the tag
// length, at least 4 bytes). `secret` and `associated_data` may be empty (HashPin uses
// neither); they exist so the primitive can be checked against RFC 9106. INVALID_ARGUMENT
// for parameters or lengths libargon2 rejects; INTERNAL for its other failures.
Status Argon2id(const Argon2Params& params, std::span<const uint8_t> password, ByteView salt,
                std::span<const uint8_t> secret, ByteView associated_data,
                std::span<uint8_t> out);

// HashPin runs Argon2id over `pin` (bytes as given, no normalisation) with the salt above.
// INVALID_ARGUMENT if `info` or `pin` is too long for Argon2 (2^32 − 1 bytes); INTERNAL if
// libargon2 fails (e.g. memory allocation).
StatusOr<HashedPin> HashPin(PinHashingMode mode, const SecretBytes& pin,
                            const RegistrationVersion& version, ByteView info);

}  // namespace pinvault::protocol

#endif  // PINVAULT_VAULT_PROTOCOL_PIN_HASH_H_
