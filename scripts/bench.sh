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
#   scripts/bench.sh profile   instructions the server spends a chat completion through the gateway
#                              (callgrind; N=300 requests after 50 warm-up ones; independent of load)
#   scripts/bench.sh gateway   the gateway (release build, SQLite, request logging on) beside the mock
#                              upstream it routes to: RPS and p50/p99 of a chat completion at 1, 16
#                              and 64 connections, direct to the mock and through the gateway; time to
#                              first token of streams both ways; server RSS idle and with 1,000 open
#                              streams
#   scripts/bench.sh search    search collections at 100,000 chunks (release build): ingestion rate and
#                              full-text search p50/p95/p99 on SQLite and on PostgreSQL
#                              (core/examples/search_bench.rs; GOBLIN_BENCH_PG_URL, default
#                              postgres://postgres@127.0.0.1:5432/postgres; CHUNKS=N to change the size)
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

bench_gateway() {
  command -v wrk >/dev/null || { echo "bench: wrk is needed (apt-get install wrk)" >&2; exit 1; }
  cargo build --release -p goblin-server --bin goblin -p goblin-mock-upstream --bin goblin-mock-upstream >/dev/null 2>&1
  work=$(mktemp -d)
  local key="sk-bench-0123456789abcdef0123456789"
  target/release/goblin-mock-upstream --listen 127.0.0.1:0 --keys "$key" >"$work/mock.log" 2>&1 &
  mock_pid=$!
  local mock=""
  for _ in $(seq 1 50); do
    mock=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/mock.log" | head -n 1 || true)
    [ -n "$mock" ] && break
    sleep 0.1
  done
  local port; port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  env -u DATABASE_URL -u REDIS_URL GOBLIN_LISTEN="127.0.0.1:$port" GOBLIN_PUBLIC_URL="http://localhost:$port" \
    GOBLIN_DATA_DIR="$work/data" GOBLIN_LOG=warn OPENAI_API_KEY="$key" OPENAI_BASE_URL="$mock/openai/v1" \
    target/release/goblin serve >"$work/server.log" 2>&1 &
  pid=$!
  trap 'kill "$pid" "$mock_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
  for _ in $(seq 1 100); do
    node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "http://127.0.0.1:$port/health" && break
    sleep 0.1
  done
  local cli="env -u DATABASE_URL GOBLIN_DATA_DIR=$work/data GOBLIN_LOG=warn target/release/goblin"
  $cli users create --service bench --role operator >/dev/null
  local token; token=$($cli tokens create --user bench --scopes chat --ttl 1d 2>/dev/null)
  sleep 1
  echo "idle RSS: $(awk '/VmRSS/ {print $2, $3}' "/proc/$pid/status")"
  # Streams first (on a server that has not yet seen the wrk load): time to first token both ways,
  # then 1,000 streams held open (the upstream stalls after its first words) while the RSS is read.
  node - "$mock" "$key" "http://127.0.0.1:$port" "$token" "$pid" <<'JS'
const [mock, key, gw, token, pid] = process.argv.slice(2);
const fs = require("fs");
const body = (model) => JSON.stringify({ model, stream: true, messages: [{ role: "user", content: "Say hello to the goblins in the cave" }] });
async function ttft(url, auth, model) {
  const t0 = performance.now();
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${auth}` }, body: body(model) });
  const reader = r.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error("stream ended without content");
    if (new TextDecoder().decode(value).includes('"content":"')) break;
  }
  const t = performance.now() - t0;
  while (!(await reader.read()).done) {}
  return t;
}
const pct = (a, p) => a.slice().sort((x, y) => x - y)[Math.floor((a.length - 1) * p)];
(async () => {
  for (const [who, url, auth, model] of [["direct", `${mock}/openai/v1/chat/completions`, key, "gpt-4o-mini"], ["gateway", `${gw}/v1/chat/completions`, token, "openai/gpt-4o-mini"]]) {
    const ts = [];
    for (let i = 0; i < 300; i++) ts.push(await ttft(url, auth, model));
    console.log(`stream TTFT ${who}: p50 ${pct(ts, 0.5).toFixed(2)} ms, p99 ${pct(ts, 0.99).toFixed(2)} ms (300 sequential streams)`);
  }
  const open = [];
  for (let i = 0; i < 1000; i++) {
    open.push(fetch(`${gw}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: body("openai/gpt-4o-mini@stall") })
      .then(async (r) => { const reader = r.body.getReader(); await reader.read(); return reader; }));
  }
  const readers = await Promise.all(open);
  await new Promise((r) => setTimeout(r, 1000));
  const rss = fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+ kB)/)[1];
  console.log(`RSS with 1000 open streams: ${rss}`);
  await Promise.all(readers.map((r) => r.cancel()));
})().catch((e) => { console.error(e); process.exit(1); });
JS
  body='{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the goblins in the cave"}]}'
  for who in direct gateway; do
    local url auth
    if [ "$who" = direct ]; then url="$mock/openai/v1/chat/completions"; auth="$key"; else url="http://127.0.0.1:$port/v1/chat/completions"; auth="$token"; fi
    cat >"$work/$who.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $auth"
