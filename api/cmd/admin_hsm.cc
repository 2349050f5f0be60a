#include "api/cmd/admin_hsm.h"

#include <iomanip>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "api/cmd/cli_args.h"
#include "pkcs11/audit.h"
#include "pkcs11/key_set.h"
#include "pkcs11/mechanisms.h"
#include "pkcs11/module.h"
#include "pkcs11/objects.h"
#include "pkcs11/session_pool.h"
#include "pkcs11/token_setup.h"
#include "pkcs11/uri.h"

namespace pinvault::api {
namespace {

using pkcs11::AuditReport;
using pkcs11::Capabilities;
using pkcs11::Module;
using pkcs11::ObjectReport;
using pkcs11::SessionPool;
using pkcs11::TokenDescription;
using pkcs11::TokenUri;

constexpr char kUsage[] =
    "usage: pinvault-admin hsm init   --token URI [--module PATH] [--module-args STRING]\n"
    "                                 [--audit-key ed25519|p256]\n"
    "       pinvault-admin hsm audit  --token URI [--module PATH] [--module-args STRING]\n"
    "                                 [--json] [--no-require-local]\n"
    "       pinvault-admin hsm status --token URI [--module PATH] [--module-args STRING]\n"
    "URI: a PKCS#11 URI, e.g. pkcs11:token=realm-1?pin-source=file:/etc/pinvault/user-pin\n"
    "The module is --module, else the URI's module-path, else "
    "/usr/lib/softhsm/libsofthsm2.so.\n"
    "Exit status: 0 ok, 1 audit violations, 2 usage, 3 module/token/PIN error.\n";

struct HsmArgs {
  std::string command;
  std::string token_uri;
  std::optional<std::string> module;
  std::string module_args;
  std::optional<std::string> audit_key;
  bool json = false;
  bool require_local = true;
};

StatusOr<HsmArgs> ParseArgs(const std::vector<std::string>& args) {
  ASSIGN_OR_RETURN(cli::ParsedArgs parsed,
                   cli::ParseArgs(args, {"token", "module", "module-args", "audit-key"},
                                  {"json", "no-require-local"}));
  if (parsed.positional.size() != 1) return InvalidArgumentError("expected one command");
  HsmArgs out;
  out.command = parsed.positional[0];
  if (const std::string* v = parsed.Get("token")) out.token_uri = *v;
  if (const std::string* v = parsed.Get("module")) out.module = *v;
  if (const std::string* v = parsed.Get("module-args")) out.module_args = *v;
  if (const std::string* v = parsed.Get("audit-key")) out.audit_key = *v;
  out.json = parsed.switches.contains("json");
  out.require_local = !parsed.switches.contains("no-require-local");
  if (out.token_uri.empty()) return InvalidArgumentError("--token URI is required");
  return out;
}

// Printable renders a label for a terminal: control and non-ASCII bytes as \xNN.
std::string Printable(const std::string& s) {
  std::ostringstream out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out << c;
    } else {
      out << "\\x" << std::hex << std::setw(2) << std::setfill('0') << static_cast<int>(c)
          << std::dec;
    }
  }
  return out.str();
}

std::string YesNo(std::optional<bool> v) {
  if (!v.has_value()) return "unavailable";
  return *v ? "true" : "false";
}

// Connection is an initialised module and the parsed URI.
struct Connection {
  std::shared_ptr<Module> module;
  TokenUri uri;
  std::string module_path;
};

StatusOr<Connection> Connect(const HsmArgs& args) {
  Connection c;
  ASSIGN_OR_RETURN(c.uri, pkcs11::ParseTokenUri(args.token_uri));
  std::string module = args.module.value_or(
      c.uri.module_path.value_or(c.uri.module_name.value_or(pkcs11::kDefaultModulePath)));
  StatusOr<std::unique_ptr<Module>> loaded = Module::Load(module, args.module_args);
  if (!loaded.ok()) return loaded.status();
  c.module_path = (*loaded)->path();
  c.module = *std::move(loaded);
  return c;
}

// OpenPool logs in to the token; it consumes `c.uri`.
StatusOr<std::shared_ptr<SessionPool>> OpenPool(Connection& c) {
  if (!c.uri.pin_source.has_value() && !c.uri.pin_value.has_value()) {
    return FailedPreconditionError("the token URI names no PIN; add ?pin-source=file:PATH");
  }
  StatusOr<std::unique_ptr<SessionPool>> pool = SessionPool::Open(c.module, std::move(c.uri));
  if (!pool.ok()) return pool.status().WithContext("cannot open the token");
  return std::shared_ptr<SessionPool>(*std::move(pool));
}

