// SecretBytes: the only container for secret bytes (PINs, keys, OPRF outputs, unsealed
// records).
//
// - Move-only; Clone() is the explicit copy.
// - Storage is libsodium secure memory: a guarded, mlock'ed region from sodium_malloc
//   (excluded from core dumps), carved into size classes so that small secrets do not
//   pay sodium_malloc's page-table cost (~20 us here) on every allocation.
// - Wiped with sodium_memzero when freed or moved from.
// - Equality is constant-time in the contents (sodium_memcmp); sizes are not secret.
// - No conversion to strings, no operator<<. The only ways to the bytes are Reveal() and
//   RevealMutable(), so every place a secret leaves this type is findable with grep.
//
// Thread-safety: a SecretBytes is not synchronised; distinct objects may be used from
// different threads (the allocator is thread-safe).
#ifndef PINVAULT_VAULT_SECRET_BYTES_H_
#define PINVAULT_VAULT_SECRET_BYTES_H_

#include <cstddef>
#include <cstdint>
#include <span>

namespace pinvault {

class SecretBytes {
 public:
  // SecretBytes() is empty (size 0, no allocation).
  SecretBytes() = default;

  // SecretBytes(size) allocates `size` zero bytes. Aborts only if secure memory is
  // exhausted (as operator new would).
  explicit SecretBytes(size_t size);

  // CopyFrom copies `data` into new secure memory. The caller wipes its own copy.
  static SecretBytes CopyFrom(std::span<const uint8_t> data);

  // Random returns `size` bytes from libsodium's CSPRNG.
  static SecretBytes Random(size_t size);

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  ~SecretBytes();

  // Clone makes an explicit copy in new secure memory.
  SecretBytes Clone() const;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Reveal gives read access to the secret bytes; valid until this object is moved from,
  // reassigned or destroyed. Grep for Reveal to audit where secrets go.
  std::span<const uint8_t> Reveal() const { return {data_, size_}; }

  // RevealMutable gives write access, for filling the buffer in place.
  std::span<uint8_t> RevealMutable() { return {data_, size_}; }

  // Equals compares contents in constant time (time depends only on the sizes).
  bool Equals(const SecretBytes& other) const;
  bool Equals(std::span<const uint8_t> other) const;

  // Wipe zeroes and frees the contents, leaving an empty object.
  void Wipe();

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// ConstantTimeEquals compares two non-secret-typed buffers (e.g. MAC tags) in constant time.
bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b);

// SecureWipe zeroes `data` in a way the compiler cannot elide.
void SecureWipe(std::span<uint8_t> data);

}  // namespace pinvault

#endif  // PINVAULT_VAULT_SECRET_BYTES_H_
