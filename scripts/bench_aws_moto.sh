#!/usr/bin/env bash
# The AWS scan benchmark: a 1,000-resource estate on moto (one account, five types, two
# regions), scanned by the release binary. Prints wall time and API calls (docs/BENCHMARKS.md).
# TAGGUARD_BINS="A B" scans with each binary in turn instead (A B A B ...), to compare builds
# on the same seeded server.
set -euo pipefail
cd "$(dirname "$0")/.."
PER_TYPE=${PER_TYPE:-100}
[ -x .venv/bin/moto_server ] || { python3 -m venv .venv && .venv/bin/pip install --quiet 'moto[server]>=5.1,<5.3'; }
if [ -z "${TAGGUARD_BINS:-}" ]; then
  cargo build --release --locked --quiet
  TAGGUARD_BINS=target/release/tagguard
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
.venv/bin/moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT
until python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; do sleep 0.2; done
.venv/bin/python scripts/seed_moto_estate.py "http://127.0.0.1:$port" "$PER_TYPE" us-east-1 eu-west-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
out=$(mktemp)
# Each binary records into a scratch data directory of its own, never the user's.
data=$(mktemp -d)
trap 'kill $moto_pid 2>/dev/null || true; rm -rf "$data" "$out"' EXIT
for run in 1 2 3; do
  for bin in $TAGGUARD_BINS; do
    start=$(date +%s.%N)
    "$bin" scan --source aws --regions us-east-1,eu-west-1 --data-dir "$data/$(basename "$bin")" \
      --resource-types ec2:instance,rds:db,s3:bucket,lambda:function,ecs:service \
      --format json --no-progress > "$out" || true
    end=$(date +%s.%N)
    python3 - "$start" "$end" "$bin" "$out" <<'PY'
import json, sys
r = json.load(open(sys.argv[4]))
calls = r["api_calls"]
total = sum(calls.values())
per_bucket = calls.get("s3:GetBucketLocation", 0)
issues = (r.get("tally") or r)["issues"]
print(f"{sys.argv[3]}: wall {float(sys.argv[2]) - float(sys.argv[1]):.2f} s, {r['total_resources']} resources, "
      f"{total} API calls ({per_bucket} GetBucketLocation, {total - per_bucket} others), issues {len(issues)}")
print("  " + ", ".join(f"{k} {v}" for k, v in sorted(calls.items())))
PY
  done
done

