#!/usr/bin/env bash
# The request log at 1,000,000 rows on PostgreSQL: p50 / p95 / p99 of the Routing page
# (/admin/routing, rendered on the server) and of its server function (/fn/admin/routing-log), for
# the newest page and for a deep page with filters. The target is a p95 under 100 ms.
#
#   scripts/bench-request-log.sh [--rows N] [--no-build] [--bin PATH] [--keep]
#
#   --rows N     rows to generate (default 1000000)
#   --no-build   use the existing target/release/goblin instead of building it first
#   --bin PATH   measure another build of the server (e.g. target/debug/goblin to try the script
#                quickly; such figures are not the benchmark's); implies --no-build
#   --keep       keep the database (its name is printed) instead of dropping it
#
# Needs: a PostgreSQL server (GOBLIN_BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/postgres,
# a role that may create databases), psql, node, wrk (apt-get install wrk; without it a slower curl
# loop measures instead), and Debian's chromium for the sign-in (scripts/setup.sh --browser).
#
# What it does:
#   1. builds the release server (cargo leptos build --release --precompress) unless --no-build;
#   2. creates a fresh database and starts the release server on it (migrations run at start-up);
#   3. registers the first admin through the setup link with a virtual passkey (as scripts/bench.sh
#      does) and keeps the session cookie;
#   4. adds three providers through the admin functions, then fills routing_requests with one
#      INSERT ... SELECT generate_series (one row every 100 ms going back from now: ~28 hours;
#      providers round-robin with 1% none; four models; 2% errors, 0.1% cancelled; 80% of rows by
#      the admin, the rest by API tokens) and ANALYZEs the table;
#   5. measures each case with wrk (one connection, 2 s warm-up, then 10 s), printing p50 / p95 / p99;
#   6. prints the plan PostgreSQL chose for the deep filtered page (EXPLAIN ANALYZE);
#   7. stops the server it started and drops the database.
#
# Run on an otherwise idle machine; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

rows=1000000
build=1
bin=$PWD/target/release/goblin
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --bin) bin=$(realpath "$2"); build=0; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "usage: scripts/bench-request-log.sh [--rows N] [--no-build] [--bin PATH] [--keep]" >&2; exit 2 ;;
  esac
done
admin_url=${GOBLIN_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
for tool in psql node curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is needed" >&2; exit 1; }
done
have_wrk=0
command -v wrk >/dev/null && have_wrk=1

scripts/setup.sh --browser
if [ "$build" = 1 ]; then
  echo "building the release server (cargo leptos build --release --precompress)"
  cargo leptos build --release --precompress >/dev/null 2>&1
fi
[ -x "$bin" ] || { echo "bench: $bin is missing; run without --no-build" >&2; exit 1; }

db=goblin_bench_log_$(date +%s)_$$
db_url=$(node -e 'const u=new URL(process.argv[1]); u.pathname="/"+process.argv[2]; console.log(u.toString())' "$admin_url" "$db")
work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ "$keep" = 0 ]; then
    psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  else
    echo "kept the database: $db_url"
  fi
  rm -rf "$work"
}
trap cleanup EXIT
psql "$admin_url" -qc "CREATE DATABASE $db"
q() { psql "$db_url" -Atqc "$1"; }

port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
base="http://127.0.0.1:$port"
origin="http://localhost:$port"
env -u REDIS_URL DATABASE_URL="$db_url" GOBLIN_LISTEN="127.0.0.1:$port" GOBLIN_PUBLIC_URL="$origin" \
  GOBLIN_DATA_DIR="$work/data" GOBLIN_LOG=warn "$bin" serve >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  curl -sf "$base/health" >/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
  sleep 0.1
done
link=$(grep -o 'http://[^ ]*/setup?token=[A-Za-z0-9_-]*' "$work/log" | head -n 1)
[ -n "$link" ] || { echo "bench: no setup link in the server's output" >&2; cat "$work/log" >&2; exit 1; }
cookie=$(cd end2end && node support/session-cookie.mjs "$link")
admin_id=$(q "SELECT id FROM users WHERE username = 'bench'")

