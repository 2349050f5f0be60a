// ristretto255 scalars and points (RFC 9496) over libsodium, as the Juicebox protocol uses
// them (PROTOCOL-NOTES section 1).
//
// Scalars are 32-byte little-endian integers mod l = 2^252 + 2774231777737235353585193779088
// 3648493; every decoded scalar must be canonical (< l). Points are 32-byte compressed
// ristretto255 encodings; decoded points must be canonical and, where a protocol value is
// expected, not the identity. Secret scalars (key shares, blinding factors, the encryption
// scalar) are held in SecretBytes; public ones (proof values, Lagrange coefficients) in
// ScalarBytes.
//
// All functions are pure and thread-safe.
#ifndef PINVAULT_VAULT_PROTOCOL_RISTRETTO_H_
#define PINVAULT_VAULT_PROTOCOL_RISTRETTO_H_

#include <cstdint>
#include <span>

#include "vault/bytes.h"
#include "vault/protocol/messages.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::protocol {

// kWideScalarSize is the size of the random input reduced mod l to make a random scalar.
inline constexpr size_t kWideScalarSize = 64;

// IsCanonicalScalar reports whether `bytes` is exactly 32 bytes encoding an integer < l.
// Runs in time independent of the value for 32-byte inputs.
bool IsCanonicalScalar(ByteView bytes);

// ValidateScalar is IsCanonicalScalar as a Status: INVALID_ARGUMENT (naming `what`, never
// the value) when `bytes` is not a 32-byte canonical scalar.
Status ValidateScalar(ByteView bytes, std::string_view what);

// ValidatePoint returns OK iff `point` is a canonical ristretto255 encoding of a point
// other than the identity; INVALID_ARGUMENT otherwise.
Status ValidatePoint(const PointBytes& point);

// IsIdentityPoint reports whether `point` is the encoding of the identity (32 zero bytes).
bool IsIdentityPoint(const PointBytes& point);

// RandomScalar returns a uniformly random scalar: 64 bytes from libsodium's CSPRNG reduced
// mod l (the SDK's Scalar::random). It is zero only with negligible probability.
SecretBytes RandomScalar();

// ScalarFromWideBytes reduces a 64-byte little-endian integer mod l (dalek
// from_bytes_mod_order_wide). INVALID_ARGUMENT unless `wide` is 64 bytes. Used to
// reproduce RandomScalar from recorded randomness in known-answer tests.
StatusOr<SecretBytes> ScalarFromWideBytes(std::span<const uint8_t> wide);

// ReduceWide is ScalarFromWideBytes for public values (e.g. a hash digest reduced to the
// DLEQ challenge). INVALID_ARGUMENT unless `wide` is 64 bytes.
StatusOr<ScalarBytes> ReduceWide(ByteView wide);

// BasePointMult returns scalar·G (e.g. a realm's OPRF public key share from its private
// share). INVALID_ARGUMENT if `scalar` is not canonical or is zero (identity result).
StatusOr<PointBytes> BasePointMult(const SecretBytes& scalar);

// PointMult returns scalar·point. INVALID_ARGUMENT if `scalar` is not canonical, `point`
// is not a valid non-identity encoding, or the result is the identity.
StatusOr<PointBytes> PointMult(const SecretBytes& scalar, const PointBytes& point);

// PublicPointMult is PointMult with a public scalar (e.g. a Lagrange coefficient).
StatusOr<PointBytes> PublicPointMult(const ScalarBytes& scalar, const PointBytes& point);

// PointAdd returns a + b. INVALID_ARGUMENT if either is not a canonical encoding (the
// identity is accepted here, since partial sums may be the identity).
StatusOr<PointBytes> PointAdd(const PointBytes& a, const PointBytes& b);

// PointSub returns a - b, with the same rules as PointAdd.
StatusOr<PointBytes> PointSub(const PointBytes& a, const PointBytes& b);

}  // namespace pinvault::protocol

#endif  // PINVAULT_VAULT_PROTOCOL_RISTRETTO_H_
