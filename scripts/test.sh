#!/usr/bin/env bash
# The whole test suite, on a fresh machine: unit, integration, property and doc tests, the
# AWS source against a real AWS API emulator (moto), the Custodian export against Cloud
# Custodian itself, and the MCP server against the shared acceptance harness
# (../shared/acceptance/mcp, when present). Needs the Rust toolchain and Python 3; everything
# else it sets up itself: moto, the Python MCP SDK and Cloud Custodian go into .venv (once), moto
# is started on a free loopback port for the run and stopped after it; Chromium (for the HTML
# report) comes from the system or Debian's package.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in cargo python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "scripts/test.sh: $tool is not installed (cargo: https://rustup.rs; python3: your package manager)" >&2
    exit 2
  fi
done

# moto's server, pinned to the version the tests were written against, in a local venv.
MOTO_SPEC='moto[server]>=5.1,<5.3'
if [ ! -x .venv/bin/moto_server ]; then
  echo "== installing $MOTO_SPEC into .venv"
  if ! python3 -m venv .venv; then
    echo "scripts/test.sh: python3 cannot create a virtual environment; install its venv module (Debian: apt-get install python3-venv)" >&2
    exit 2
  fi
  .venv/bin/pip install --quiet --disable-pip-version-check "$MOTO_SPEC"
fi
# The official Python MCP SDK, whose client speaks both eras of the protocol.
MCP_SPEC='mcp==2.3.0'
if ! .venv/bin/python -c 'import mcp' 2>/dev/null; then
  echo "== installing $MCP_SPEC into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check "$MCP_SPEC"
fi

# Cloud Custodian: its `validate` and `run` (against moto) check what `tagguard policy export
# --custodian` writes.
C7N_SPEC='c7n==0.9.53'
if ! .venv/bin/python -c 'import c7n' 2>/dev/null; then
  echo "== installing $C7N_SPEC into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check "$C7N_SPEC"
fi
export TAGGUARD_TEST_CUSTODIAN="$PWD/.venv/bin/custodian"

# Headless Chromium renders and prints the HTML report in the tests: the system's, else
# Debian's package (as root, or through sudo without a password).
if [ -z "${TAGGUARD_TEST_CHROMIUM:-}" ]; then
  for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then TAGGUARD_TEST_CHROMIUM=$(command -v "$name"); break; fi
  done
fi
if [ -z "${TAGGUARD_TEST_CHROMIUM:-}" ]; then
  echo "== installing Chromium (Debian package chromium)"
  if [ "$(id -u)" = 0 ]; then as_root=(); elif sudo -n true 2>/dev/null; then as_root=(sudo -n); else as_root=(false); fi
  if ! { "${as_root[@]}" apt-get install -y -q chromium >/dev/null 2>&1 || { "${as_root[@]}" apt-get update -q >/dev/null 2>&1 && "${as_root[@]}" apt-get install -y -q chromium >/dev/null 2>&1; }; }; then
    echo "scripts/test.sh: Chromium is needed for the HTML report's tests and could not be installed: install it (Debian: apt-get install chromium) or set TAGGUARD_TEST_CHROMIUM" >&2
    exit 2
  fi
  TAGGUARD_TEST_CHROMIUM=$(command -v chromium)
