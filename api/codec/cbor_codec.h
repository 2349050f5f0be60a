// CBOR codec for the Juicebox endpoint (`POST /req`): SecretsRequest / SecretsResponse in
// serde's external-tagging representation, byte-compatible with juicebox-sdk 0.3.7
// (PROTOCOL-NOTES.md g.2 and g.3).
//
// Encoding is canonical: unit variants as text strings, newtype and struct variants as
// one-entry maps, structs as maps keyed by field name in declaration order, definite
// lengths, shortest-form heads, byte fields as byte strings.
//
// Decoding of requests is strict and bounded: bodies over kMaxJuiceboxBodySize are
// rejected before parsing; indefinite lengths, tags, floats, nesting other than the
// schema's, trailing bytes, unknown/duplicate/missing keys and byte strings of the wrong
// length are all INVALID_ARGUMENT with a message naming the offending field. Decoding never
// reads outside the input and never allocates more than the schema needs.
//
// Secrets: encoded bodies that carry key shares (Register2 requests, Recover3 Ok responses)
// hold them in the returned Bytes; the caller wipes that buffer (SecureWipe) once sent.
// Decoded key shares go straight into SecretBytes. All functions are thread-safe.
#ifndef PINVAULT_API_CODEC_CBOR_CODEC_H_
#define PINVAULT_API_CODEC_CBOR_CODEC_H_

#include <cstddef>

#include "vault/bytes.h"
#include "vault/protocol/messages.h"
#include "vault/status.h"

namespace pinvault::api {

// kMaxJuiceboxBodySize is the SDK's own request size limit (BODY_SIZE_LIMIT).
inline constexpr size_t kMaxJuiceboxBodySize = 2048;

// EncodeRequestCbor encodes `request` as the SDK would send it. INVALID_ARGUMENT if a
// SecretBytes field of a Register2 request does not have its fixed size.
StatusOr<Bytes> EncodeRequestCbor(const protocol::SecretsRequest& request);

// DecodeRequestCbor parses a request body strictly (see the file comment). Never crashes on
// malformed input; every rejection is INVALID_ARGUMENT with a human-readable reason.
StatusOr<protocol::SecretsRequest> DecodeRequestCbor(ByteView body);

// EncodeResponseCbor encodes `response` in the canonical form the SDK expects.
// INVALID_ARGUMENT if a SecretBytes field of a Recover3 Ok response has the wrong size or a
// status value is out of range.
StatusOr<Bytes> EncodeResponseCbor(const protocol::SecretsResponse& response);

// DecodeResponseCbor parses a response in the canonical form (for clients and tests). Same
// strictness as DecodeRequestCbor; a response body is bounded by kMaxJuiceboxBodySize too.
StatusOr<protocol::SecretsResponse> DecodeResponseCbor(ByteView body);

}  // namespace pinvault::api

#endif  // PINVAULT_API_CODEC_CBOR_CODEC_H_
