#!/usr/bin/env bash
# Installs what building and testing Goblin Assistant needs, skipping whatever is already there:
# the wasm32 target, cargo-leptos, wasm-bindgen-cli at the version in Cargo.lock, the npm packages
# (Tailwind, binaryen's wasm-opt, playwright-core), and with --browser what the end-to-end tests
# need: Debian's chromium and a Python virtualenv with the official openai package (from PyPI).
# Nothing is downloaded from outside crates.io, npm and Debian.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.10
with_browser=0
for arg in "$@"; do
  case "$arg" in
    --browser) with_browser=1 ;;
    *) echo "setup: unknown argument $arg" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1;32m==>\033[0m %s\n' "$*"; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "setup: '$1' is required; install $2 first" >&2; exit 1; }; }

need cargo "Rust (https://rustup.rs)"
need rustup "rustup"
need npm "Node.js and npm"
export PATH="$HOME/.cargo/bin:$PATH"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(cargo leptos --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LEPTOS_VERSION" ]; then
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION (once; about 20 minutes on two cores)"
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install cargo-leptos --locked --version "$CARGO_LEPTOS_VERSION"
fi

wbg_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
if [ -z "$wbg_version" ]; then
  echo "setup: cannot find wasm-bindgen in Cargo.lock" >&2
  exit 1
fi
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wbg_version" ]; then
  say "installing wasm-bindgen-cli $wbg_version (once; a few minutes)"
  cargo install wasm-bindgen-cli --version "$wbg_version" --force
fi

# npm ci is exact but slow; only run it when the lock file changed since the last install.
npm_install() {
  local dir=$1
  local stamp="$dir/node_modules/.goblin-lock-stamp"
  if [ ! -f "$stamp" ] || ! cmp -s "$dir/package-lock.json" "$stamp"; then
    say "installing npm packages in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$stamp"
  fi
}
npm_install .

if [ "$with_browser" = 1 ]; then
  npm_install end2end
  venv=end2end/.venv
  if [ ! -x "$venv/bin/python" ] || ! cmp -s end2end/python/requirements.txt "$venv/.goblin-requirements-stamp"; then
    say "installing the Python test client (openai from PyPI) in $venv"
    command -v python3 >/dev/null || { echo "setup: python3 is required for the API client tests" >&2; exit 1; }
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r end2end/python/requirements.txt
    cp end2end/python/requirements.txt "$venv/.goblin-requirements-stamp"
  fi
  if ! command -v chromium >/dev/null 2>&1; then
    say "installing Debian's chromium for the browser tests"
    sudo_cmd=""
    [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get install -y -qq chromium >/dev/null
  fi
fi
