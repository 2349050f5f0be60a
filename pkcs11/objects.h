// objects.h: attribute templates, object search and attribute reads.
#ifndef PINVAULT_PKCS11_OBJECTS_H_
#define PINVAULT_PKCS11_OBJECTS_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pkcs11/cryptoki.h"
#include "pkcs11/session_pool.h"
#include "vault/bytes.h"
#include "vault/status.h"

namespace pinvault::pkcs11 {

// AttributeTemplate builds a CK_ATTRIBUTE array that owns its values. Values keep their
// addresses while the template lives (so data() stays valid as attributes are added). Never
// put secret values in a template: it is ordinary memory.
class AttributeTemplate {
 public:
  AttributeTemplate() = default;
  AttributeTemplate(AttributeTemplate&&) = default;
  AttributeTemplate& operator=(AttributeTemplate&&) = default;
  AttributeTemplate(const AttributeTemplate&) = delete;
  AttributeTemplate& operator=(const AttributeTemplate&) = delete;

  AttributeTemplate& Bool(CK_ATTRIBUTE_TYPE type, bool value);
  AttributeTemplate& Ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value);
  AttributeTemplate& Bytes(CK_ATTRIBUTE_TYPE type, ByteView value);
  AttributeTemplate& String(CK_ATTRIBUTE_TYPE type, std::string_view value);

  CK_ATTRIBUTE* data() { return attributes_.data(); }
  CK_ULONG size() const { return static_cast<CK_ULONG>(attributes_.size()); }

 private:
  AttributeTemplate& Add(CK_ATTRIBUTE_TYPE type, const void* value, size_t size);

  std::deque<std::vector<uint8_t>> storage_;
  std::vector<CK_ATTRIBUTE> attributes_;
};

// FindObjectsOn runs C_FindObjectsInit/C_FindObjects/C_FindObjectsFinal on `session` and
// appends the handles to `out`. The search always finishes, even when C_FindObjects fails.
CallResult FindObjectsOn(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session, AttributeTemplate& match,
                         std::vector<CK_OBJECT_HANDLE>* out);

// FindObjects returns every object matching `match` (an empty template matches all objects
// the logged-in user can see).
StatusOr<std::vector<CK_OBJECT_HANDLE>> FindObjects(SessionPool& pool, AttributeTemplate& match);

// FindByLabel returns the token objects (CKA_TOKEN true; session objects, such as working
// copies of keys, are not included) with CKA_LABEL == `label`, optionally of one class.
StatusOr<std::vector<CK_OBJECT_HANDLE>> FindByLabel(SessionPool& pool, std::string_view label,
                                                    std::optional<CK_OBJECT_CLASS> object_class);

// ReadBytesOn reads a variable-length attribute with the usual two calls (size, then value).
CK_RV ReadBytesOn(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                  CK_ATTRIBUTE_TYPE type, pinvault::Bytes* out);
// ReadUlongOn / ReadBoolOn read fixed-size attributes.
CK_RV ReadUlongOn(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                  CK_ATTRIBUTE_TYPE type, CK_ULONG* out);
CK_RV ReadBoolOn(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                 CK_ATTRIBUTE_TYPE type, bool* out);

// ReadBytes / ReadUlong / ReadString: the same through a pool (with its recovery).
StatusOr<pinvault::Bytes> ReadBytes(SessionPool& pool, CK_OBJECT_HANDLE object,
                                    CK_ATTRIBUTE_TYPE type);
StatusOr<CK_ULONG> ReadUlong(SessionPool& pool, CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type);
StatusOr<std::string> ReadString(SessionPool& pool, CK_OBJECT_HANDLE object,
                                 CK_ATTRIBUTE_TYPE type);

// DestroyObject destroys `object`.
Status DestroyObject(SessionPool& pool, CK_OBJECT_HANDLE object);

}  // namespace pinvault::pkcs11

#endif  // PINVAULT_PKCS11_OBJECTS_H_
