#include "vault/protocol/ristretto.h"

#include <sodium.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "vault/protocol/sodium_init.h"

namespace pinvault::protocol {
namespace internal {

void EnsureSodiumInitialized() {
  static const bool initialized = [] {
    if (sodium_init() < 0) std::abort();
    return true;
  }();
  (void)initialized;
}

}  // namespace internal

namespace {

static_assert(crypto_core_ristretto255_BYTES == kPointSize);
static_assert(crypto_core_ristretto255_SCALARBYTES == kScalarSize);
static_assert(crypto_core_ristretto255_NONREDUCEDSCALARBYTES == kWideScalarSize);

}  // namespace

bool IsCanonicalScalar(ByteView bytes) {
  if (bytes.size() != kScalarSize) return false;
  // x is canonical iff reducing it (as a 64-byte integer with zero high half) leaves it
  // unchanged. Both steps are constant-time in libsodium.
  uint8_t wide[kWideScalarSize] = {};
  uint8_t reduced[kScalarSize];
  std::copy(bytes.begin(), bytes.end(), wide);
  crypto_core_ristretto255_scalar_reduce(reduced, wide);
  const bool canonical = sodium_memcmp(reduced, bytes.data(), kScalarSize) == 0;
  sodium_memzero(wide, sizeof wide);
  sodium_memzero(reduced, sizeof reduced);
  return canonical;
}

Status ValidateScalar(ByteView bytes, std::string_view what) {
  if (bytes.size() != kScalarSize) {
    return InvalidArgumentError(std::string(what) + ": scalar must be 32 bytes");
  }
  if (!IsCanonicalScalar(bytes)) {
    return InvalidArgumentError(std::string(what) + ": scalar is not canonical");
  }
  return OkStatus();
}

bool IsIdentityPoint(const PointBytes& point) {
  return sodium_is_zero(point.data(), point.size()) == 1;
}

Status ValidatePoint(const PointBytes& point) {
  if (crypto_core_ristretto255_is_valid_point(point.data()) != 1) {
    return InvalidArgumentError("point is not a canonical ristretto255 encoding");
  }
  // The identity's only canonical encoding is 32 zero bytes.
  if (IsIdentityPoint(point)) return InvalidArgumentError("point is the identity");
  return OkStatus();
}

SecretBytes RandomScalar() {
  internal::EnsureSodiumInitialized();
  uint8_t wide[kWideScalarSize];
  randombytes_buf(wide, sizeof wide);
  SecretBytes out(kScalarSize);
  crypto_core_ristretto255_scalar_reduce(out.RevealMutable().data(), wide);
  sodium_memzero(wide, sizeof wide);
  return out;
}

StatusOr<SecretBytes> ScalarFromWideBytes(std::span<const uint8_t> wide) {
  if (wide.size() != kWideScalarSize) {
    return InvalidArgumentError("wide scalar input must be 64 bytes");
  }
  SecretBytes out(kScalarSize);
  crypto_core_ristretto255_scalar_reduce(out.RevealMutable().data(), wide.data());
  return out;
}

StatusOr<ScalarBytes> ReduceWide(ByteView wide) {
  if (wide.size() != kWideScalarSize) {
    return InvalidArgumentError("wide scalar input must be 64 bytes");
  }
  ScalarBytes out;
  crypto_core_ristretto255_scalar_reduce(out.data(), wide.data());
  return out;
}

StatusOr<PointBytes> BasePointMult(const SecretBytes& scalar) {
  RETURN_IF_ERROR(ValidateScalar(scalar.Reveal(), "base point multiplier"));
  PointBytes out;
  if (crypto_scalarmult_ristretto255_base(out.data(), scalar.Reveal().data()) != 0) {
    return InvalidArgumentError("base point multiplier is zero");
  }
  return out;
}

namespace {

StatusOr<PointBytes> MultChecked(const uint8_t* scalar, const PointBytes& point) {
  RETURN_IF_ERROR(ValidatePoint(point));
  PointBytes out;
  if (crypto_scalarmult_ristretto255(out.data(), scalar, point.data()) != 0) {
    return InvalidArgumentError("scalar multiplication gave the identity");
  }
  return out;
}

}  // namespace

StatusOr<PointBytes> PointMult(const SecretBytes& scalar, const PointBytes& point) {
  RETURN_IF_ERROR(ValidateScalar(scalar.Reveal(), "multiplier"));
  return MultChecked(scalar.Reveal().data(), point);
}

StatusOr<PointBytes> PublicPointMult(const ScalarBytes& scalar, const PointBytes& point) {
  RETURN_IF_ERROR(ValidateScalar(scalar, "multiplier"));
  return MultChecked(scalar.data(), point);
}

StatusOr<PointBytes> PointAdd(const PointBytes& a, const PointBytes& b) {
  PointBytes out;
  if (crypto_core_ristretto255_add(out.data(), a.data(), b.data()) != 0) {
    return InvalidArgumentError("point is not a canonical ristretto255 encoding");
  }
  return out;
}

StatusOr<PointBytes> PointSub(const PointBytes& a, const PointBytes& b) {
  PointBytes out;
  if (crypto_core_ristretto255_sub(out.data(), a.data(), b.data()) != 0) {
    return InvalidArgumentError("point is not a canonical ristretto255 encoding");
  }
  return out;
}

}  // namespace pinvault::protocol
