// signatures.h: checks of the audit key's signatures with libraries independent of the HSM.
#ifndef PINVAULT_TESTS_TESTING_SIGNATURES_H_
#define PINVAULT_TESTS_TESTING_SIGNATURES_H_

#include "vault/bytes.h"

namespace pinvault::testing {

// VerifyEcdsaP256 checks a raw r||s ECDSA signature over SHA-256(`message`) with OpenSSL;
// `point` is the 65-byte uncompressed public point. False on any malformed input.
bool VerifyEcdsaP256(ByteView point, ByteView message, ByteView signature);

}  // namespace pinvault::testing

#endif  // PINVAULT_TESTS_TESTING_SIGNATURES_H_