std::string Describe(const TokenDescription& t) {
  return "'" + Printable(t.label) + "' (" + Printable(t.manufacturer) + " " + Printable(t.model) +
         ", serial " + Printable(t.serial) + ")";
}

int Fail(std::ostream& err, const std::string& command, const Status& status) {
  err << "pinvault-admin hsm " << command << ": " << status << "\n";
  return kHsmExitError;
}

int RunInit(const HsmArgs& args, std::ostream& out, std::ostream& err) {
  pkcs11::KeySetOptions options;
  if (args.audit_key.has_value()) {
    if (*args.audit_key == "ed25519") {
      options.audit_algorithm = vault::SignatureAlgorithm::kEd25519;
    } else if (*args.audit_key == "p256") {
      options.audit_algorithm = vault::SignatureAlgorithm::kEcdsaP256;
    } else {
      err << "pinvault-admin hsm init: --audit-key must be ed25519 or p256\n";
      return kHsmExitUsage;
    }
  }
  StatusOr<Connection> c = Connect(args);
  if (!c.ok()) return Fail(err, "init", c.status());
  StatusOr<std::shared_ptr<SessionPool>> pool = OpenPool(*c);
  if (!pool.ok()) return Fail(err, "init", pool.status());
  out << "token " << Describe((*pool)->token()) << " via " << c->module_path << "\n";
  StatusOr<pkcs11::ProvisionedRealm> realm = pkcs11::ProvisionRealm(*std::move(pool), options);
  if (!realm.ok()) return Fail(err, "init", realm.status());
  const std::vector<pkcs11::KeySetAction>& actions = realm->actions;
  int created = 0;
  for (const pkcs11::KeySetAction& action : actions) {
    out << (action.created ? "created  " : "exists   ") << std::left << std::setw(26)
        << action.label << " " << action.kind << "\n";
    created += action.created ? 1 : 0;
  }
  out << "init: " << created << " key(s) created, " << actions.size() - created
      << " already present; nothing was overwritten\n";
  return kHsmExitOk;
}

nlohmann::json AttributesJson(const pkcs11::ObjectAttributes& a) {
  nlohmann::json flags = nlohmann::json::object();
  for (const pkcs11::FlagInfo& info : pkcs11::AllFlags()) {
    std::optional<bool> v = a.Get(info.flag);
    flags[info.name] = v.has_value() ? nlohmann::json(*v) : nlohmann::json(nullptr);
  }
  return flags;
}

nlohmann::json ReportJson(const AuditReport& report, const TokenDescription& token,
                          const std::string& module_path) {
  nlohmann::json j;
  j["module"] = module_path;
  j["token"] = {{"label", token.label},
                {"manufacturer", token.manufacturer},
                {"model", token.model},
                {"serial", token.serial}};
  j["policy"] = {{"require_local", report.policy.require_local}};
  j["wrap_enforced"] =
      report.wrap_enforced.has_value() ? nlohmann::json(*report.wrap_enforced) : nullptr;
  nlohmann::json objects = nlohmann::json::array();
  for (const ObjectReport& o : report.objects) {
    const pkcs11::ObjectAttributes& a = o.attributes;
    nlohmann::json obj;
    obj["handle"] = a.handle;
    obj["class"] = a.object_class ? nlohmann::json(pkcs11::ObjectClassName(*a.object_class))
                                  : nlohmann::json(nullptr);
    obj["key_type"] =
        a.key_type ? nlohmann::json(pkcs11::KeyTypeName(*a.key_type)) : nlohmann::json(nullptr);
    obj["label"] = a.label ? nlohmann::json(*a.label) : nlohmann::json(nullptr);
    obj["id"] = a.id ? nlohmann::json(HexEncode(*a.id)) : nlohmann::json(nullptr);
    obj["value_len"] = a.value_len ? nlohmann::json(*a.value_len) : nlohmann::json(nullptr);
    obj["attributes"] = AttributesJson(a);
    obj["role"] = o.description;
    obj["realm_object"] = o.role.has_value();
    obj["result"] = o.pass() ? "PASS" : "FAIL";
    nlohmann::json violations = nlohmann::json::array();
    for (const pkcs11::Violation& v : o.violations) {
      violations.push_back({{"attribute", v.attribute}, {"problem", v.problem}});
    }
    obj["violations"] = violations;
    obj["notes"] = o.notes;
    objects.push_back(obj);
  }
  j["objects"] = objects;
  nlohmann::json findings = nlohmann::json::array();
  for (const pkcs11::TokenFinding& f : report.findings) {
    findings.push_back({{"subject", f.subject},
                        {"attribute", f.violation.attribute},
                        {"problem", f.violation.problem}});
  }
  j["findings"] = findings;
  j["violations"] = report.ViolationCount();
  j["result"] = report.pass() ? "PASS" : "FAIL";
  return j;
}

