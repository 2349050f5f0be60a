// cryptoki.h: the one place pinvault includes the PKCS#11 C header.
//
// Every other file in pkcs11/ (and the test fixtures that drive a module directly) includes
// this header instead of <p11-kit/pkcs11.h>. It uses p11-kit's copy of the OASIS header in its
// "compat" spelling (CK_RV, CK_SESSION_HANDLE, CK_ATTRIBUTE{type, pValue, ulValueLen}, ...),
// which is the spelling of the PKCS#11 specification, and adds the few names that header
// lacks.
//
// vault/ never includes this file: the core sees the HSM only through vault/hsm.h.
#ifndef PINVAULT_PKCS11_CRYPTOKI_H_
#define PINVAULT_PKCS11_CRYPTOKI_H_

#include <p11-kit/pkcs11.h>

// PKCS#11 v3.0 names missing from p11-kit 0.24's header (values from the v3.0 specification).
#ifndef CKR_AEAD_DECRYPT_FAILED
#define CKR_AEAD_DECRYPT_FAILED (0x35UL)
#endif
#ifndef CKR_OPERATION_CANCEL_FAILED
#define CKR_OPERATION_CANCEL_FAILED (0x202UL)
#endif

static_assert(CKM_EDDSA == 0x1057UL, "PKCS#11 header lacks CKM_EDDSA");
static_assert(CKK_EC_EDWARDS == 0x40UL, "PKCS#11 header lacks CKK_EC_EDWARDS");
static_assert(CKM_AES_KEY_WRAP_PAD == 0x210aUL, "PKCS#11 header lacks CKM_AES_KEY_WRAP_PAD");

namespace pinvault::pkcs11 {

// InitializeArgs is what Module passes to C_Initialize. It is CK_C_INITIALIZE_ARGS followed
// by one more null pointer: NSS softokn's variant of the structure carries the module's
// parameter string in pReserved ("LibraryParameters") and then reads a trailing reserved
// pointer, so the extra field keeps that read inside our object. Other modules ignore it.
struct InitializeArgs {
  CK_C_INITIALIZE_ARGS args;
  void* nss_trailing_reserved;
};

}  // namespace pinvault::pkcs11

#endif  // PINVAULT_PKCS11_CRYPTOKI_H_
