#!/usr/bin/env bash
# run_interop.sh — the unmodified juicebox-sdk (npm 0.3.7, Node 18 or later) against real pinvaultd
# processes, each on its own SoftHSM2 token and SQLite store, plus the pinvault CLI:
#   1. juicebox-sdk registers and recovers against one pinvaultd;
#   2. wrong PINs count guesses_remaining down; at zero the secret is gone for good;
#   3. three realms, register threshold 3, recover threshold 2: recovery with one realm stopped;
#   4. cross-client: SDK-registered secret recovered by `pinvault recover`, and the reverse;
#   5. delete from either client removes the secret from every realm.
# (Byte compatibility of the realm's CBOR answers with the recorded transcripts is checked by
# tests/api/codec/vectors_cbor_test.cc and the transcript replays in tests/api/server/server_test.cc.)
#
# Usage: tests/interop/run_interop.sh BUILD_DIR
# Needs node and npm (deploy/install-deps.sh); installs juicebox-sdk from the lock file.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: run_interop.sh BUILD_DIR}" && pwd)
pinvaultd=$build/api/pinvaultd
admin=$build/api/pinvault-admin
pinvault=$build/api/pinvault
for b in "$pinvaultd" "$admin" "$pinvault"; do
  [[ -x $b ]] || { echo "interop: missing binary $b (build the project first)" >&2; exit 1; }
done