void PrintReport(const AuditReport& report, const TokenDescription& token,
                 const std::string& module_path, std::ostream& out) {
  out << "audit of token " << Describe(token) << " via " << module_path << "\n";
  out << "policy: each realm key is token, private, sensitive, always sensitive, not "
         "extractable, never extractable, "
      << (report.policy.require_local ? "local, " : "")
      << "not modifiable, with only the usages of its role\n";
  if (!report.policy.require_local) {
    out << "WARNING: CKA_LOCAL is not required (--no-require-local): the audit does not check "
           "that keys were generated on this token\n";
  }
  out << "module enforces CKA_EXTRACTABLE=false on C_WrapKey: "
      << (report.wrap_enforced.has_value() ? (*report.wrap_enforced ? "yes" : "NO")
                                           : "not checked (no wrap mechanism)")
      << "\n\n";
  for (const ObjectReport& o : report.objects) {
    const pkcs11::ObjectAttributes& a = o.attributes;
    out << (o.pass() ? "[PASS] " : "[FAIL] ")
        << (a.object_class ? pkcs11::ObjectClassName(*a.object_class) : std::string("object"));
    if (a.key_type) out << " " << pkcs11::KeyTypeName(*a.key_type);
    out << " \"" << Printable(a.label.value_or("")) << "\"";
    if (a.id && !a.id->empty()) {
      std::string id = HexEncode(*a.id);
      if (id.size() > 40) id = id.substr(0, 40) + "...";
      out << " id " << id;
    }
    if (a.value_len) out << " (" << *a.value_len << " bytes)";
    out << " - " << o.description << "\n      ";
    std::string usages;
    for (const pkcs11::FlagInfo& info : pkcs11::AllFlags()) {
      if (info.usage) {
        if (a.Get(info.flag).value_or(false)) usages += std::string(" ") + info.name;
      } else {
        out << " " << info.name << "=" << YesNo(a.Get(info.flag));
      }
    }
    out << "\n       usages:" << (usages.empty() ? " none" : usages) << "\n";
    for (const std::string& note : o.notes) out << "       note: " << note << "\n";
    for (const pkcs11::Violation& v : o.violations) {
      out << "       violation: " << v.attribute << " " << v.problem << "\n";
    }
  }
  for (const pkcs11::TokenFinding& f : report.findings) {
    out << "[FAIL] " << Printable(f.subject) << ": " << f.violation.attribute << " "
        << f.violation.problem << "\n";
  }
  out << "\n";
  if (report.pass()) {
    out << "audit: PASS - " << report.objects.size() << " object(s), no violations\n";
    return;
  }
  out << "audit: FAIL - " << report.ViolationCount() << " violation(s):";
  for (const ObjectReport& o : report.objects) {
    for (const pkcs11::Violation& v : o.violations) {
      out << " \"" << Printable(o.attributes.label.value_or("")) << "\" " << v.attribute << ";";
    }
  }
  for (const pkcs11::TokenFinding& f : report.findings) {
    out << " " << Printable(f.subject) << " " << f.violation.attribute << ";";
  }
  out << "\n";
}

int RunAudit(const HsmArgs& args, std::ostream& out, std::ostream& err) {
  StatusOr<Connection> c = Connect(args);
  if (!c.ok()) return Fail(err, "audit", c.status());
  StatusOr<std::shared_ptr<SessionPool>> pool = OpenPool(*c);
  if (!pool.ok()) return Fail(err, "audit", pool.status());
  TokenDescription token = (*pool)->token();
  StatusOr<Capabilities> caps = pkcs11::DetectCapabilities(*c->module, token.slot, token.flags);
  if (!caps.ok()) return Fail(err, "audit", caps.status());
  pkcs11::AuditPolicy policy;
  policy.require_local = args.require_local;
  StatusOr<AuditReport> report = pkcs11::AuditToken(**pool, *caps, policy);
  if (!report.ok()) return Fail(err, "audit", report.status());
  if (args.json) {
    out << ReportJson(*report, token, c->module_path)
               .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
        << "\n";
  } else {
    PrintReport(*report, token, c->module_path, out);
  }
  return report->pass() ? kHsmExitOk : kHsmExitViolations;
}

