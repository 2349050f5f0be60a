// Keyed BLAKE2s (RFC 7693 native keyed mode, not HMAC) from OpenSSL 3's EVP_MAC
// "BLAKE2SMAC", the MAC behind every Juicebox tag and commitment (PROTOCOL-NOTES (d)).
// libsodium has no BLAKE2s.
//
// Thread-safe: each call uses its own OpenSSL context (the fetched algorithm is shared).
#ifndef PINVAULT_VAULT_PROTOCOL_BLAKE2S_H_
#define PINVAULT_VAULT_PROTOCOL_BLAKE2S_H_

#include <cstdint>
#include <initializer_list>
#include <span>

#include "vault/bytes.h"
#include "vault/status.h"

namespace pinvault::protocol {

// KeyedBlake2s computes BLAKE2s keyed with `key` (1..32 bytes) over `message` with an
// output of out.size() bytes (1..32; the protocol uses 16 and 32). INVALID_ARGUMENT for
// bad sizes; INTERNAL if OpenSSL fails.
Status KeyedBlake2s(std::span<const uint8_t> key, ByteView message, std::span<uint8_t> out);

// KeyedBlake2sFields is KeyedBlake2s over the Juicebox MAC encoding of `fields`: each field
// (the label first) as be4(len) ‖ field, concatenated, streamed without a copy. Fields may
// be secret (they are only read).
Status KeyedBlake2sFields(std::span<const uint8_t> key,
                          std::initializer_list<std::span<const uint8_t>> fields,
                          std::span<uint8_t> out);

}  // namespace pinvault::protocol

#endif  // PINVAULT_VAULT_PROTOCOL_BLAKE2S_H_
