// ByteReader / ByteWriter: bounds-checked big-endian cursors for the core's own binary
// layouts (records, certificates). No pointer arithmetic on untrusted bytes outside these.
//
// Both are "sticky": after the first out-of-bounds access every later call is a no-op,
// ok() is false, reads return zeros / empty views. Check ok() once at the end.
// Not thread-safe; cheap value types.
#ifndef PINVAULT_VAULT_BYTE_CURSOR_H_
#define PINVAULT_VAULT_BYTE_CURSOR_H_

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "vault/bytes.h"

namespace pinvault::vault {

class ByteReader {
 public:
  explicit ByteReader(ByteView in) : in_(in) {}

  // Take returns the next `n` bytes (empty view and !ok() if fewer remain).
  ByteView Take(size_t n) {
    if (!ok_ || in_.size() - pos_ < n) {
      ok_ = false;
      return {};
    }
    ByteView out = in_.subspan(pos_, n);
    pos_ += n;
    return out;
  }

  // ReadInto copies the next N bytes into `out` (zeros if out of bounds).
  template <size_t N>
  void ReadInto(std::array<uint8_t, N>& out) {
    ByteView v = Take(N);
    if (v.size() == N) {
      std::copy(v.begin(), v.end(), out.begin());
    } else {
      out.fill(0);
    }
  }

  uint8_t U8() { return static_cast<uint8_t>(Uint(1)); }
  uint16_t U16() { return static_cast<uint16_t>(Uint(2)); }
  uint32_t U32() { return static_cast<uint32_t>(Uint(4)); }
  uint64_t U64() { return Uint(8); }

  // Rest returns every remaining byte.
  ByteView Rest() { return Take(remaining()); }

  size_t remaining() const { return ok_ ? in_.size() - pos_ : 0; }
  bool ok() const { return ok_; }
  // AtEnd is true when every byte was consumed without error.
  bool AtEnd() const { return ok_ && pos_ == in_.size(); }

 private:
  uint64_t Uint(size_t n) {
    ByteView v = Take(n);
    uint64_t value = 0;
    for (uint8_t b : v) value = value << 8 | b;
    return value;
  }

  ByteView in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

class ByteWriter {
 public:
  // ByteWriter writes into `out`, which must outlive it.
  explicit ByteWriter(std::span<uint8_t> out) : out_(out) {}

  void Put(ByteView data) {
    if (!ok_ || out_.size() - pos_ < data.size()) {
      ok_ = false;
      return;
    }
    std::copy(data.begin(), data.end(), out_.begin() + static_cast<ptrdiff_t>(pos_));
    pos_ += data.size();
  }
  void U8(uint8_t v) { Uint(v, 1); }
  void U16(uint16_t v) { Uint(v, 2); }
  void U32(uint32_t v) { Uint(v, 4); }
  void U64(uint64_t v) { Uint(v, 8); }

  size_t position() const { return pos_; }
  bool ok() const { return ok_; }

 private:
  void Uint(uint64_t v, size_t n) {
    std::array<uint8_t, 8> buf{};
    for (size_t i = 0; i < n; ++i) buf[n - 1 - i] = static_cast<uint8_t>(v >> (8 * i));
    Put(ByteView(buf.data(), n));
  }

  std::span<uint8_t> out_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// AppendU16 / AppendU32 / AppendU64 append big-endian integers to a growable buffer.
inline void AppendU16(Bytes& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
inline void AppendU32(Bytes& out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
inline void AppendU64(Bytes& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
inline void Append(Bytes& out, ByteView data) { out.insert(out.end(), data.begin(), data.end()); }

}  // namespace pinvault::vault

#endif  // PINVAULT_VAULT_BYTE_CURSOR_H_
