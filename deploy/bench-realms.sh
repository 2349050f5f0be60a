#!/usr/bin/env bash
# bench-realms.sh — starts N pinvaultd realms on this machine (each with its own SoftHSM2
# token, realm keys, SQLite store and port) and runs pinvault-bench against them; used to
# reproduce the figures in deploy/BENCHMARKS.md.
#
# Usage: bash deploy/bench-realms.sh [options] [-- pinvault-bench options...]
#   --build DIR        build directory holding api/pinvaultd, api/pinvault-admin and
#                      api/pinvault-bench (default: $PINVAULT_BUILD_DIR or ./build-bench)
#   --realms N         number of realms (default 1); pinvault-bench's recover threshold is a
#                      majority unless --threshold is passed to it
#   --state DIR        where tokens, stores, keys and logs live (default: a temporary
#                      directory, removed at the end). A directory given here is kept and
#                      reused, so that a population registered once serves later runs.
#   --base-port P      first realm's port (default 28480; realm i listens on P+i-1);
#                      "auto": each realm binds a free port (used by the test suite)
#   --threads T        HTTP threads of each pinvaultd (default 2)
#   --workers W        core worker threads of each pinvaultd (default 0: the number of CPUs)
#   --cache-size N     the realms' record cache and record-id cache capacity (default: the
#                      pinvaultd defaults, 4096 and 16384); e.g. 256 with --users far above it
#                      makes every recovery start on a user the realm has not seen lately
#   --bucket-cache-size N  the realms' Merkle bucket cache capacity (default: pinvaultd's, 4096)
#   --tokens-dir DIR   put the realms' SoftHSM2 token directories under DIR instead of the
#                      state directory (e.g. a tmpfs, to see the realm without the token's
#                      file writes; not a durable setup -- for diagnosis only)
#   --request-log      keep pinvaultd's per-request log on (default off, written to a file)
#   --profile S        record a CPU profile of realm 1 for S seconds with perf (cpu-clock
#                      sampling, DWARF call graphs), starting 5 s into the run; the top entries are
#                      printed at the end and the data kept in the state directory
#   --build-first      build the three binaries (Release) before starting
# Everything after `--` goes to pinvault-bench, e.g.
#   bash deploy/bench-realms.sh --realms 3 -- --flow recover,register --open-fractions 0.5,0.8
#
# The realms run as separate processes over real HTTP on 127.0.0.1 with plain HTTP (loopback
# only). Rate limits are disabled (the benchmark's users would otherwise hit the per-user
# bucket); the tenant "bench" gets an HS256 key in STATE/tenant-keys.json (mode 0600).
# Exit status: pinvault-bench's (0 ok, 1 errors during the run, 2 setup failure), or 3 if a
# realm failed to start.
set -euo pipefail
# The whole script is one compound command, read before it runs: editing the file while a long
# run is in progress cannot change what that run does.
{
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

build=${PINVAULT_BUILD_DIR:-$root/build-bench}
realms=1
state=
base_port=28480
threads=2
workers=0
cache_size=
bucket_cache_size=
request_log=false
profile=0
build_first=false
tokens_dir=
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --realms) realms=$2; shift 2 ;;
    --state) state=$2; shift 2 ;;
    --base-port) base_port=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --cache-size) cache_size=$2; shift 2 ;;
    --bucket-cache-size) bucket_cache_size=$2; shift 2 ;;
    --request-log) request_log=true; shift ;;
    --tokens-dir) tokens_dir=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --build-first) build_first=true; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^set -e/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-realms: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
bench_args=("$@")
[[ $realms =~ ^[1-9]$ ]] || { echo "bench-realms: --realms takes 1..9" >&2; exit 2; }

# port_busy PORT: true if something accepts connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# "auto": each pinvaultd binds port 0 and the port it got is read from its "listening" event,
# so no other process on the machine can take a port between choosing and binding it.
auto_port=false
if [[ $base_port == auto ]]; then
  auto_port=true
  base_port=0
