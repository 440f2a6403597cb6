#!/usr/bin/env bash
# Reproducible measurements for BENCHMARKS.md.
#
#   scripts/bench.sh build     cold debug build in a fresh target dir, then an incremental rebuild
#   scripts/bench.sh release   release build; wasm size raw and gzip, binary size, idle RSS, and the
#                              server-side render time of the home page (signed in: the first admin is
#                              registered with a virtual passkey in Debian's chromium) and of the
#                              sign-in page (wrk, one connection)
#   scripts/bench.sh mock      requests a second the mock upstream (release build) answers on one
#                              core: a model list, a chat completion, a streamed chat completion
#                              (wrk, 16 connections, 10 s each)
#
# Run on an otherwise idle machine; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh --browser

seconds() { local s=$1 e=$2; echo "$(( (e - s) / 1000000000 )).$(( ((e - s) / 10000000) % 100 ))"; }

bench_build() {
  local dir; dir=$(mktemp -d /tmp/goblin-cold.XXXXXX)
  echo "cold debug build (CARGO_TARGET_DIR=$dir)"
  local t0; t0=$(date +%s%N)
  CARGO_TARGET_DIR="$dir" cargo leptos build >/dev/null 2>&1
  local t1; t1=$(date +%s%N)
  echo "  cold:        $(seconds "$t0" "$t1") s"
  # An edit to a page: the app, the server and the wasm bundle all rebuild.
  touch app/src/pages/home.rs
  t0=$(date +%s%N)
  CARGO_TARGET_DIR="$dir" cargo leptos build >/dev/null 2>&1
  t1=$(date +%s%N)
  echo "  incremental: $(seconds "$t0" "$t1") s (after touching app/src/pages/home.rs)"
  rm -rf "$dir"
}

bench_release() {
  command -v wrk >/dev/null || { echo "bench: wrk is needed (apt-get install wrk)" >&2; exit 1; }
  cargo leptos build --release --precompress >/dev/null 2>&1
  local wasm=target/site/pkg/goblin.wasm bin=target/release/goblin
  echo "release wasm:   $(stat -c %s "$wasm") bytes raw, $(gzip -9 -c "$wasm" | wc -c) bytes gzip -9"
  echo "release binary: $(stat -c %s "$bin") bytes ($bin, site embedded)"

  work=$(mktemp -d)
  local port; port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  # Run a copy from an empty directory: the binary must carry its own site.
  cp "$bin" "$work/goblin"
  (cd "$work" && env -u DATABASE_URL -u REDIS_URL GOBLIN_LISTEN="127.0.0.1:$port" \
    GOBLIN_PUBLIC_URL="http://localhost:$port" GOBLIN_LOG=warn ./goblin serve >"$work/log" 2>&1) &
  pid=$!
  trap 'pkill -f "^./goblin serve" 2>/dev/null; kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
  for _ in $(seq 1 100); do
    node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "http://127.0.0.1:$port/health" && break
    sleep 0.1
  done
  sleep 3
  node -e '
    const base = process.argv[1];
    Promise.all(["/pkg/goblin.wasm", "/pkg/goblin.js", "/pkg/goblin.css"].map(async (p) => {
      const r = await fetch(base + p, { headers: { "accept-encoding": "br" } });
      if (!r.ok) throw new Error(`${p}: ${r.status}`);
      return `${p} ${r.status} ${r.headers.get("content-encoding") ?? "identity"}`;
    })).then((l) => {
      if (!l.every((x) => x.endsWith(" br"))) throw new Error("precompressed copies missing: " + l.join(", "));
      console.log("self-contained:  a copy in an empty directory serves " + l.join(", "));
    }).then(() => {},
             (e) => { console.error("not self-contained: " + e.message); process.exit(1); });
  ' "http://127.0.0.1:$port"
  local spid; spid=$(pgrep -f "^./goblin serve" -n || echo "$pid")
  echo "idle RSS:       $(awk '/VmRSS/ {print $2, $3}' "/proc/$spid/status") (SQLite, after start-up and one health check)"
  local link cookie
  link=$(grep -o 'http://[^ ]*/setup?token=[A-Za-z0-9_-]*' "$work/log" | head -n 1)
  cookie=$(cd end2end && node support/session-cookie.mjs "$link")
  for page in / /signin; do
    local hdr=()
    [ "$page" = / ] && hdr=(-H "Cookie: $cookie")
    wrk -t1 -c1 -d3s "${hdr[@]}" "http://127.0.0.1:$port$page" >/dev/null
    echo "SSR of $page ($([ "$page" = / ] && echo "home, signed in" || echo "sign-in page")), wrk -t1 -c1 -d10s --latency:"
    wrk -t1 -c1 -d10s --latency "${hdr[@]}" "http://127.0.0.1:$port$page" | awk '/Latency Distribution/,/99%/; /Non-2xx/' | sed 's/^/  /'
  done
  echo "RSS after load: $(awk '/VmRSS/ {print $2, $3}' "/proc/$spid/status")"
}

bench_mock() {
  command -v wrk >/dev/null || { echo "bench: wrk is needed (apt-get install wrk)" >&2; exit 1; }
  cargo build --release -p goblin-mock-upstream --bin goblin-mock-upstream >/dev/null 2>&1
  work=$(mktemp -d)
  # One core for the mock, the other for wrk.
  taskset -c 0 target/release/goblin-mock-upstream --listen 127.0.0.1:0 --keys bench-key >"$work/log" 2>&1 &
  pid=$!
  trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
  local url=""
  for _ in $(seq 1 50); do
    url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/log" | head -n 1 || true)
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || { echo "bench: the mock upstream did not start" >&2; exit 1; }
  for stream in false true; do
    cat >"$work/chat-$stream.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-key"
wrk.body = '{"model":"gpt-4o-mini","stream":$stream,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hello to the goblins in the cave"}]}'
LUA
  done
  run() {
    local what=$1; shift
    taskset -c 1 wrk -t1 -c16 -d3s "$@" >/dev/null
    echo "$what: $(taskset -c 1 wrk -t1 -c16 -d10s --latency "$@" | awk '/Requests\/sec/ {rps=$2} /50%/ {p50=$2} /99%/ {p99=$2} END {print rps " req/s, p50 " p50 ", p99 " p99}')"
  }
  run "GET /openai/v1/models" -H "Authorization: Bearer bench-key" "$url/openai/v1/models"
  run "POST /openai/v1/chat/completions" -s "$work/chat-false.lua" "$url/openai/v1/chat/completions"
  run "POST /openai/v1/chat/completions, stream (9 chunks + usage)" -s "$work/chat-true.lua" "$url/openai/v1/chat/completions"
}

case "${1:-}" in
  build) bench_build ;;
  release) bench_release ;;
  mock) bench_mock ;;
  *) echo "usage: scripts/bench.sh build|release|mock" >&2; exit 2 ;;
esac