fn() { # fn <name> <form fields...>: POSTs a server function as the dashboard does; prints the body
  local name=$1; shift
  local args=()
  for f in "$@"; do args+=(--data-urlencode "$f"); done
  curl -sf -H "Origin: $origin" -H "Cookie: $cookie" "${args[@]}" "$base/fn/admin/$name"
}
providers=()
for name in bench-a bench-b bench-c; do
  id=$(fn provider-create "name=$name" kind=openai base_url=http://127.0.0.1:9/v1 priority= key= | tr -d '"')
  providers+=("$id")
done
pa=${providers[0]} pb=${providers[1]} pc=${providers[2]}

echo "filling routing_requests with $rows rows (INSERT ... SELECT generate_series)"
t0=$(date +%s%N)
q "INSERT INTO routing_requests (id, created_at, user_id, token_id, requested_model, route_alias, attempts,
     provider_id, model, stream, status, http_status, ttft_ms, latency_ms, tokens_in, tokens_out, cost_micros, error)
   SELECT gen_random_uuid(),
          now() - g * interval '100 milliseconds',
          CASE WHEN g % 5 = 0 THEN NULL ELSE '$admin_id'::uuid END,
          CASE WHEN g % 5 = 0 THEN gen_random_uuid() END,
          'chat-' || (g % 4),
          'chat-' || (g % 4),
          json_build_array(json_build_object('provider_id', p.id, 'model', m.model, 'status', 200,
                                             'latency_ms', 100 + g % 900, 'error', NULL)),
          CASE WHEN g % 100 = 7 THEN NULL ELSE p.id END,
          m.model,
          g % 2 = 0,
          CASE WHEN g % 1000 = 3 THEN 'cancelled' WHEN g % 50 = 0 THEN 'error' ELSE 'ok' END,
          CASE WHEN g % 1000 = 3 THEN 499 WHEN g % 50 = 0 THEN 502 ELSE 200 END,
          40 + g % 300,
          100 + g % 900,
          50 + g % 2000,
          20 + g % 800,
          g % 5000,
          CASE WHEN g % 50 = 0 AND g % 1000 <> 3 THEN 'every provider for this model failed: ' || repeat('x', 120) END
   FROM generate_series(1, $rows) AS g
   CROSS JOIN LATERAL (SELECT (ARRAY['$pa', '$pb', '$pc']::uuid[])[1 + g % 3] AS id) p
   CROSS JOIN LATERAL (SELECT (ARRAY['gpt-4o-mini', 'gpt-4o', 'claude-3-5-haiku-20241022', 'gemini-2.0-flash'])[1 + (g / 3) % 4] AS model) m"
q "ANALYZE routing_requests"
t1=$(date +%s%N)
echo "  $(q "SELECT count(*) FROM routing_requests") rows in $(( (t1 - t0) / 1000000 )) ms; table and indexes: $(q "SELECT pg_size_pretty(pg_total_relation_size('routing_requests'))")"

# A cursor (as the server encodes it: base64url of version 1, seconds and nanoseconds big-endian,
# and the id) for the row at OFFSET n of a filter, newest first: a page that deep into the log.
cursor_at() { # cursor_at <where> <offset>
  local row
  row=$(q "SELECT floor(extract(epoch FROM created_at))::bigint, (extract(microseconds FROM created_at)::bigint % 1000000) * 1000, id
           FROM routing_requests WHERE $1 ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1")
  node -e '
    const [secs, nanos, id] = process.argv[1].split("|");
    const b = Buffer.alloc(29);
    b[0] = 1;
    b.writeBigInt64BE(BigInt(secs), 1);
    b.writeUInt32BE(Number(nanos), 9);
    Buffer.from(id.replace(/-/g, ""), "hex").copy(b, 13);
    console.log(b.toString("base64url"));
  ' "$row"
}
deep_ok=$(cursor_at "provider_id = '$pa' AND status = 'ok'" $((rows / 5)))
deep_err=$(cursor_at "status = 'error'" $((rows / 100)))
# One hour starting halfway back through the log.
middle="(SELECT date_trunc('minute', created_at) FROM routing_requests ORDER BY created_at DESC, id DESC OFFSET $((rows / 2)) LIMIT 1)"
from=$(q "SELECT to_char($middle AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI')")
to=$(q "SELECT to_char(($middle + interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI')")

# Checks that a case answers 200 with rows before timing it.
check() { # check <what> <curl args...>
  local what=$1; shift
  local status
  status=$(curl -s -o "$work/body" -w '%{http_code}' -H "Cookie: $cookie" "$@")
  if [ "$status" != 200 ] || ! grep -q 'log-row\|"rows":\[{' "$work/body"; then
    echo "bench: $what answered $status without rows:" >&2; head -c 600 "$work/body" >&2; echo >&2; exit 1
  fi
}

cat >"$work/report.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, %d requests, %d non-2xx\n",
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.errors.status))
end
LUA

