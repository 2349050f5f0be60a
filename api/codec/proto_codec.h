// Protobuf codec for the native API (`POST /v1/secrets`, schema api/proto/secrets.proto):
// binary (`application/x-protobuf`) and canonical protobuf JSON (`application/json`).
//
// This header exposes no protobuf types; only proto_codec.cc includes the generated code.
//
// Decoding is strict: the body must parse, carry no unknown fields (binary) or unknown keys
// (JSON), set exactly one oneof member, and every byte field must have its fixed size
// (PROTOCOL-NOTES g.3); counters must fit in 16 bits. Every rejection is INVALID_ARGUMENT
// naming the field. Bodies over kMaxProtoBodySize are rejected before parsing.
//
// Secrets: key shares are copied into SecretBytes and the parser's copies are wiped; encoded
// bodies that carry key shares are returned in Bytes that the caller wipes once sent (the
// JSON printer's internal base64 buffers cannot be wiped). Thread-safe.
#ifndef PINVAULT_API_CODEC_PROTO_CODEC_H_
#define PINVAULT_API_CODEC_PROTO_CODEC_H_

#include <cstddef>
#include <optional>
#include <string_view>

#include "vault/bytes.h"
#include "vault/protocol/messages.h"
#include "vault/status.h"

namespace pinvault::api {

// kMaxProtoBodySize bounds a native-API body in either format (the largest request, a
// Register2 in JSON, is about 1 KiB).
inline constexpr size_t kMaxProtoBodySize = 8192;

// ProtoFormat: the two encodings of the native API.
enum class ProtoFormat { kBinary, kJson };

// ProtoFormatForContentType maps a Content-Type header value (parameters such as
// "; charset=utf-8" ignored, case-insensitive) to a format, or nullopt if unsupported.
// Accepts application/x-protobuf, application/protobuf, application/vnd.google.protobuf
// and application/json.
std::optional<ProtoFormat> ProtoFormatForContentType(std::string_view content_type);

// ProtoContentType is the Content-Type to answer with for `format`.
std::string_view ProtoContentType(ProtoFormat format);

// DecodeRequestProto parses a native request body (see the file comment for the checks).
// On an error, `log_reason` (when given) receives a description that is safe to log: the
// status message, except for JSON the parser rejected, whose reason may quote the body (key
// shares included) and goes to the client only.
StatusOr<protocol::SecretsRequest> DecodeRequestProto(ByteView body, ProtoFormat format,
                                                      std::string* log_reason = nullptr);

// EncodeResponseProto encodes a response. INVALID_ARGUMENT if a key share has the wrong size
// or a status is out of range.
StatusOr<Bytes> EncodeResponseProto(const protocol::SecretsResponse& response, ProtoFormat format);

// EncodeRequestProto encodes a request (for clients and tests). INVALID_ARGUMENT if a key
// share has the wrong size.
StatusOr<Bytes> EncodeRequestProto(const protocol::SecretsRequest& request, ProtoFormat format);

// DecodeResponseProto parses a response (for clients and tests), as strictly as requests;
// a STATUS_UNSPECIFIED or unknown status is INVALID_ARGUMENT.
StatusOr<protocol::SecretsResponse> DecodeResponseProto(ByteView body, ProtoFormat format);

}  // namespace pinvault::api

#endif  // PINVAULT_API_CODEC_PROTO_CODEC_H_
