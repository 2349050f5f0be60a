// Internal to vault/protocol: makes sure libsodium is initialised before first use.
#ifndef PINVAULT_VAULT_PROTOCOL_SODIUM_INIT_H_
#define PINVAULT_VAULT_PROTOCOL_SODIUM_INIT_H_

namespace pinvault::protocol::internal {

// EnsureSodiumInitialized calls sodium_init() once per process (thread-safe; aborts if
// libsodium cannot initialise, as nothing in this library can work without it).
void EnsureSodiumInitialized();

}  // namespace pinvault::protocol::internal

#endif  // PINVAULT_VAULT_PROTOCOL_SODIUM_INIT_H_
