#include "vault/secret_bytes.h"

#include <sodium.h>

#include <array>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

namespace pinvault {
namespace {

// SecureArena hands out fixed-size slots carved from sodium_malloc'ed chunks.
// Each size class keeps a free list; freed slots are zeroed before they are listed.
// Chunks are never returned to the OS (they stay guarded and locked for the process).
class SecureArena {
 public:
  static constexpr std::array<size_t, 8> kClasses = {16, 32, 64, 128, 256, 512, 1024, 2048};
  static constexpr size_t kChunkBytes = 64 * 1024;

  static SecureArena& Get() {
    static SecureArena* arena = new SecureArena();  // never destroyed: outlives statics
    return *arena;
  }

  uint8_t* Allocate(size_t size) {
    int cls = ClassOf(size);
    if (cls < 0) {
      void* p = sodium_malloc(size);
      if (p == nullptr) std::abort();
      sodium_memzero(p, size);
      return static_cast<uint8_t*>(p);
    }
    Class& c = classes_[cls];
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.free.empty()) Refill(c, kClasses[cls]);
    uint8_t* p = c.free.back();
    c.free.pop_back();
    return p;  // already zero
  }

  void Free(uint8_t* p, size_t size) {
    int cls = ClassOf(size);
    if (cls < 0) {
      sodium_free(p);  // sodium_free wipes before unmapping
      return;
    }
    sodium_memzero(p, kClasses[cls]);
    Class& c = classes_[cls];
    std::lock_guard<std::mutex> lock(c.mu);
    c.free.push_back(p);
  }

 private:
  struct Class {
    std::mutex mu;
    std::vector<uint8_t*> free;
  };

  SecureArena() {
    if (sodium_init() < 0) std::abort();
  }

  static int ClassOf(size_t size) {
    for (size_t i = 0; i < kClasses.size(); ++i) {
      if (size <= kClasses[i]) return static_cast<int>(i);
    }
    return -1;
  }

  static void Refill(Class& c, size_t slot) {
    auto* chunk = static_cast<uint8_t*>(sodium_malloc(kChunkBytes));
    if (chunk == nullptr) std::abort();
    sodium_memzero(chunk, kChunkBytes);
    for (size_t off = 0; off + slot <= kChunkBytes; off += slot) c.free.push_back(chunk + off);
  }

  std::array<Class, kClasses.size()> classes_;
};

}  // namespace

SecretBytes::SecretBytes(size_t size) : size_(size) {
  if (size_ > 0) data_ = SecureArena::Get().Allocate(size_);
}

SecretBytes SecretBytes::CopyFrom(std::span<const uint8_t> data) {
  SecretBytes out(data.size());
  if (!data.empty()) std::copy(data.begin(), data.end(), out.data_);
  return out;
}

SecretBytes SecretBytes::Random(size_t size) {
  SecretBytes out(size);
  if (size > 0) randombytes_buf(out.data_, size);
  return out;
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Wipe();
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

SecretBytes::~SecretBytes() { Wipe(); }

SecretBytes SecretBytes::Clone() const { return CopyFrom(Reveal()); }

bool SecretBytes::Equals(const SecretBytes& other) const { return Equals(other.Reveal()); }

bool SecretBytes::Equals(std::span<const uint8_t> other) const {
  return ConstantTimeEquals(Reveal(), other);
}

void SecretBytes::Wipe() {
  if (data_ != nullptr) SecureArena::Get().Free(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

void SecureWipe(std::span<uint8_t> data) {
  if (!data.empty()) sodium_memzero(data.data(), data.size());
}

}  // namespace pinvault