wrk.body = '$body'
LUA
    for c in 1 16 64; do
      wrk -t1 -c"$c" -d2s -s "$work/$who.lua" "$url" >/dev/null
      # CPU time (user + system) the gateway and the mock spent, per request: it depends less than
      # the rate on what else the machine is doing.
      local g0 m0 g1 m1 out n
      g0=$(awk '{print $14 + $15}' "/proc/$pid/stat"); m0=$(awk '{print $14 + $15}' "/proc/$mock_pid/stat")
      out=$(wrk -t"$(( c > 1 ? 2 : 1 ))" -c"$c" -d10s --latency -s "$work/$who.lua" "$url")
      g1=$(awk '{print $14 + $15}' "/proc/$pid/stat"); m1=$(awk '{print $14 + $15}' "/proc/$mock_pid/stat")
      n=$(echo "$out" | awk '/requests in/ {print $1}')
      echo "$who c=$c: $(echo "$out" | awk '/Requests\/sec/ {rps=$2} /50%/ {p50=$2} /99%/ {p99=$2} /Non-2xx/ {bad=" non-2xx " $NF} END {print rps " req/s, p50 " p50 ", p99 " p99 bad}'), CPU a request: gateway $(( (g1 - g0) * 10000000 / n / 1000 )) µs, mock $(( (m1 - m0) * 10000000 / n / 1000 )) µs"
    done
  done
  echo "RSS after load: $(awk '/VmRSS/ {print $2, $3}' "/proc/$pid/status")"
}

# Instructions the server spends on N chat completions through the gateway, counted by callgrind:
# unlike timings, the count does not depend on what else the machine is doing.
bench_profile() {
  command -v valgrind >/dev/null || { echo "bench: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
  cargo build --release -p goblin-server --bin goblin -p goblin-mock-upstream --bin goblin-mock-upstream >/dev/null 2>&1
  local n=${N:-300} key="sk-bench-0123456789abcdef0123456789"
  work=$(mktemp -d)
  target/release/goblin-mock-upstream --listen 127.0.0.1:0 --keys "$key" >"$work/mock.log" 2>&1 &
  mock_pid=$!
  local mock=""
  for _ in $(seq 1 50); do
    mock=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/mock.log" | head -n 1 || true)
    [ -n "$mock" ] && break
    sleep 0.1
  done
  local port; port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  env -u DATABASE_URL -u REDIS_URL GOBLIN_LISTEN="127.0.0.1:$port" GOBLIN_PUBLIC_URL="http://localhost:$port" \
    GOBLIN_DATA_DIR="$work/data" GOBLIN_LOG=warn GOBLIN_WORKERS=false OPENAI_API_KEY="$key" \
    OPENAI_BASE_URL="$mock/openai/v1" \
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" target/release/goblin serve >"$work/server.log" 2>&1 &
  pid=$!
  trap 'kill "$pid" "$mock_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 1
  done
  local cli="env -u DATABASE_URL GOBLIN_DATA_DIR=$work/data GOBLIN_LOG=warn target/release/goblin"
  $cli users create --service bench --role operator >/dev/null
  local token; token=$($cli tokens create --user bench --scopes chat --ttl 1d 2>/dev/null)
  local body='{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the goblins in the cave"}]}'
  ask() { curl -sf -o /dev/null -H "authorization: Bearer $token" -H 'content-type: application/json' -d "$body" "http://127.0.0.1:$port/v1/chat/completions"; }
  # Warm up (connections, prepared statements), then count only the measured requests.
  for _ in $(seq 1 50); do ask; done
  sleep 3
  callgrind_control -z "$pid" >/dev/null
  for _ in $(seq 1 "$n"); do ask; done
  sleep 2
  callgrind_control -d "$pid" >/dev/null
  sleep 2
  local total; total=$(callgrind_annotate "$work/cg.out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "server instructions for $n chat completions: $total ($(( total / n )) a request)"
  callgrind_annotate --inclusive=yes "$work/cg.out.1" 2>/dev/null |
    grep -E 'v1::caller::|sqlite3_step \[|sqlite3Reprepare \[|records::Writer::run' | cut -c1-120
}

bench_search() {
  cargo build --release -p goblin-core --example search_bench
  for backend in sqlite postgres; do
    target/release/examples/search_bench --backend "$backend" --chunks "${CHUNKS:-100000}"
  done
}

case "${1:-}" in
  build) bench_build ;;
  release) bench_release ;;
  mock) bench_mock ;;
  gateway) bench_gateway ;;
  profile) bench_profile ;;
  search) bench_search ;;
  *) echo "usage: scripts/bench.sh build|release|mock|gateway|profile|search" >&2; exit 2 ;;
esac
