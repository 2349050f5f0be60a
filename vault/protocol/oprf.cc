#include "vault/protocol/oprf.h"

#include <sodium.h>

#include "vault/protocol/ristretto.h"
#include "vault/protocol/sodium_init.h"

namespace pinvault::protocol {
namespace {

// Multiplies `point` by a canonical scalar. libsodium fails both for an invalid encoding
// and for an identity result; only in that (rare) case is the point decoded again to tell
// them apart. Returns false if `point` is not a valid non-identity point; otherwise `out`
// holds the product, the identity encoded as zeros.
bool MultAllowIdentity(PointBytes& out, const uint8_t* scalar, const PointBytes& point) {
  if (crypto_scalarmult_ristretto255(out.data(), scalar, point.data()) == 0) return true;
  out.fill(0);
  return ValidatePoint(point).ok();
}

void BaseMultAllowIdentity(PointBytes& out, const uint8_t* scalar) {
  if (crypto_scalarmult_ristretto255_base(out.data(), scalar) != 0) out.fill(0);
}

// The realm side shared by EvaluateWithProof and EvaluateWithProofAndNonce. `k` and
// `beta_t` are 32-byte scalars; k was checked canonical, beta_t is canonical.
StatusOr<OprfEvaluation> Evaluate(const uint8_t* k, const PointBytes& public_key,
                                  const PointBytes& u, const uint8_t* beta_t) {
  OprfEvaluation eval;
  // libsodium decodes U here and fails on a non-canonical encoding or an identity result;
  // with a canonical non-zero k the result is the identity only if U is.
  if (crypto_scalarmult_ristretto255(eval.blinded_result.data(), k, u.data()) != 0) {
    return InvalidArgumentError("blinded input is not a valid non-identity point");
  }
  PointBytes v_t;
  PointBytes w_t;
  if (crypto_scalarmult_ristretto255_base(v_t.data(), beta_t) != 0 ||
      crypto_scalarmult_ristretto255(w_t.data(), beta_t, u.data()) != 0) {
    return InternalError("proof nonce is zero");
  }
  eval.proof.c = DleqChallenge(u, public_key, eval.blinded_result, v_t, w_t);
  uint8_t k_c[kScalarSize];
  crypto_core_ristretto255_scalar_mul(k_c, k, eval.proof.c.data());
  crypto_core_ristretto255_scalar_add(eval.proof.beta_z.data(), beta_t, k_c);
  sodium_memzero(k_c, sizeof k_c);
  return eval;
}

}  // namespace

StatusOr<OprfEvaluation> EvaluateWithProof(const SecretBytes& private_key_share,
                                           const PointBytes& public_key_share,
                                           const PointBytes& blinded_input) {
  if (!IsCanonicalScalar(private_key_share.Reveal())) {
    return InvalidArgumentError("OPRF private key share is not a canonical scalar");
  }
  internal::EnsureSodiumInitialized();
  // β_t lives on the stack only for this call: no secure-heap round trip on the hot path.
  uint8_t wide[kWideScalarSize];
  uint8_t beta_t[kScalarSize];
  randombytes_buf(wide, sizeof wide);
  crypto_core_ristretto255_scalar_reduce(beta_t, wide);
  auto result = Evaluate(private_key_share.Reveal().data(), public_key_share, blinded_input, beta_t);
  sodium_memzero(wide, sizeof wide);
  sodium_memzero(beta_t, sizeof beta_t);
  return result;
}

StatusOr<OprfEvaluation> EvaluateWithProofAndNonce(const SecretBytes& private_key_share,
                                                   const PointBytes& public_key_share,
                                                   const PointBytes& blinded_input,
                                                   const SecretBytes& beta_t) {
  if (!IsCanonicalScalar(private_key_share.Reveal())) {
    return InvalidArgumentError("OPRF private key share is not a canonical scalar");
  }
  if (!IsCanonicalScalar(beta_t.Reveal())) {
    return InvalidArgumentError("proof nonce is not a canonical scalar");
  }
  return Evaluate(private_key_share.Reveal().data(), public_key_share, blinded_input,
                  beta_t.Reveal().data());
}

ScalarBytes DleqChallenge(const PointBytes& u, const PointBytes& v, const PointBytes& w,
                          const PointBytes& v_t, const PointBytes& w_t) {
  crypto_hash_sha512_state state;
  crypto_hash_sha512_init(&state);
  crypto_hash_sha512_update(&state, reinterpret_cast<const uint8_t*>(kDleqLabel.data()),
                            kDleqLabel.size());
  for (const PointBytes* p : {&u, &v, &w, &v_t, &w_t}) {
    crypto_hash_sha512_update(&state, p->data(), p->size());
  }
  uint8_t digest[crypto_hash_sha512_BYTES];
  crypto_hash_sha512_final(&state, digest);
  ScalarBytes c;
  crypto_core_ristretto255_scalar_reduce(c.data(), digest);
  return c;
}

PointBytes HashToGroup(std::span<const uint8_t> input) {
  uint8_t digest[crypto_hash_sha512_BYTES];
  crypto_hash_sha512(digest, input.data(), input.size());
  PointBytes point;
  crypto_core_ristretto255_from_hash(point.data(), digest);
  sodium_memzero(digest, sizeof digest);
  return point;
}

namespace {

// Blinds `input` with r, taking ownership of r (no copy of the secret).
StatusOr<BlindedInput> BlindOwned(std::span<const uint8_t> input, SecretBytes r) {
  if (!IsCanonicalScalar(r.Reveal())) {
    return InvalidArgumentError("blinding factor is not a canonical scalar");
  }
  const PointBytes h = HashToGroup(input);
  BlindedInput out;
  if (crypto_scalarmult_ristretto255(out.blinded_input.data(), r.Reveal().data(), h.data()) != 0) {
    return InvalidArgumentError("blinding factor is zero");
  }
  out.blinding_factor = std::move(r);
  return out;
}

}  // namespace

StatusOr<BlindedInput> BlindWithFactor(std::span<const uint8_t> input,
                                       const SecretBytes& blinding_factor) {
  return BlindOwned(input, blinding_factor.Clone());
}

StatusOr<BlindedInput> Blind(std::span<const uint8_t> input) {
  auto blinded = BlindOwned(input, RandomScalar());
  if (!blinded.ok()) return InternalError("random blinding factor was zero");
  return blinded;
}

StatusOr<PointBytes> Unblind(const SecretBytes& blinding_factor, const PointBytes& blinded_result) {
  if (!IsCanonicalScalar(blinding_factor.Reveal())) {
    return InvalidArgumentError("blinding factor is not a canonical scalar");
  }
  uint8_t r_inv[kScalarSize];
  if (crypto_core_ristretto255_scalar_invert(r_inv, blinding_factor.Reveal().data()) != 0) {
    return InvalidArgumentError("blinding factor is zero");
  }
  PointBytes y;
  const int rc = crypto_scalarmult_ristretto255(y.data(), r_inv, blinded_result.data());
  sodium_memzero(r_inv, sizeof r_inv);
  if (rc != 0) return InvalidArgumentError("blinded result is not a valid non-identity point");
  return y;
}

SecretBytes OprfOutputFromPoint(std::span<const uint8_t> input, const PointBytes& result) {
  crypto_hash_sha512_state state;
  crypto_hash_sha512_init(&state);
  crypto_hash_sha512_update(&state, reinterpret_cast<const uint8_t*>(kOprfLabel.data()),
                            kOprfLabel.size());
  crypto_hash_sha512_update(&state, input.data(), input.size());
  crypto_hash_sha512_update(&state, result.data(), result.size());
  SecretBytes output(kOprfOutputSize);
  crypto_hash_sha512_final(&state, output.RevealMutable().data());
  sodium_memzero(&state, sizeof state);
  return output;
}

StatusOr<SecretBytes> Finalize(std::span<const uint8_t> input, const SecretBytes& blinding_factor,
                               const PointBytes& blinded_result) {
  ASSIGN_OR_RETURN(const PointBytes y, Unblind(blinding_factor, blinded_result));
  return OprfOutputFromPoint(input, y);
}

StatusOr<SecretBytes> EvaluateUnoblivious(const SecretBytes& private_key,
                                          std::span<const uint8_t> input) {
  if (!IsCanonicalScalar(private_key.Reveal())) {
    return InvalidArgumentError("OPRF private key is not a canonical scalar");
  }
  const PointBytes h = HashToGroup(input);
  PointBytes y;
  if (crypto_scalarmult_ristretto255(y.data(), private_key.Reveal().data(), h.data()) != 0) {
    return InvalidArgumentError("OPRF private key is zero");
  }
  return OprfOutputFromPoint(input, y);
}

Status VerifyProof(const PointBytes& public_key, const PointBytes& blinded_input,
                   const PointBytes& blinded_result, const DleqProof& proof) {
  if (!IsCanonicalScalar(proof.c) || !IsCanonicalScalar(proof.beta_z)) {
    return DataLossError("OPRF proof holds a non-canonical scalar");
  }
  // V_t' = beta_z·G − c·V and W_t' = beta_z·U − c·W. Partial results may be the identity
  // (e.g. c = 0), which is encoded as zeros and is a valid operand to the subtraction. Each
  // multiplication decodes its point, which is where U, V and W are validated.
  PointBytes z_g, c_v, z_u, c_w, v_t, w_t;
  if (!MultAllowIdentity(c_v, proof.c.data(), public_key)) {
    return DataLossError("OPRF public key is not a valid non-identity point");
  }
  if (!MultAllowIdentity(z_u, proof.beta_z.data(), blinded_input)) {
    return DataLossError("OPRF blinded input is not a valid non-identity point");
  }
  if (!MultAllowIdentity(c_w, proof.c.data(), blinded_result)) {
    return DataLossError("OPRF blinded result is not a valid non-identity point");
  }
  BaseMultAllowIdentity(z_g, proof.beta_z.data());
  if (crypto_core_ristretto255_sub(v_t.data(), z_g.data(), c_v.data()) != 0 ||
      crypto_core_ristretto255_sub(w_t.data(), z_u.data(), c_w.data()) != 0) {
    return InternalError("point subtraction failed on valid points");
  }
  const ScalarBytes expected = DleqChallenge(blinded_input, public_key, blinded_result, v_t, w_t);
  if (sodium_memcmp(expected.data(), proof.c.data(), kScalarSize) != 0) {
    return DataLossError("OPRF proof does not verify");
  }
  return OkStatus();
}

}  // namespace pinvault::protocol