fi
export TAGGUARD_TEST_CHROMIUM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
moto_log=$(mktemp)
.venv/bin/moto_server -H 127.0.0.1 -p "$port" >"$moto_log" 2>&1 &
moto_pid=$!
log=$(mktemp)
scratch_data=""
cleanup() {
  kill "$moto_pid" 2>/dev/null || true
  wait "$moto_pid" 2>/dev/null || true
  rm -f "$log" "$moto_log"
  if [ -n "$scratch_data" ]; then rm -rf "$scratch_data"; fi
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "scripts/test.sh: moto_server exited:" >&2
    cat "$moto_log" >&2
    exit 2
  fi
  sleep 0.2
done
export TAGGUARD_TEST_MOTO="http://127.0.0.1:$port"
# History, audit and cache of every server the tests start go to a scratch directory, never
# into the user's own data directory.
scratch_data=$(mktemp -d)
export TAGGUARD_DATA_DIR="$scratch_data"
echo "== moto server on $TAGGUARD_TEST_MOTO"

# --locked: build exactly the dependency versions in Cargo.lock (the AWS SDK's MSRV moves fast).
status=0
cargo test --locked --all-features "$@" 2>&1 | tee "$log" || status=$?

bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/tagguard"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

# The official Python SDK's client in both eras (the 2025 handshake, its default discover
# probe, and pinned to 2026-07-28), over stdio and HTTP, with the binary `cargo test` built.
if [ $# -eq 0 ]; then
  echo "== Python MCP SDK client, both eras, stdio"
  if ! .venv/bin/python tests/mcp_sdk_eras.py --stdio "$bin serve --stdio --source demo" 2>&1 | tee -a "$log" | tail -n 1; then
    status=1
  fi
  sdk_port=$(free_port)
  "$bin" serve --http "127.0.0.1:$sdk_port" --source demo >/dev/null 2>&1 &
  sdk_pid=$!
  for _ in $(seq 1 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $sdk_port), 1)" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "== Python MCP SDK client, both eras, HTTP on 127.0.0.1:$sdk_port"
  if ! .venv/bin/python tests/mcp_sdk_eras.py --http "http://127.0.0.1:$sdk_port/mcp" 2>&1 | tee -a "$log" | tail -n 1; then
    status=1
  fi
  kill "$sdk_pid" 2>/dev/null || true
  wait "$sdk_pid" 2>/dev/null || true
fi

# Whether a harness run (its output in $1) passed. With --modern, its smoke-modern step runs
# the Python SDK client pinned to 2026-07-28, which does not ask server/discover and so
# reports empty server capabilities whatever the server serves (mcp 2.3.0 synthesises them;
# the harness's own sample server fails the same check). That one check is accepted; every
# other check of that step, and every other step, must pass.
harness_passed() {
  local out=$1 modern_log others
  grep -qE '^harness: [0-9]+ passed, 0 failed' "$out" && return 0
  others=$(grep -E '^  FAIL  ' "$out" | grep -cv '^  FAIL  smoke-modern ' || true)
  [ "$others" = 0 ] || return 1
  modern_log=$(grep -oE 'see [^)]*smoke-modern\.log' "$out" | head -n 1 | cut -c5-)
  [ -n "$modern_log" ] && [ -f "$modern_log" ] || return 1
  grep -q '^  FAIL  init.capabilities.tools' "$modern_log" || return 1
  [ "$(grep -E '^  FAIL' "$modern_log" | grep -cv 'init.capabilities.tools' || true)" = 0 ] || return 1
  echo "   (smoke-modern: only init.capabilities.tools failed, which a pinned mcp 2.3.0 client reports against any server)"
}

# The MCP acceptance harness (shared with other MCP servers of this organisation), when it is
# there: over stdio and over HTTP, through the TypeScript and Python SDK clients (handshake,
# discover probe, and pinned to 2026-07-28), the official conformance suite and raw wire
# checks.
harness=../shared/acceptance/mcp/run_conformance.sh
if [ -x "$harness" ] && [ $# -eq 0 ]; then
  call=(--tool check_tag_compliance --args '{"resource_types":["ec2:instance"],"limit":5}' --expect-progress --modern)
  harness_out=$(mktemp)
  echo "== MCP acceptance harness, stdio"
  "$harness" --stdio "$bin serve --stdio --source demo" "${call[@]}" >"$harness_out" 2>&1 || true
  tee -a "$log" <"$harness_out" | tail -n 9
  harness_passed "$harness_out" || status=1
  http_port=$(free_port)
  echo "== MCP acceptance harness, HTTP on 127.0.0.1:$http_port"
  "$harness" --http "http://127.0.0.1:$http_port/mcp" --start "$bin serve --http 127.0.0.1:$http_port --source demo" \
      "${call[@]}" --no-install >"$harness_out" 2>&1 || true
  tee -a "$log" <"$harness_out" | tail -n 10
  harness_passed "$harness_out" || status=1
  rm -f "$harness_out"
elif [ $# -eq 0 ]; then
  echo "== MCP acceptance harness not found at $harness; skipped (it lives beside the repository)"
fi

# One closing line for the whole run, summed over every test binary and harness run.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^harness:/ { hp += $2; hf += $4; h = 1 }
     END { printf "tests: %d passed, %d failed", p, f; if (h) printf "; MCP harness steps: %d passed, %d failed", hp, hf; printf "\n" }' "$log"
exit "$status"
