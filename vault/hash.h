// Hashing for the core's authenticated data structures: BLAKE2b-256 from libsodium.
// Thread-safe.
#ifndef PINVAULT_VAULT_HASH_H_
#define PINVAULT_VAULT_HASH_H_

#include <initializer_list>

#include "vault/bytes.h"
#include "vault/record_store.h"

namespace pinvault::vault {

// Blake2b256 returns BLAKE2b with a 32-byte output over the concatenation of `parts`.
Digest Blake2b256(std::initializer_list<ByteView> parts);

}  // namespace pinvault::vault

#endif  // PINVAULT_VAULT_HASH_H_