measure_curl() { # measure_curl <curl args...>: 200 sequential requests
  : >"$work/times"
  for _ in $(seq 1 20); do curl -s -o /dev/null -H "Cookie: $cookie" "$@"; done
  for _ in $(seq 1 200); do curl -s -o /dev/null -w '%{time_total}\n' -H "Cookie: $cookie" "$@" >>"$work/times"; done
  sort -n "$work/times" | awk '{ t[NR] = $1 * 1000 } END {
    printf "p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, %d requests (curl, one at a time)\n",
      t[int(NR * 0.50)], t[int(NR * 0.95)], t[int(NR * 0.99)], NR }'
}

page() { # page <label> <path and query>
  local label=$1 url="$base$2"
  check "$label" "$url"
  printf '%-58s ' "$label"
  if [ "$have_wrk" = 1 ]; then
    wrk -t1 -c1 -d2s -H "Cookie: $cookie" "$url" >/dev/null
    wrk -t1 -c1 -d10s -s "$work/report.lua" -H "Cookie: $cookie" "$url" | tail -n 1
  else
    measure_curl "$url"
  fi
}

server_fn() { # server_fn <label> <form fields...>
  local label=$1; shift
  local body="" f
  for f in "$@"; do
    body+="${body:+&}${f%%=*}=$(node -e 'console.log(encodeURIComponent(process.argv[1]))' "${f#*=}")"
  done
  local url="$base/fn/admin/routing-log"
  check "$label" -X POST -H "Origin: $origin" -H "Content-Type: application/x-www-form-urlencoded" --data "$body" "$url"
  printf '%-58s ' "$label"
  if [ "$have_wrk" = 1 ]; then
    cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Origin"] = "$origin"
wrk.headers["Cookie"] = "$cookie"
wrk.body = "$body"
LUA
    cat "$work/report.lua" >>"$work/post.lua"
    wrk -t1 -c1 -d2s -s "$work/post.lua" "$url" >/dev/null
    wrk -t1 -c1 -d10s -s "$work/post.lua" "$url" | tail -n 1
  else
    measure_curl -X POST -H "Origin: $origin" -H "Content-Type: application/x-www-form-urlencoded" --data "$body" "$url"
  fi
}

echo
echo "request log, $rows rows on PostgreSQL $(q 'SHOW server_version'), ${bin#"$PWD"/}, one connection:"
page "page /admin/routing (newest 50)" "/admin/routing"
server_fn "fn routing-log (newest 50)" limit=50
page "page, provider + status=ok, $((rows / 5)) rows deep" "/admin/routing?provider=$pa&status=ok&after=$deep_ok"
server_fn "fn, provider + status=ok, $((rows / 5)) rows deep" "provider=$pa" status=ok "after=$deep_ok" limit=50
server_fn "fn, status=error, $((rows / 100)) rows deep" status=error "after=$deep_err" limit=50
server_fn "fn, one hour + caller + model (newest 50)" "from=$from" "to=$to" "user=$admin_id" model=gpt-4o limit=50
server_fn "fn, model=gpt-4o, 500 rows a page" model=gpt-4o limit=500

echo
echo "plan of the deep filtered page:"
secs_id=$(q "SELECT created_at, id FROM routing_requests WHERE provider_id = '$pa' AND status = 'ok'
             ORDER BY created_at DESC, id DESC OFFSET $((rows / 5)) LIMIT 1")
psql "$db_url" -Atqc "EXPLAIN (ANALYZE, BUFFERS)
  SELECT * FROM routing_requests
  WHERE provider_id = '$pa' AND status = 'ok'
    AND (created_at, id) < ('${secs_id%%|*}'::timestamptz, '${secs_id##*|}'::uuid)
  ORDER BY created_at DESC, id DESC LIMIT 51" | sed 's/^/  /'
