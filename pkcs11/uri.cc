#include "pkcs11/uri.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <vector>

namespace pinvault::pkcs11 {
namespace {

constexpr size_t kMaxPinFileSize = 1024;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsUnreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  if (s.empty()) return parts;
  size_t start = 0;
  while (true) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, end - start));
    start = end + 1;
  }
}

Status SetOnce(std::optional<std::string>& field, std::string_view name, std::string value) {
  if (field.has_value()) {
    return InvalidArgumentError("PKCS#11 URI repeats attribute '" + std::string(name) + "'");
  }
  field = std::move(value);
  return OkStatus();
}

void AppendAttr(std::string& out, bool& first, char sep, std::string_view name,
                const std::optional<std::string>& value) {
  if (!value.has_value()) return;
  if (!first) out += sep;
  first = false;
  out += name;
  out += '=';
  out += PercentEncode(*value);
}

}  // namespace

StatusOr<std::string> PercentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) {
      return InvalidArgumentError("PKCS#11 URI has a truncated percent escape");
    }
    int hi = HexValue(in[i + 1]);
    int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) {
      return InvalidArgumentError("PKCS#11 URI has a malformed percent escape");
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string PercentEncode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : in) {
    if (IsUnreserved(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

StatusOr<TokenUri> ParseTokenUri(std::string_view uri) {
  constexpr std::string_view kScheme = "pkcs11:";
  if (uri.size() < kScheme.size()) {
    return InvalidArgumentError("not a PKCS#11 URI (expected 'pkcs11:...')");
  }
  for (size_t i = 0; i < kScheme.size(); ++i) {
    char c = uri[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kScheme[i]) return InvalidArgumentError("not a PKCS#11 URI (expected 'pkcs11:...')");
  }
  std::string_view rest = uri.substr(kScheme.size());
  std::string_view path = rest;
  std::string_view query;
  if (size_t q = rest.find('?'); q != std::string_view::npos) {
    path = rest.substr(0, q);
    query = rest.substr(q + 1);
  }

  TokenUri out;
  std::optional<std::string> ignored_object, ignored_id, ignored_type;
  for (std::string_view attr : Split(path, ';')) {
    if (attr.empty()) continue;
    size_t eq = attr.find('=');
    if (eq == std::string_view::npos) {
      return InvalidArgumentError("PKCS#11 URI path attribute without '=': '" + std::string(attr) +
                                  "'");
    }
    std::string_view name = attr.substr(0, eq);
    ASSIGN_OR_RETURN(std::string value, PercentDecode(attr.substr(eq + 1)));
    if (name == "token") {
      RETURN_IF_ERROR(SetOnce(out.token, name, std::move(value)));
    } else if (name == "serial") {
      RETURN_IF_ERROR(SetOnce(out.serial, name, std::move(value)));
    } else if (name == "manufacturer") {
      RETURN_IF_ERROR(SetOnce(out.manufacturer, name, std::move(value)));
    } else if (name == "model") {
      RETURN_IF_ERROR(SetOnce(out.model, name, std::move(value)));
    } else if (name == "slot-description") {
      RETURN_IF_ERROR(SetOnce(out.slot_description, name, std::move(value)));
    } else if (name == "slot-manufacturer") {
      RETURN_IF_ERROR(SetOnce(out.slot_manufacturer, name, std::move(value)));
    } else if (name == "library-manufacturer") {
      RETURN_IF_ERROR(SetOnce(out.library_manufacturer, name, std::move(value)));
    } else if (name == "library-description") {
      RETURN_IF_ERROR(SetOnce(out.library_description, name, std::move(value)));
    } else if (name == "library-version") {
      RETURN_IF_ERROR(SetOnce(out.library_version, name, std::move(value)));
    } else if (name == "object") {
      RETURN_IF_ERROR(SetOnce(ignored_object, name, std::move(value)));
    } else if (name == "id") {
      RETURN_IF_ERROR(SetOnce(ignored_id, name, std::move(value)));
    } else if (name == "type") {
      RETURN_IF_ERROR(SetOnce(ignored_type, name, std::move(value)));
    } else if (name == "slot-id") {
      return InvalidArgumentError(
          "PKCS#11 URI selects by slot-id; slot numbers are not stable, name the token by "
          "token=LABEL or serial=SERIAL instead");
    } else if (name.substr(0, 2) == "x-") {
      continue;
    } else {
      return InvalidArgumentError("PKCS#11 URI has unknown path attribute '" + std::string(name) +
                                  "'");
    }
  }

  for (std::string_view attr : Split(query, '&')) {
    if (attr.empty()) continue;
    size_t eq = attr.find('=');
    if (eq == std::string_view::npos) {
      return InvalidArgumentError("PKCS#11 URI query attribute without '=': '" +
                                  std::string(attr.substr(0, 32)) + "'");
    }
    std::string_view name = attr.substr(0, eq);
    if (name == "pin-value") {
      if (out.pin_value.has_value()) {
        return InvalidArgumentError("PKCS#11 URI repeats attribute 'pin-value'");
      }
      ASSIGN_OR_RETURN(std::string value, PercentDecode(attr.substr(eq + 1)));
      out.pin_value = SecretBytes::CopyFrom(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(value.data()), value.size()));
      SecureWipe(std::span<uint8_t>(reinterpret_cast<uint8_t*>(value.data()), value.size()));
      std::cerr << "warning: the PKCS#11 URI carries pin-value; the PIN is visible wherever the "
                   "URI is (command lines, shell history, logs). Use pin-source=file:PATH.\n";
      continue;
    }
    ASSIGN_OR_RETURN(std::string value, PercentDecode(attr.substr(eq + 1)));
    if (name == "pin-source") {
      std::string file;
      if (value.rfind("file://", 0) == 0) {
        file = value.substr(7);
      } else if (value.rfind("file:", 0) == 0) {
        file = value.substr(5);
      } else {
        file = value;
      }
      if (file.empty() || file[0] != '/') {
        return InvalidArgumentError("PKCS#11 URI pin-source must be file:/ABSOLUTE/PATH (got '" +
                                    value + "')");
      }
      RETURN_IF_ERROR(SetOnce(out.pin_source, name, std::move(file)));
    } else if (name == "module-path") {
      RETURN_IF_ERROR(SetOnce(out.module_path, name, std::move(value)));
    } else if (name == "module-name") {
      RETURN_IF_ERROR(SetOnce(out.module_name, name, std::move(value)));
    } else if (name.substr(0, 2) == "x-") {
      continue;
    } else {
      return InvalidArgumentError("PKCS#11 URI has unknown query attribute '" + std::string(name) +
                                  "'");
    }
  }
  if (out.pin_source.has_value() && out.pin_value.has_value()) {
    return InvalidArgumentError("PKCS#11 URI has both pin-source and pin-value");
  }
  return out;
}

bool TokenUri::HasTokenSelector() const {
  return token.has_value() || serial.has_value() || manufacturer.has_value() || model.has_value();
}

std::string TokenUri::ToString() const {
  std::string out = "pkcs11:";
  bool first = true;
  AppendAttr(out, first, ';', "token", token);
  AppendAttr(out, first, ';', "serial", serial);
  AppendAttr(out, first, ';', "manufacturer", manufacturer);
  AppendAttr(out, first, ';', "model", model);
  AppendAttr(out, first, ';', "slot-description", slot_description);
  AppendAttr(out, first, ';', "slot-manufacturer", slot_manufacturer);
  AppendAttr(out, first, ';', "library-manufacturer", library_manufacturer);
  AppendAttr(out, first, ';', "library-description", library_description);
  AppendAttr(out, first, ';', "library-version", library_version);
  std::string query;
  bool qfirst = true;
  if (pin_source.has_value()) {
    // Keep '/' readable in the path.
    if (!qfirst) query += '&';
    qfirst = false;
    query += "pin-source=file:";
    for (char c : *pin_source) {
      if (c == '/') {
        query += '/';
      } else {
        query += PercentEncode(std::string_view(&c, 1));
      }
    }
  }
  if (pin_value.has_value()) {
    if (!qfirst) query += '&';
    qfirst = false;
    query += "pin-value=REDACTED";
  }
  AppendAttr(query, qfirst, '&', "module-path", module_path);
  AppendAttr(query, qfirst, '&', "module-name", module_name);
  if (!query.empty()) {
    out += '?';
    out += query;
  }
  return out;
}

StatusOr<SecretBytes> ReadPinFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string message = "cannot open PIN file '" + path + "': " + std::strerror(err);
    if (err == EACCES || err == EPERM) return PermissionDeniedError(std::move(message));
    return NotFoundError(std::move(message));
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) {
    std::cerr << "warning: PIN file '" << path
              << "' is readable by group or others; chmod 600 it\n";
  }
  SecretBytes buffer(kMaxPinFileSize + 1);
  size_t used = 0;
  while (used < buffer.size()) {
    ssize_t n = ::read(fd, buffer.RevealMutable().data() + used, buffer.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return InternalError("cannot read PIN file '" + path + "': " + std::strerror(err));
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  ::close(fd);
  if (used > kMaxPinFileSize) {
    return InvalidArgumentError("PIN file '" + path + "' is longer than 1 KiB");
  }
  std::span<const uint8_t> content = buffer.Reveal().subspan(0, used);
  if (!content.empty() && content.back() == '\n') content = content.first(content.size() - 1);
  if (!content.empty() && content.back() == '\r') content = content.first(content.size() - 1);
  if (content.empty()) return InvalidArgumentError("PIN file '" + path + "' is empty");
  return SecretBytes::CopyFrom(content);
}

StatusOr<SecretBytes> LoadPin(const TokenUri& uri) {
  if (uri.pin_value.has_value()) return uri.pin_value->Clone();
  if (uri.pin_source.has_value()) return ReadPinFile(*uri.pin_source);
  return NotFoundError("the PKCS#11 URI names no PIN (add ?pin-source=file:PATH)");
}

}  // namespace pinvault::pkcs11