fi
[[ $base_port =~ ^[0-9]+$ ]] || { echo "bench-realms: --base-port takes a number or auto" >&2; exit 2; }
[[ -z $cache_size || $cache_size =~ ^[0-9]+$ ]] || { echo "bench-realms: --cache-size takes a number" >&2; exit 2; }
[[ -z $bucket_cache_size || $bucket_cache_size =~ ^[0-9]+$ ]] ||
  { echo "bench-realms: --bucket-cache-size takes a number" >&2; exit 2; }
cache_json=
if [[ -n $cache_size ]]; then
  cache_json=", \"record_cache_size\": $cache_size, \"record_id_cache_size\": $cache_size"
fi
if [[ -n $bucket_cache_size ]]; then
  cache_json="$cache_json, \"bucket_cache_size\": $bucket_cache_size"
fi

if $build_first; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target pinvaultd pinvault-admin pinvault-bench -j2
fi
build=$(cd "$build" && pwd)
for binary in pinvaultd pinvault-admin pinvault-bench; do
  [[ -x $build/api/$binary ]] || {
    echo "bench-realms: $build/api/$binary is missing (build it, or pass --build-first)" >&2
    exit 2
  }
done

cleanup_state=false
if [[ -z $state ]]; then
  state=$(mktemp -d "${TMPDIR:-/tmp}/pinvault-bench-realms-XXXXXX")
  cleanup_state=true
fi
mkdir -p "$state"
chmod 700 "$state"
state=$(cd "$state" && pwd)

pids=()
perf_pid=
stop_realms() {
  [[ -n $perf_pid ]] && kill -INT "$perf_pid" 2>/dev/null && wait "$perf_pid" 2>/dev/null || true
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
  if $cleanup_state; then rm -rf "$state"; fi
}
trap stop_realms EXIT

# The tenant whose users the benchmark registers.
keys=$state/tenant-keys.json
if [[ ! -f $keys ]] || ! grep -q '"bench"' "$keys"; then
  "$build/api/pinvault-admin" tenant add bench --algorithm HS256 --keys-file "$keys" >/dev/null
fi

realm_args=()
ports=()
pid_args=()
for ((i = 1; i <= realms; i++)); do
  dir=$state/realm-$i
  mkdir -p "$dir"
  label=pinvault-bench-$i
  token_dir=$dir/softhsm
  if [[ -n $tokens_dir ]]; then
    mkdir -p "$tokens_dir"
    token_dir=$(cd "$tokens_dir" && pwd)/realm-$i
  fi
  bash "$root/deploy/softhsm-token.sh" "$token_dir" "$label" >/dev/null 2>&1
  conf=$token_dir/softhsm2.conf
  uri="pkcs11:token=$label?pin-source=file:$token_dir/user-pin"
  SOFTHSM2_CONF=$conf "$build/api/pinvault-admin" hsm init --token "$uri" >/dev/null
  if [[ ! -s $dir/realm-id ]]; then
    od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$dir/realm-id.tmp"
    mv "$dir/realm-id.tmp" "$dir/realm-id"
  fi
  realm_id=$(cat "$dir/realm-id")
  if $auto_port; then
    port=0
  else
    port=$((base_port + i - 1))
    if port_busy "$port"; then
      echo "bench-realms: port $port is already in use (choose another --base-port)" >&2
      exit 3
    fi
  fi
  cat >"$dir/pinvaultd.json" <<JSON
{
  "realm_id": "$realm_id",
  "listen": "127.0.0.1:$port",
  "threads": $threads,
  "data_dir": "$dir/data",
  "hsm": {"token_uri": "$uri"},
  "tenant_keys_file": "$keys",
  "rate_limits": {"tenant": {"rate_per_second": 0, "burst": 1},
                  "user": {"rate_per_second": 0, "burst": 1}},
  "realm": {"worker_threads": $workers$cache_json},
  "request_log": $request_log
}
JSON
  log_lines=$(wc -l <"$dir/pinvaultd.log" 2>/dev/null || echo 0)
  SOFTHSM2_CONF=$conf "$build/api/pinvaultd" --config "$dir/pinvaultd.json" \
    2>>"$dir/pinvaultd.log" &
  pids+=($!)
  if $auto_port; then
    port=""
    for _ in $(seq 1 600); do
      port=$(tail -n +$((log_lines + 1)) "$dir/pinvaultd.log" 2>/dev/null |
        grep -o '"event":"listening"[^}]*' | grep -o '"port":[0-9]*' | head -1 | cut -d: -f2 || true)
      [[ -n $port ]] && break
      kill -0 "${pids[i - 1]}" 2>/dev/null || break
      sleep 0.2
    done
    if [[ -z $port ]]; then
      echo "bench-realms: realm $i did not start listening; its log:" >&2
      tail -20 "$dir/pinvaultd.log" >&2 || true
      exit 3
    fi
  fi
  ports+=("$port")
  realm_args+=(--realm "http://127.0.0.1:$port/#$realm_id")
  pid_args+=(--realm-pid "$!")
