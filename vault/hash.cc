#include "vault/hash.h"

#include <sodium.h>

#include <cstdlib>

namespace pinvault::vault {
namespace {

// EnsureSodium runs sodium_init once so libsodium picks its fastest BLAKE2b code.
void EnsureSodium() {
  static const bool initialized = [] {
    if (sodium_init() < 0) std::abort();
    return true;
  }();
  (void)initialized;
}

}  // namespace

Digest Blake2b256(std::initializer_list<ByteView> parts) {
  EnsureSodium();
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, kDigestSize);
  for (ByteView part : parts) crypto_generichash_update(&state, part.data(), part.size());
  Digest out;
  crypto_generichash_final(&state, out.data(), out.size());
  return out;
}

}  // namespace pinvault::vault
