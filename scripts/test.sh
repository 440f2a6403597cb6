#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests on SQLite and PostgreSQL (with Redis), then the
# browser tests in end2end/ against a freshly built server.
#
#   GOBLIN_TEST_PG_URL    PostgreSQL admin URL; tests create and drop their own databases
#                         (default postgres://postgres@127.0.0.1:5432/postgres)
#   GOBLIN_TEST_REDIS_URL Redis for the Redis tests (default redis://127.0.0.1:6379)
#   CI=true               an unreachable PostgreSQL or Redis fails the run instead of skipping
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1;32m==>\033[0m %s\n' "$*"; }
fail() { printf '\033[1;31mtest: %s\033[0m\n' "$*" >&2; exit 1; }
in_ci() { [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; }

scripts/setup.sh --browser

export GOBLIN_TEST_PG_URL="${GOBLIN_TEST_PG_URL-postgres://postgres@127.0.0.1:5432/postgres}"
export GOBLIN_TEST_REDIS_URL="${GOBLIN_TEST_REDIS_URL-redis://127.0.0.1:6379}"

# host:port of a URL, for a reachability probe that needs no client tools.
host_port() {
  local rest=${1#*://}; rest=${rest##*@}; rest=${rest%%/*}; rest=${rest%%\?*}
  case "$rest" in *:*) echo "${rest%:*} ${rest##*:}" ;; *) echo "$rest $2" ;; esac
}
reachable() { read -r h p < <(host_port "$1" "$2"); timeout 3 bash -c "exec 3<>/dev/tcp/$h/$p" 2>/dev/null; }

for service in PG REDIS; do
  var="GOBLIN_TEST_${service}_URL"
  url="${!var}"
  port=5432; [ "$service" = REDIS ] && port=6379
  if [ -z "$url" ] || ! reachable "$url" "$port"; then
    if in_ci; then fail "$service is not reachable at '${url:-unset}' and CI=true: refusing to skip its tests"; fi
    echo "warning: $service not reachable at '${url:-unset}'; its test variants are skipped" >&2
    export "$var="
  fi
done

if [ -n "$GOBLIN_TEST_PG_URL" ] && command -v psql >/dev/null 2>&1; then
  # Databases left by an interrupted run.
  psql "$GOBLIN_TEST_PG_URL" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'goblin\_test\_%'" 2>/dev/null |
    while read -r db; do psql "$GOBLIN_TEST_PG_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done
fi

say "building the site and server (cargo leptos build)"
cargo leptos build

say "Rust tests"
cargo test -p goblin-core -p goblin-migration -p goblin-app -p goblin-server -p goblin-mock-upstream
cargo build -p goblin-mock-upstream --bin goblin-mock-upstream

say "browser tests"
work=$(mktemp -d)
server_pid=""
mock_pid=""
cleanup() {
  for pid in $server_pid $mock_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
# The provider tests talk to the mock upstream, which accepts one key.
mock_key="sk-e2e-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
target/debug/goblin-mock-upstream --listen 127.0.0.1:0 --keys "$mock_key" >"$work/mock.log" 2>&1 &
mock_pid=$!
for _ in $(seq 1 50); do
  mock_url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/mock.log" | head -n 1 || true)
  [ -n "$mock_url" ] && break
  sleep 0.1
done
[ -n "$mock_url" ] || { cat "$work/mock.log" >&2; fail "the mock upstream did not start"; }
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
# The environment seeds two providers on the mock, for the API client tests.
env -u DATABASE_URL -u REDIS_URL -u GOBLIN_CONFIG GOBLIN_LISTEN="127.0.0.1:$port" GOBLIN_PUBLIC_URL="http://localhost:$port" \
  OPENAI_API_KEY="$mock_key" OPENAI_BASE_URL="$mock_url/openai/v1" \
  ELEVENLABS_API_KEY="$mock_key" ELEVENLABS_BASE_URL="$mock_url/elevenlabs/v1" \
  GOBLIN_DATA_DIR="$work/data" GOBLIN_LOG="warn" target/debug/goblin serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  if node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "http://127.0.0.1:$port/health"; then break; fi
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; fail "the server did not start"; }
  sleep 0.2
done
setup_url=$(grep -o 'http://[^ ]*/setup?token=[A-Za-z0-9_-]*' "$work/server.log" | head -n 1)
[ -n "$setup_url" ] || { cat "$work/server.log" >&2; fail "the server printed no setup link"; }
# first-run makes the admin whose session the others reuse, so it runs on its own first (node's test
# runner orders the files it is given by name); the rest then run one at a time. chat.test.mjs adds
# providers of its own on the mock and deletes them when it ends; tasks.test.mjs invites an operator and
# runs goblins from config/goblins.yaml, which the server reads from the repository. search.test.mjs
# creates a collection of its own and deletes it when it ends.
(cd end2end && export GOBLIN_BASE_URL="http://localhost:$port" GOBLIN_SETUP_URL="$setup_url" \
  GOBLIN_E2E_STATE="$work/admin-state.json" GOBLIN_MOCK_URL="$mock_url" GOBLIN_MOCK_KEY="$mock_key" &&
  node --test tests/first-run.test.mjs &&
  node --test --test-concurrency=1 tests/providers.test.mjs tests/routing.test.mjs tests/chat.test.mjs tests/tasks.test.mjs tests/monitoring.test.mjs tests/search.test.mjs) || {
  echo "--- server log ---" >&2; tail -n 50 "$work/server.log" >&2; exit 1; }

say "API client tests (the official openai package)"
cli() { env -u DATABASE_URL -u GOBLIN_CONFIG GOBLIN_DATA_DIR="$work/data" GOBLIN_LOG=warn target/debug/goblin "$@"; }
cli users create --service api-client --role operator >/dev/null
api_token=$(cli tokens create --user api-client --scopes chat --ttl 1d 2>/dev/null)
[ -n "$api_token" ] || fail "could not create an API token for the client tests"
GOBLIN_API_URL="http://127.0.0.1:$port/v1" GOBLIN_API_TOKEN="$api_token" \
  end2end/.venv/bin/python -m unittest -v end2end/python/test_openai_client.py || {
  echo "--- server log ---" >&2; tail -n 50 "$work/server.log" >&2; exit 1; }
