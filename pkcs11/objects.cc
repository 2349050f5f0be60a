#include "pkcs11/objects.h"

#include <cstring>

namespace pinvault::pkcs11 {

AttributeTemplate& AttributeTemplate::Add(CK_ATTRIBUTE_TYPE type, const void* value, size_t size) {
  std::vector<uint8_t>& slot = storage_.emplace_back(size);
  if (size > 0) std::memcpy(slot.data(), value, size);
  attributes_.push_back(
      CK_ATTRIBUTE{type, size > 0 ? slot.data() : nullptr, static_cast<CK_ULONG>(size)});
  return *this;
}

AttributeTemplate& AttributeTemplate::Bool(CK_ATTRIBUTE_TYPE type, bool value) {
  CK_BBOOL b = value ? CK_TRUE : CK_FALSE;
  return Add(type, &b, sizeof(b));
}

AttributeTemplate& AttributeTemplate::Ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value) {
  return Add(type, &value, sizeof(value));
}

AttributeTemplate& AttributeTemplate::Bytes(CK_ATTRIBUTE_TYPE type, ByteView value) {
  return Add(type, value.data(), value.size());
}

AttributeTemplate& AttributeTemplate::String(CK_ATTRIBUTE_TYPE type, std::string_view value) {
  return Add(type, value.data(), value.size());
}

CallResult FindObjectsOn(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session, AttributeTemplate& match,
                         std::vector<CK_OBJECT_HANDLE>* out) {
  CK_RV rv = f->C_FindObjectsInit(session, match.data(), match.size());
  if (rv != CKR_OK) return {rv, "C_FindObjectsInit"};
  CK_OBJECT_HANDLE batch[64];
  CallResult result;
  while (true) {
    CK_ULONG found = 0;
    rv = f->C_FindObjects(session, batch, 64, &found);
    if (rv != CKR_OK) {
      result = {rv, "C_FindObjects"};
      break;
    }
    out->insert(out->end(), batch, batch + found);
    if (found == 0) break;
  }
  rv = f->C_FindObjectsFinal(session);
  if (result.ok() && rv != CKR_OK) result = {rv, "C_FindObjectsFinal"};
  return result;
}

StatusOr<std::vector<CK_OBJECT_HANDLE>> FindObjects(SessionPool& pool, AttributeTemplate& match) {
  std::vector<CK_OBJECT_HANDLE> handles;
  RETURN_IF_ERROR(pool.Run([&](CK_SESSION_HANDLE session) {
    handles.clear();
    return FindObjectsOn(pool.functions(), session, match, &handles);
  }));
  return handles;
}

StatusOr<std::vector<CK_OBJECT_HANDLE>> FindByLabel(SessionPool& pool, std::string_view label,
                                                    std::optional<CK_OBJECT_CLASS> object_class) {
  AttributeTemplate match;
  match.Bool(CKA_TOKEN, true).String(CKA_LABEL, label);
  if (object_class.has_value()) match.Ulong(CKA_CLASS, *object_class);
  return FindObjects(pool, match);
}

CK_RV ReadBytesOn(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                  CK_ATTRIBUTE_TYPE type, pinvault::Bytes* out) {
  CK_ATTRIBUTE attribute{type, nullptr, 0};
  CK_RV rv = f->C_GetAttributeValue(session, object, &attribute, 1);
  if (rv != CKR_OK) return rv;
  if (attribute.ulValueLen == CK_UNAVAILABLE_INFORMATION) return CKR_ATTRIBUTE_TYPE_INVALID;
  out->assign(attribute.ulValueLen, 0);
  if (attribute.ulValueLen == 0) return CKR_OK;
  attribute.pValue = out->data();
  rv = f->C_GetAttributeValue(session, object, &attribute, 1);
  if (rv != CKR_OK) return rv;
  out->resize(attribute.ulValueLen);
  return CKR_OK;
}

CK_RV ReadUlongOn(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                  CK_ATTRIBUTE_TYPE type, CK_ULONG* out) {
  CK_ULONG value = 0;
  CK_ATTRIBUTE attribute{type, &value, sizeof(value)};
  CK_RV rv = f->C_GetAttributeValue(session, object, &attribute, 1);
  if (rv != CKR_OK) return rv;
  if (attribute.ulValueLen != sizeof(value)) return CKR_ATTRIBUTE_VALUE_INVALID;
  *out = value;
  return CKR_OK;
}

CK_RV ReadBoolOn(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                 CK_ATTRIBUTE_TYPE type, bool* out) {
  CK_BBOOL value = CK_FALSE;
  CK_ATTRIBUTE attribute{type, &value, sizeof(value)};
  CK_RV rv = f->C_GetAttributeValue(session, object, &attribute, 1);
  if (rv != CKR_OK) return rv;
  if (attribute.ulValueLen != sizeof(value)) return CKR_ATTRIBUTE_VALUE_INVALID;
  *out = value != CK_FALSE;
  return CKR_OK;
}

StatusOr<pinvault::Bytes> ReadBytes(SessionPool& pool, CK_OBJECT_HANDLE object,
                                    CK_ATTRIBUTE_TYPE type) {
  pinvault::Bytes value;
  RETURN_IF_ERROR(pool.Run([&](CK_SESSION_HANDLE session) {
    return CallResult{ReadBytesOn(pool.functions(), session, object, type, &value),
                      "C_GetAttributeValue"};
  }));
  return value;
}

StatusOr<CK_ULONG> ReadUlong(SessionPool& pool, CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) {
  CK_ULONG value = 0;
  RETURN_IF_ERROR(pool.Run([&](CK_SESSION_HANDLE session) {
    return CallResult{ReadUlongOn(pool.functions(), session, object, type, &value),
                      "C_GetAttributeValue"};
  }));
  return value;
}

StatusOr<std::string> ReadString(SessionPool& pool, CK_OBJECT_HANDLE object,
                                 CK_ATTRIBUTE_TYPE type) {
  ASSIGN_OR_RETURN(pinvault::Bytes value, ReadBytes(pool, object, type));
  return std::string(value.begin(), value.end());
}

Status DestroyObject(SessionPool& pool, CK_OBJECT_HANDLE object) {
  return pool.Run([&](CK_SESSION_HANDLE session) {
    return CallResult{pool.functions()->C_DestroyObject(session, object), "C_DestroyObject"};
  });
}

}  // namespace pinvault::pkcs11