if [[ ! -f $here/node_modules/juicebox-sdk/package.json ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

work=$(mktemp -d /tmp/pinvault-interop.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

failures=0
pass() { echo "PASS  $*"; }
fail() { echo "FAIL  $*"; failures=$((failures + 1)); }

# The tenant "acme" signs tokens with a fixed Ed25519 key (PKCS#8 DER, seed 0x42 x 32), as the
# SDK's AuthTokenGenerator takes it. The realms validate with the same keys file.
key_hex=302e020100300506032b657004220420$(printf '42%.0s' $(seq 32))
keys=$work/tenant-keys.json
cat >"$keys" <<JSON
{"tenants": {"acme": {"1": {"algorithm": "EdDSA", "encoding": "hex", "data": "$key_hex"}}}}
JSON
chmod 600 "$keys"
export PINVAULT_INTEROP_KEY=$key_hex PINVAULT_INTEROP_TENANT=acme PINVAULT_INTEROP_VERSION=1

# One SoftHSM2 configuration holding a token per realm.
bash "$root/deploy/softhsm-token.sh" "$work/softhsm" realm1 >/dev/null
bash "$root/deploy/softhsm-token.sh" "$work/softhsm" realm2 >/dev/null
bash "$root/deploy/softhsm-token.sh" "$work/softhsm" realm3 >/dev/null
export SOFTHSM2_CONF=$work/softhsm/softhsm2.conf
realm_ids=(0102030405060708090a0b0c0d0e0f10 c0ffee00000000000000000000000003 1a000000000000000000000000000001)
ports=()

# start_realm N: starts pinvaultd for realm N (1-based) on a free port; sets ports[N-1].
start_realm() {
  local n=$1 uri="pkcs11:token=realm$1?pin-source=file:$work/softhsm/user-pin"
  if [[ ! -f $work/realm$n.initialised ]]; then
    "$admin" hsm init --token "$uri" >/dev/null
    touch "$work/realm$n.initialised"
  fi
  local log=$work/realm$n.log
  : >"$log"
  PINVAULT_REALM_ID=${realm_ids[$((n - 1))]} PINVAULT_LISTEN=127.0.0.1:0 \
    PINVAULT_DATA_DIR=$work/data$n PINVAULT_TOKEN_URI=$uri PINVAULT_TENANT_KEYS_FILE=$keys \
    "$pinvaultd" 2>"$log" &
  local pid=$!
  pids[$n]=$pid
  local port=""
  for _ in $(seq 100); do
    port=$(grep -o '"event":"listening"[^}]*' "$log" | grep -o '"port":[0-9]*' | head -1 | cut -d: -f2 || true)
    [[ -n $port ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z $port ]]; then
    echo "interop: realm $n did not start:" >&2
    cat "$log" >&2
    exit 1
  fi
  ports[$((n - 1))]=$port
}

stop_realm() {
  kill "${pids[$1]}" 2>/dev/null || true
  wait "${pids[$1]}" 2>/dev/null || true
}

# config FILE N REG REC: a configuration with realms 1..N.
config() {
  local file=$1 n=$2 reg=$3 rec=$4 realms="" i
  for ((i = 0; i < n; i++)); do
    realms+="${realms:+,}{\"address\":\"http://127.0.0.1:${ports[$i]}/\",\"id\":\"${realm_ids[$i]}\"}"
  done
  echo "{\"realms\":[${realms}],\"register_threshold\":$reg,\"recover_threshold\":$rec,\"pin_hashing_mode\":\"FastInsecure\"}" >"$file"
}

# config_one FILE I: a configuration with realm I (0-based) alone.
config_one() {
  echo "{\"realms\":[{\"address\":\"http://127.0.0.1:${ports[$2]}/\",\"id\":\"${realm_ids[$2]}\"}],\"register_threshold\":1,\"recover_threshold\":1,\"pin_hashing_mode\":\"FastInsecure\"}" >"$1"
}

# hex_to_file HEX FILE / file_to_hex FILE
hex_to_file() { printf '%b' "$(sed 's/../\\x&/g' <<<"$1")" >"$2"; }
file_to_hex() { od -An -v -tx1 "$1" | tr -d ' \n'; }

sdk() { node "$here/sdk_client.mjs" "$@"; }

# expect NAME ACTUAL EXPECTED
expect() {
  if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1: got $2, want $3"; fi
}

start_realm 1
config "$work/one.json" 1 1 1
secret_hex=$(printf 'interop-secret-%s' "$RANDOM" | od -An -v -tx1 | tr -d ' \n')

# 1. Register and recover with the SDK.
u1=a1b2c3d4e5f60718293a4b5c6d7e8f90
expect "1 sdk register (1 realm)" "$(sdk register --config "$work/one.json" --user $u1 --pin 1234 --secret-hex "$secret_hex" --info i1 --guesses 5)" '{"ok":true}'
expect "1 sdk recover (1 realm)" "$(sdk recover --config "$work/one.json" --user $u1 --pin 1234 --info i1)" "{\"ok\":true,\"secret_hex\":\"$secret_hex\"}"

# 2. Wrong PINs count down; at zero the secret is gone even for the right PIN.
for left in 4 3 2 1 0; do
  expect "2 wrong PIN -> $left left" "$(sdk recover --config "$work/one.json" --user $u1 --pin 9999 --info i1)" "{\"ok\":false,\"error\":\"InvalidPin\",\"guesses_remaining\":$left}"
done
got=$(sdk recover --config "$work/one.json" --user $u1 --pin 1234 --info i1)
expect "2 right PIN after exhaustion fails" "$got" '{"ok":false,"error":"InvalidPin","guesses_remaining":0}'
got=$(sdk recover --config "$work/one.json" --user $u1 --pin 1234 --info i1)
expect "2 the secret stays gone" "$got" '{"ok":false,"error":"InvalidPin","guesses_remaining":0}'

# 3. Three realms, 3/2: recover with one realm stopped.
start_realm 2
start_realm 3
config "$work/three.json" 3 3 2
u3=0badc0de0badc0de0badc0de0badc0de
expect "3 sdk register (3 realms, 3/2)" "$(sdk register --config "$work/three.json" --user $u3 --pin 2468 --secret-hex "$secret_hex" --guesses 3)" '{"ok":true}'
stop_realm 2
expect "3 sdk recover with realm 2 stopped" "$(sdk recover --config "$work/three.json" --user $u3 --pin 2468)" "{\"ok\":true,\"secret_hex\":\"$secret_hex\"}"
start_realm 2
config "$work/three.json" 3 3 2

# 4. Cross-client, both directions, on three realms.
printf '2468\n' >"$work/pin"
u4=feedfacefeedfacefeedfacefeedface
expect "4 sdk register for the CLI" "$(sdk register --config "$work/three.json" --user $u4 --pin 2468 --secret-hex "$secret_hex" --guesses 3)" '{"ok":true}'
rm -f "$work/recovered"
"$pinvault" recover --config "$work/three.json" --pin-file "$work/pin" --out "$work/recovered" \
  --mint-tenant acme --mint-user $u4 --keys-file "$keys" >/dev/null || true
got=$([[ -f $work/recovered ]] && file_to_hex "$work/recovered")
expect "4 pinvault recover of an SDK registration" "$got" "$secret_hex"

u5=cafebabecafebabecafebabecafebabe
hex_to_file "$secret_hex" "$work/secret"
if "$pinvault" register --config "$work/three.json" --pin-file "$work/pin" --secret-file "$work/secret" --guesses 3 --mint-tenant acme --mint-user $u5 --keys-file "$keys" >/dev/null; then
  pass "4 pinvault register"
else
  fail "4 pinvault register"
fi
expect "4 sdk recover of a pinvault registration" "$(sdk recover --config "$work/three.json" --user $u5 --pin 2468)" "{\"ok\":true,\"secret_hex\":\"$secret_hex\"}"

# 5. Delete from either client removes it from all realms.
expect "5 sdk delete" "$(sdk delete --config "$work/three.json" --user $u5)" '{"ok":true}'
for i in 0 1 2; do
  config_one "$work/single$i.json" "$i"
  expect "5 after sdk delete, realm $((i + 1)) has nothing" "$(sdk recover --config "$work/single$i.json" --user $u5 --pin 2468)" '{"ok":false,"error":"NotRegistered","guesses_remaining":null}'
done
if "$pinvault" delete --config "$work/three.json" --mint-tenant acme --mint-user $u4 --keys-file "$keys" >/dev/null; then
  pass "5 pinvault delete"
else
  fail "5 pinvault delete"
fi
for i in 0 1 2; do
  expect "5 after pinvault delete, realm $((i + 1)) has nothing" "$(sdk recover --config "$work/single$i.json" --user $u4 --pin 2468)" '{"ok":false,"error":"NotRegistered","guesses_remaining":null}'
done

if ((failures > 0)); then
  echo "interop: $failures check(s) failed; realm logs follow" >&2
  for n in 1 2 3; do tail -n 20 "$work/realm$n.log" >&2 || true; done
  exit 1
fi
echo "interop: all checks passed"
