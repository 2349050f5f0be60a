// uri.h: PKCS#11 URIs (RFC 7512) naming a token, and the PIN they point at.
//
//   pkcs11:token=pinvault-realm-1;manufacturer=SoftHSM%20project?pin-source=file:/etc/pinvault/pin
//
// Path attributes that select a token: token (label), serial, manufacturer, model, and the
// library-* / slot-description / slot-manufacturer attributes. `slot-id` is refused: slot
// numbers are not stable (SoftHSM renumbers slots when tokens are created), so pinvault never
// selects by them. Object attributes (object, id, type) are accepted and ignored, so a URI
// copied from another tool still names its token. Unknown attributes are refused (a typo must
// not silently widen the match); vendor attributes starting with "x-" are ignored.
//
// Query attributes: pin-source=file:PATH (or an absolute path) names a file holding the user
// PIN; pin-value=PIN is accepted but a warning goes to stderr because the PIN is then visible
// wherever the URI is (command lines, shell history, logs); module-path=PATH and module-name=NAME
// name the PKCS#11 module to load.
//
// Values are percent-decoded. ToString() never reproduces a pin-value.
#ifndef PINVAULT_PKCS11_URI_H_
#define PINVAULT_PKCS11_URI_H_

#include <optional>
#include <string>
#include <string_view>

#include "vault/secret_bytes.h"
#include "vault/status.h"

namespace pinvault::pkcs11 {

// TokenUri is a parsed PKCS#11 URI. Move-only because it may hold a pin-value.
struct TokenUri {
  // Token selection (compared with CK_TOKEN_INFO after trimming its space padding).
  std::optional<std::string> token;
  std::optional<std::string> serial;
  std::optional<std::string> manufacturer;
  std::optional<std::string> model;
  // Slot selection (compared with CK_SLOT_INFO).
  std::optional<std::string> slot_description;
  std::optional<std::string> slot_manufacturer;
  // Library selection (compared with CK_INFO).
  std::optional<std::string> library_manufacturer;
  std::optional<std::string> library_description;
  std::optional<std::string> library_version;

  // Query part.
  std::optional<std::string> pin_source;  // a file path ("file:" already removed)
  std::optional<SecretBytes> pin_value;   // from pin-value; discouraged
  std::optional<std::string> module_path;
  std::optional<std::string> module_name;

  // ToString renders the URI back (pin-value replaced by "pin-value=REDACTED"), for messages.
  std::string ToString() const;

  // HasTokenSelector is true if any token attribute (token, serial, manufacturer, model) is set.
  bool HasTokenSelector() const;
};

// ParseTokenUri parses `uri`. INVALID_ARGUMENT on a missing "pkcs11:" scheme, a malformed
// percent escape, a repeated attribute, slot-id, an unknown attribute, or a pin-source that is
// not a file. A pin-value is accepted with a warning on stderr.
StatusOr<TokenUri> ParseTokenUri(std::string_view uri);

// PercentDecode decodes %XX escapes; INVALID_ARGUMENT on a truncated or non-hex escape.
StatusOr<std::string> PercentDecode(std::string_view in);

// PercentEncode escapes every byte outside RFC 3986's unreserved set (for building URIs).
std::string PercentEncode(std::string_view in);

// LoadPin returns the user PIN the URI names: the content of the pin-source file (one
// trailing "\n" or "\r\n" removed) or the pin-value. NOT_FOUND if the URI names no PIN,
// NOT_FOUND / PERMISSION_DENIED if the file cannot be opened, INVALID_ARGUMENT if it is
// empty or longer than 1 KiB. Warns on stderr if the file is readable by group or others.
StatusOr<SecretBytes> LoadPin(const TokenUri& uri);

// ReadPinFile reads a PIN file as LoadPin does.
StatusOr<SecretBytes> ReadPinFile(const std::string& path);

}  // namespace pinvault::pkcs11

#endif  // PINVAULT_PKCS11_URI_H_
