#include "vault/protocol/shamir.h"

#include <sodium.h>

#include <algorithm>
#include <numeric>

#include "vault/protocol/ristretto.h"

namespace pinvault::protocol {
namespace {

ScalarBytes ScalarFromIndex(uint32_t value) {
  ScalarBytes s{};
  s[0] = static_cast<uint8_t>(value);
  s[1] = static_cast<uint8_t>(value >> 8);
  s[2] = static_cast<uint8_t>(value >> 16);
  s[3] = static_cast<uint8_t>(value >> 24);
  return s;
}

Status ValidateIndices(std::span<const ShareIndex> indices) {
  if (indices.empty()) return InvalidArgumentError("no share indices");
  for (size_t i = 0; i < indices.size(); ++i) {
    if (indices[i] == 0) return InvalidArgumentError("share index 0 is not allowed");
    for (size_t j = 0; j < i; ++j) {
      if (indices[i] == indices[j]) return InvalidArgumentError("duplicate share index");
    }
  }
  return OkStatus();
}

}  // namespace

StatusOr<std::vector<ShareIndex>> ShareIndices(std::span<const RealmId> configured) {
  if (configured.empty()) return InvalidArgumentError("no realms configured");
  std::vector<size_t> order(configured.size());
  std::iota(order.begin(), order.end(), 0);
  // std::array's operator< is lexicographic over uint8_t, i.e. unsigned bytewise.
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return configured[a] < configured[b]; });
  std::vector<ShareIndex> indices(configured.size());
  for (size_t pos = 0; pos < order.size(); ++pos) {
    if (pos > 0 && configured[order[pos]] == configured[order[pos - 1]]) {
      return InvalidArgumentError("realm id configured twice");
    }
    indices[order[pos]] = static_cast<ShareIndex>(pos + 1);
  }
  return indices;
}

StatusOr<std::vector<SecretBytes>> ShareSecretWithCoefficients(
    const SecretBytes& secret, std::span<const SecretBytes> coefficients, size_t count) {
  RETURN_IF_ERROR(ValidateScalar(secret.Reveal(), "shared secret"));
  for (const SecretBytes& a : coefficients) {
    RETURN_IF_ERROR(ValidateScalar(a.Reveal(), "sharing coefficient"));
  }
  if (count == 0 || coefficients.size() + 1 > count) {
    return InvalidArgumentError("threshold must be between 1 and the number of shares");
  }
  if (count > UINT32_MAX) return InvalidArgumentError("too many shares");
  std::vector<SecretBytes> shares;
  shares.reserve(count);
  uint8_t product[kScalarSize];
  for (size_t i = 1; i <= count; ++i) {
    const ScalarBytes x = ScalarFromIndex(static_cast<uint32_t>(i));
    // Horner: f(x) = (((a_{t-1})·x + a_{t-2})·x + …)·x + s.
    SecretBytes y(kScalarSize);
    uint8_t* acc = y.RevealMutable().data();
    for (size_t k = coefficients.size(); k > 0; --k) {
      crypto_core_ristretto255_scalar_add(acc, acc, coefficients[k - 1].Reveal().data());
      crypto_core_ristretto255_scalar_mul(product, acc, x.data());
      std::copy(product, product + kScalarSize, acc);
    }
    crypto_core_ristretto255_scalar_add(acc, acc, secret.Reveal().data());
    shares.push_back(std::move(y));
  }
  sodium_memzero(product, sizeof product);
  return shares;
}

StatusOr<std::vector<SecretBytes>> ShareSecret(const SecretBytes& secret, size_t threshold,
                                               size_t count) {
  if (threshold == 0 || threshold > count) {
    return InvalidArgumentError("threshold must be between 1 and the number of shares");
  }
  std::vector<SecretBytes> coefficients;
  coefficients.reserve(threshold - 1);
  for (size_t i = 1; i < threshold; ++i) coefficients.push_back(RandomScalar());
  return ShareSecretWithCoefficients(secret, coefficients, count);
}

StatusOr<std::vector<ScalarBytes>> LagrangeCoefficientsAtZero(std::span<const ShareIndex> indices) {
  RETURN_IF_ERROR(ValidateIndices(indices));
  std::vector<ScalarBytes> lambdas(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    const ScalarBytes xi = ScalarFromIndex(indices[i]);
    ScalarBytes numerator = ScalarFromIndex(1);
    ScalarBytes denominator = ScalarFromIndex(1);
    for (size_t j = 0; j < indices.size(); ++j) {
      if (j == i) continue;
      const ScalarBytes xj = ScalarFromIndex(indices[j]);
      ScalarBytes diff;
      crypto_core_ristretto255_scalar_sub(diff.data(), xj.data(), xi.data());
      crypto_core_ristretto255_scalar_mul(numerator.data(), numerator.data(), xj.data());
      crypto_core_ristretto255_scalar_mul(denominator.data(), denominator.data(), diff.data());
    }
    ScalarBytes inverse;
    if (crypto_core_ristretto255_scalar_invert(inverse.data(), denominator.data()) != 0) {
      return InternalError("Lagrange denominator is zero");  // distinct indices < l
    }
    crypto_core_ristretto255_scalar_mul(lambdas[i].data(), numerator.data(), inverse.data());
  }
  return lambdas;
}

StatusOr<SecretBytes> RecombineScalars(std::span<const ShareIndex> indices,
                                       std::span<const SecretBytes> shares) {
  if (indices.size() != shares.size()) {
    return InvalidArgumentError("share and index counts differ");
  }
  for (const SecretBytes& share : shares) {
    RETURN_IF_ERROR(ValidateScalar(share.Reveal(), "scalar share"));
  }
  ASSIGN_OR_RETURN(const std::vector<ScalarBytes> lambdas, LagrangeCoefficientsAtZero(indices));
  SecretBytes sum(kScalarSize);
  uint8_t* acc = sum.RevealMutable().data();
  uint8_t term[kScalarSize];
  for (size_t i = 0; i < shares.size(); ++i) {
    crypto_core_ristretto255_scalar_mul(term, lambdas[i].data(), shares[i].Reveal().data());
    crypto_core_ristretto255_scalar_add(acc, acc, term);
  }
  sodium_memzero(term, sizeof term);
  return sum;
}

StatusOr<PointBytes> RecombinePoints(std::span<const ShareIndex> indices,
                                     std::span<const PointBytes> points) {
  if (indices.size() != points.size()) {
    return InvalidArgumentError("point and index counts differ");
  }
  ASSIGN_OR_RETURN(const std::vector<ScalarBytes> lambdas, LagrangeCoefficientsAtZero(indices));
  PointBytes sum{};  // the identity
  for (size_t i = 0; i < points.size(); ++i) {
    ASSIGN_OR_RETURN(const PointBytes term, PublicPointMult(lambdas[i], points[i]));
    ASSIGN_OR_RETURN(sum, PointAdd(sum, term));
  }
  if (IsIdentityPoint(sum)) return InvalidArgumentError("recombined point is the identity");
  return sum;
}

}  // namespace pinvault::protocol
