#include "vault/protocol/blake2s.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <memory>

#include "vault/protocol/be.h"

namespace pinvault::protocol {
namespace {

inline constexpr size_t kMaxBlake2sSize = 32;

// The fetched algorithm is immutable and thread-safe to share; fetching it on every call
// would cost a property-query lookup.
EVP_MAC* Blake2sMac() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "BLAKE2SMAC", nullptr);
  return mac;
}

struct CtxDeleter {
  void operator()(EVP_MAC_CTX* ctx) const { EVP_MAC_CTX_free(ctx); }
};
using CtxPtr = std::unique_ptr<EVP_MAC_CTX, CtxDeleter>;

// Starts a keyed BLAKE2s with the given output size.
StatusOr<CtxPtr> Begin(std::span<const uint8_t> key, size_t out_size) {
  if (key.empty() || key.size() > kMaxBlake2sSize) {
    return InvalidArgumentError("BLAKE2s key must be 1..32 bytes");
  }
  if (out_size == 0 || out_size > kMaxBlake2sSize) {
    return InvalidArgumentError("BLAKE2s output must be 1..32 bytes");
  }
  EVP_MAC* mac = Blake2sMac();
  if (mac == nullptr) return InternalError("OpenSSL has no BLAKE2SMAC");
  CtxPtr ctx(EVP_MAC_CTX_new(mac));
  if (!ctx) return InternalError("EVP_MAC_CTX_new failed");
  size_t size = out_size;
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
      OSSL_PARAM_construct_end(),
  };
  if (EVP_MAC_init(ctx.get(), key.data(), key.size(), params) != 1) {
    return InternalError("BLAKE2SMAC init failed");
  }
  return ctx;
}

Status Update(EVP_MAC_CTX* ctx, std::span<const uint8_t> data) {
  if (data.empty()) return OkStatus();
  if (EVP_MAC_update(ctx, data.data(), data.size()) != 1) {
    return InternalError("BLAKE2SMAC update failed");
  }
  return OkStatus();
}

Status Finish(EVP_MAC_CTX* ctx, std::span<uint8_t> out) {
  size_t written = 0;
  if (EVP_MAC_final(ctx, out.data(), &written, out.size()) != 1 || written != out.size()) {
    return InternalError("BLAKE2SMAC final failed");
  }
  return OkStatus();
}

}  // namespace

Status KeyedBlake2s(std::span<const uint8_t> key, ByteView message, std::span<uint8_t> out) {
  ASSIGN_OR_RETURN(CtxPtr ctx, Begin(key, out.size()));
  RETURN_IF_ERROR(Update(ctx.get(), message));
  return Finish(ctx.get(), out);
}

Status KeyedBlake2sFields(std::span<const uint8_t> key,
                          std::initializer_list<std::span<const uint8_t>> fields,
                          std::span<uint8_t> out) {
  ASSIGN_OR_RETURN(CtxPtr ctx, Begin(key, out.size()));
  for (std::span<const uint8_t> field : fields) {
    if (field.size() > UINT32_MAX) return InvalidArgumentError("MAC field too long");
    uint8_t length[4];
    StoreBe4(std::span<uint8_t, 4>(length), static_cast<uint32_t>(field.size()));
    RETURN_IF_ERROR(Update(ctx.get(), length));
    RETURN_IF_ERROR(Update(ctx.get(), field));
  }
  return Finish(ctx.get(), out);
}

}  // namespace pinvault::protocol