std::string FlagsText(CK_FLAGS flags) {
  std::string out;
  auto add = [&](CK_FLAGS bit, const char* name) {
    if ((flags & bit) != 0) out += std::string(out.empty() ? "" : ", ") + name;
  };
  add(CKF_TOKEN_INITIALIZED, "initialized");
  add(CKF_LOGIN_REQUIRED, "login required");
  add(CKF_USER_PIN_INITIALIZED, "user PIN set");
  add(CKF_RNG, "RNG");
  add(CKF_WRITE_PROTECTED, "write protected");
  add(CKF_USER_PIN_LOCKED, "USER PIN LOCKED");
  add(CKF_USER_PIN_COUNT_LOW, "user PIN count low");
  return out;
}

int RunStatus(const HsmArgs& args, std::ostream& out, std::ostream& err) {
  StatusOr<Connection> c = Connect(args);
  if (!c.ok()) return Fail(err, "status", c.status());
  StatusOr<pkcs11::ModuleInfo> info = c->module->GetInfo();
  if (!info.ok()) return Fail(err, "status", info.status());
  StatusOr<TokenDescription> token = c->module->FindToken(c->uri);
  if (!token.ok()) return Fail(err, "status", token.status());
  out << "module:  " << c->module_path << "\n"
      << "         " << Printable(info->manufacturer) << ", " << Printable(info->description) << " "
      << info->library_version << ", Cryptoki " << info->cryptoki_version << "\n"
      << "token:   " << Describe(*token) << "\n"
      << "         hardware " << token->hardware_version << ", firmware " << token->firmware_version
      << ", slot \"" << Printable(token->slot_description) << "\"\n"
      << "flags:   " << FlagsText(token->flags) << "\n\n";
  StatusOr<Capabilities> caps = pkcs11::DetectCapabilities(*c->module, token->slot, token->flags);
  if (!caps.ok()) return Fail(err, "status", caps.status());
  out << "mechanisms pinvault uses:\n";
  for (const pkcs11::MechanismCheck& m : caps->checks) {
    out << "  " << (m.present ? "present " : "MISSING ") << std::left << std::setw(29) << m.name
        << (m.required ? "required  " : "optional  ") << m.purpose << "\n";
  }
  out << "\naudit signing key: "
      << (caps->eddsa   ? "Ed25519 (CKM_EDDSA)"
          : caps->ecdsa ? "ECDSA P-256 (this token has no CKM_EDDSA)"
                        : "NONE AVAILABLE")
      << "\n";
  out << "realm key set supported: " << (caps->RealmKeysSupported() ? "yes" : "NO") << "\n";
  if (c->uri.pin_source.has_value() || c->uri.pin_value.has_value()) {
    StatusOr<std::shared_ptr<SessionPool>> pool = OpenPool(*c);
    if (!pool.ok()) return Fail(err, "status", pool.status());
    StatusOr<pkcs11::RealmKeys> keys = pkcs11::FindRealmKeys(**pool);
    if (keys.ok()) {
      out << "realm keys: present (sealing key ids:";
      for (const auto& [id, handle] : keys->sealing) out << " " << id;
      out << "; audit key "
          << (keys->audit_algorithm == vault::SignatureAlgorithm::kEd25519 ? "Ed25519"
                                                                           : "ECDSA P-256")
          << ")\n";
    } else {
      out << "realm keys: " << keys.status().message() << "\n";
    }
  } else {
    out << "realm keys: not checked (the URI names no PIN)\n";
  }
  return caps->RealmKeysSupported() ? kHsmExitOk : kHsmExitError;
}

}  // namespace

int RunHsmCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? err : out) << kUsage;
    return args.empty() ? kHsmExitUsage : kHsmExitOk;
  }
  StatusOr<HsmArgs> parsed = ParseArgs(args);
  if (!parsed.ok()) {
    err << "pinvault-admin hsm: " << parsed.status().message() << "\n" << kUsage;
    return kHsmExitUsage;
  }
  if (parsed->command == "init") return RunInit(*parsed, out, err);
  if (parsed->command == "audit") return RunAudit(*parsed, out, err);
  if (parsed->command == "status") return RunStatus(*parsed, out, err);
  err << "pinvault-admin hsm: unknown command \"" << parsed->command << "\"\n" << kUsage;
  return kHsmExitUsage;
}

}  // namespace pinvault::api
