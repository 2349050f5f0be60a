// rv.h: CK_RV -> Status, in exactly one function.
//
// Every PKCS#11 return code that leaves pkcs11/ goes through RvToStatus, which keeps the
// PKCS#11 function name and the raw code in the message, e.g.
//   "C_Encrypt: CKR_DEVICE_REMOVED (0x32)"
// so that logs show exactly what the module said while callers switch on the Status code.
#ifndef PINVAULT_PKCS11_RV_H_
#define PINVAULT_PKCS11_RV_H_

#include <string>
#include <string_view>

#include "pkcs11/cryptoki.h"
#include "vault/status.h"

namespace pinvault::pkcs11 {

// RvName returns the specification name of `rv` ("CKR_PIN_INCORRECT"), or "CKR_VENDOR_DEFINED"
// / "CKR_UNKNOWN" for codes outside the table. Never fails.
std::string_view RvName(CK_RV rv);

// RvContext refines the mapping where the same code means different things.
enum class RvContext {
  kDefault,
  // The call was the final step of an authenticated decryption (AES-GCM C_Decrypt, or
  // C_UnwrapKey with an integrity-checked key wrap). Some modules (SoftHSM 2.6) report a failed
  // check as CKR_GENERAL_ERROR or CKR_FUNCTION_FAILED instead of CKR_ENCRYPTED_DATA_INVALID /
  // CKR_WRAPPED_KEY_INVALID; here those mean DATA_LOSS.
  kAuthenticatedDecrypt,
};

// RvToStatus maps `rv` returned by PKCS#11 function `function` to a Status (OK for CKR_OK).
//   UNAVAILABLE        device, token or session gone (CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT,
//                      CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_DEVICE_ERROR, ...)
//   PERMISSION_DENIED  PIN problems (CKR_PIN_INCORRECT, CKR_PIN_LOCKED, ...)
//   UNAUTHENTICATED    CKR_USER_NOT_LOGGED_IN
//   DATA_LOSS          authentication failures (CKR_ENCRYPTED_DATA_INVALID,
//                      CKR_SIGNATURE_INVALID, CKR_AEAD_DECRYPT_FAILED, CKR_WRAPPED_KEY_INVALID)
//   NOT_FOUND          object, key or slot handles that do not exist
//   INVALID_ARGUMENT   bad data, lengths, templates and mechanism parameters
//   UNIMPLEMENTED      mechanism or function the module does not have
//   FAILED_PRECONDITION key policy refusals, read-only tokens, already initialised module
//   RESOURCE_EXHAUSTED memory or session count
//   INTERNAL           everything else
// The message never contains data, keys or PINs: only names and the numeric code.
Status RvToStatus(CK_RV rv, std::string_view function, RvContext context = RvContext::kDefault);

// DescribeRv formats "<function>: <CKR_NAME> (0x<hex>)", the message RvToStatus uses.
std::string DescribeRv(CK_RV rv, std::string_view function);

}  // namespace pinvault::pkcs11

#endif  // PINVAULT_PKCS11_RV_H_
