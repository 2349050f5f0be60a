#include "tests/testing/signatures.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

namespace pinvault::testing {

bool VerifyEcdsaP256(ByteView point, ByteView message, ByteView signature) {
  if (signature.size() != 64) return false;
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM* params = nullptr;
  if (bld != nullptr &&
      OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1 &&
      OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) ==
          1) {
    params = OSSL_PARAM_BLD_to_param(bld);
  }
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* key = nullptr;
  bool ok = params != nullptr && ctx != nullptr && EVP_PKEY_fromdata_init(ctx) == 1 &&
            EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) == 1;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(signature.data(), 32, nullptr);
  BIGNUM* s = BN_bin2bn(signature.data() + 32, 32, nullptr);
  if (sig != nullptr && r != nullptr && s != nullptr && ECDSA_SIG_set0(sig, r, s) == 1) {
    r = s = nullptr;  // owned by sig now
  } else {
    ok = false;
  }
  unsigned char* der = nullptr;
  int der_len = ok ? i2d_ECDSA_SIG(sig, &der) : 0;
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ok = ok && der_len > 0 && md != nullptr &&
       EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key) == 1 &&
       EVP_DigestVerify(md, der, static_cast<size_t>(der_len), message.data(), message.size()) == 1;
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
  BN_free(r);
  BN_free(s);
  ECDSA_SIG_free(sig);
  EVP_PKEY_free(key);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  return ok;
}

}  // namespace pinvault::testing