done

# Wait for every realm to answer /readyz (the anchor check can take a while at 1M records).
started=$(date +%s.%N)
for ((i = 1; i <= realms; i++)); do
  port=${ports[i - 1]}
  ready=false
  for _ in $(seq 1 600); do
    if ! kill -0 "${pids[i - 1]}" 2>/dev/null; then break; fi
    if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
      # Ours, not a stranger's on the same port: the process must still be alive.
      sleep 0.2
      kill -0 "${pids[i - 1]}" 2>/dev/null && ready=true
      break
    fi
    sleep 0.2
  done
  if ! $ready; then
    echo "bench-realms: realm $i did not become ready; its log:" >&2
    tail -20 "$state/realm-$i/pinvaultd.log" >&2 || true
    exit 3
  fi
done
ready_after=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "bench-realms: $realms realm(s) ready ${ready_after} s after start (pids ${pids[*]}), state in $state" >&2

if [[ $profile -gt 0 ]]; then
  command -v perf >/dev/null || { echo "bench-realms: perf not found" >&2; exit 2; }
  (sleep 5; exec perf record -e cpu-clock -F 499 --call-graph dwarf,16384 -p "${pids[0]}" \
      -o "$state/perf.data" \
      -- sleep "$profile") >"$state/perf.log" 2>&1 &
  perf_pid=$!
fi

status=0
"$build/api/pinvault-bench" "${realm_args[@]}" "${pid_args[@]}" --tenant bench \
  --tenant-keys "$keys" "${bench_args[@]}" || status=$?

if [[ -n $perf_pid ]]; then
  wait "$perf_pid" 2>/dev/null || true
  perf_pid=
  if [[ -s $state/perf.data ]]; then
    echo
    echo "== profile of realm 1 (pid ${pids[0]}): self time, top entries"
    perf report -i "$state/perf.data" --stdio --no-children --sort dso,symbol -g none \
      2>/dev/null | grep -E '^ +[0-9]' | sed -E 's/ +- +- *$//; s/ +$//' | cut -c1-150 |
      head -40 || true
    echo
    echo "== by shared object (self time)"
    perf report -i "$state/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
      grep -E '^ +[0-9]' | sed -E 's/ +$//' | head -15 || true
    echo
    echo "== inclusive time of pinvault, SQLite and PKCS#11 entry points (children included)"
    perf report -i "$state/perf.data" --stdio --children --sort symbol -g none 2>/dev/null |
      grep -E '^ +[0-9]' | grep -E 'pinvault::|sqlite3_(step|exec)|\] C_[A-Z]' |
      sed -E 's/ +- +- *$//; s/ +$//' | cut -c1-150 | head -45 || true
    if $cleanup_state; then
      cp "$state/perf.data" "${TMPDIR:-/tmp}/pinvault-bench-perf.data"
      echo "(perf data copied to ${TMPDIR:-/tmp}/pinvault-bench-perf.data)"
    fi
  fi
fi
exit $status
}
