#!/usr/bin/env bash
# Builds Goblin Assistant and serves it at http://localhost:3000 on a SQLite database in ./data.
# Pass --release for an optimised build. Any GOBLIN_* / DATABASE_URL settings in the environment apply.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/setup.sh
profile=()
# --precompress writes .br/.gz copies of the site before the server compiles and embeds them.
if [ "${1:-}" = "--release" ]; then profile=(--release --precompress); fi
cargo leptos build "${profile[@]}"
bin=target/debug/goblin
[ "${#profile[@]}" = 0 ] || bin=target/release/goblin
exec "$bin" serve
