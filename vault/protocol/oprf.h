// The Juicebox OPRF (2HashDH on ristretto255) and its Chaum-Pedersen DLEQ proof
// (PROTOCOL-NOTES section (b)).
//
//   H(x)   = ristretto255 element derivation of SHA-512(x) (no domain tag)
//   U      = r·H(x)                  client: Blind
//   W      = k·U, proof              realm:  EvaluateWithProof
//   Y      = r⁻¹·W = k·H(x)          client: Unblind (after Lagrange-combining the W_i)
//   output = SHA-512("Juicebox_OPRF_2023_1;" ‖ x ‖ Y)   (64 bytes, secret)
//
// DLEQ: c = SHA-512("Juicebox_DLEQ_2023_1;" ‖ U ‖ V ‖ W ‖ V_t ‖ W_t) mod l with
// V_t = β_t·G, W_t = β_t·U, and beta_z = β_t + k·c.
//
// Error convention: malformed inputs to the realm side and the client's own inputs give
// INVALID_ARGUMENT. VerifyProof reports every failure, whatever its cause, as DATA_LOSS,
// because its inputs come from a realm's response and any failure means that realm
// misbehaved (the client maps it to Assertion).
//
// All functions are pure and thread-safe.
#ifndef PINVAULT_VAULT_PROTOCOL_OPRF_H_
#define PINVAULT_VAULT_PROTOCOL_OPRF_H_

#include <cstddef>
#include <span>
#include <string_view>

#include "vault/bytes.h"
#include "vault/protocol/messages.h"
#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::protocol {

inline constexpr std::string_view kOprfLabel = "Juicebox_OPRF_2023_1;";
inline constexpr std::string_view kDleqLabel = "Juicebox_DLEQ_2023_1;";
inline constexpr size_t kOprfOutputSize = 64;

// ---- Realm side ----

// OprfEvaluation is a realm's answer to one blinded input: W = k_i·U and its proof.
struct OprfEvaluation {
  PointBytes blinded_result{};
  DleqProof proof;
};

// EvaluateWithProof evaluates this realm's key share on `blinded_input` and proves it.
// `public_key_share` is the stored oprf_signed_public_key.public_key (k_i·G); it is hashed
// as given, not recomputed. INVALID_ARGUMENT if `private_key_share` is not a canonical
// scalar or `blinded_input` is not a valid non-identity point. Costs two variable-base and
// one fixed-base scalar multiplication.
StatusOr<OprfEvaluation> EvaluateWithProof(const SecretBytes& private_key_share,
                                           const PointBytes& public_key_share,
                                           const PointBytes& blinded_input);

// EvaluateWithProofAndNonce is EvaluateWithProof with the proof nonce β_t given by the
// caller (a canonical scalar), for known-answer tests. Never reuse a β_t in production:
// two proofs with the same β_t reveal the key share.
StatusOr<OprfEvaluation> EvaluateWithProofAndNonce(const SecretBytes& private_key_share,
                                                   const PointBytes& public_key_share,
                                                   const PointBytes& blinded_input,
                                                   const SecretBytes& beta_t);

// DleqChallenge returns c = SHA-512(kDleqLabel ‖ U ‖ V ‖ W ‖ V_t ‖ W_t) reduced mod l.
ScalarBytes DleqChallenge(const PointBytes& u, const PointBytes& v, const PointBytes& w,
                          const PointBytes& v_t, const PointBytes& w_t);

// ---- Client side ----

// HashToGroup returns H(input) = crypto_core_ristretto255_from_hash(SHA-512(input)).
// `input` is the OPRF input (the access key); the result is never the identity except
// with negligible probability.
PointBytes HashToGroup(std::span<const uint8_t> input);

// BlindedInput is the client's blinding factor r (secret) and U = r·H(input) (sent to
// the realms as oprf_blinded_input).
struct BlindedInput {
  SecretBytes blinding_factor;
  PointBytes blinded_input{};
};

// Blind picks a random r and returns r and r·H(input). INTERNAL only if the result is
// the identity (negligible probability).
StatusOr<BlindedInput> Blind(std::span<const uint8_t> input);

// BlindWithFactor is Blind with a caller-chosen r (a canonical non-zero scalar), for
// known-answer tests. INVALID_ARGUMENT if r is not canonical or zero.
StatusOr<BlindedInput> BlindWithFactor(std::span<const uint8_t> input,
                                       const SecretBytes& blinding_factor);

// Unblind returns r⁻¹·W, i.e. k·H(input) when W is the (combined) blinded result.
// INVALID_ARGUMENT if r is not canonical or zero, or W is not a valid non-identity point.
StatusOr<PointBytes> Unblind(const SecretBytes& blinding_factor, const PointBytes& blinded_result);

// OprfOutputFromPoint returns the 64-byte output SHA-512(kOprfLabel ‖ input ‖ result),
// where `result` is k·H(input).
SecretBytes OprfOutputFromPoint(std::span<const uint8_t> input, const PointBytes& result);

// Finalize is Unblind followed by OprfOutputFromPoint: the OPRF output from the combined
// blinded result. Errors as Unblind.
StatusOr<SecretBytes> Finalize(std::span<const uint8_t> input, const SecretBytes& blinding_factor,
                               const PointBytes& blinded_result);

// EvaluateUnoblivious computes the OPRF output directly from the root key k (used at
// registration, where the client knows k). INVALID_ARGUMENT if k is not canonical or
// zero.
StatusOr<SecretBytes> EvaluateUnoblivious(const SecretBytes& private_key,
                                          std::span<const uint8_t> input);

// VerifyProof checks a realm's proof that W = k_i·U for the k_i behind `public_key`
// (V = k_i·G). OK if the proof holds; DATA_LOSS for every failure: a non-canonical c or
// beta_z, an invalid or identity U, V or W, or a challenge mismatch (compared in constant
// time). Costs one fixed-base and three variable-base multiplications.
Status VerifyProof(const PointBytes& public_key, const PointBytes& blinded_input,
                   const PointBytes& blinded_result, const DleqProof& proof);

}  // namespace pinvault::protocol

#endif  // PINVAULT_VAULT_PROTOCOL_OPRF_H_
