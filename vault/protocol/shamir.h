// Shamir secret sharing over ristretto255 scalars and Lagrange recombination of scalars and
// points at 0, with the Juicebox SDK's share indices (PROTOCOL-NOTES section (c)).
//
// Share indices are 1-based: share i is f(i). A realm's index is 1 + its position in the
// configuration sorted bytewise by realm id (ShareIndices); the realm never sees it.
//
// All functions are pure and thread-safe.
#ifndef PINVAULT_VAULT_PROTOCOL_SHAMIR_H_
#define PINVAULT_VAULT_PROTOCOL_SHAMIR_H_

#include <cstdint>
#include <span>
#include <vector>

#include "vault/protocol/messages.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::protocol {

// ShareIndex is a 1-based Shamir share index (the x coordinate).
using ShareIndex = uint32_t;

// ShareIndices returns, for each realm in `configured` (in the given order), its share
// index: 1 + its position when the ids are sorted bytewise (unsigned lexicographic).
// INVALID_ARGUMENT if `configured` is empty or holds a realm id twice.
StatusOr<std::vector<ShareIndex>> ShareIndices(std::span<const RealmId> configured);

// ShareSecret splits the scalar `secret` into `count` shares with threshold `threshold`:
// f(X) = secret + a_1·X + … + a_{t−1}·X^{t−1} with random coefficients, and element j of the
// result is f(j + 1). With threshold 1 every share equals the secret. INVALID_ARGUMENT if
// `secret` is not a canonical scalar or not 1 <= threshold <= count.
StatusOr<std::vector<SecretBytes>> ShareSecret(const SecretBytes& secret, size_t threshold,
                                               size_t count);

// ShareSecretWithCoefficients is ShareSecret with the coefficients a_1..a_{t−1} given
// (threshold = coefficients.size() + 1), for tests. Each coefficient must be canonical.
StatusOr<std::vector<SecretBytes>> ShareSecretWithCoefficients(
    const SecretBytes& secret, std::span<const SecretBytes> coefficients, size_t count);

// LagrangeCoefficientsAtZero returns λ_i for each index of `indices` (same order):
// λ_i = Π_{j≠i} j / Π_{j≠i} (j − i) mod l. INVALID_ARGUMENT if `indices` is empty or
// holds a zero or a duplicate.
StatusOr<std::vector<ScalarBytes>> LagrangeCoefficientsAtZero(std::span<const ShareIndex> indices);

// RecombineScalars returns Σ λ_i·s_i over the shares s_i at `indices` (parallel spans).
// INVALID_ARGUMENT if the spans differ in length, an index is bad (as
// LagrangeCoefficientsAtZero) or a share is not a canonical scalar. With fewer shares
// than the threshold the result is a wrong scalar, not an error.
StatusOr<SecretBytes> RecombineScalars(std::span<const ShareIndex> indices,
                                       std::span<const SecretBytes> shares);

// RecombinePoints returns Σ λ_i·P_i over the points at `indices` (parallel spans), e.g.
// the realms' blinded OPRF results. INVALID_ARGUMENT as RecombineScalars, or if a point is
// not a valid non-identity encoding, or the sum is the identity.
StatusOr<PointBytes> RecombinePoints(std::span<const ShareIndex> indices,
                                     std::span<const PointBytes> points);

}  // namespace pinvault::protocol

#endif  // PINVAULT_VAULT_PROTOCOL_SHAMIR_H_
