#!/usr/bin/env bash
# The AWS scan benchmark: a 1,000-resource estate on moto (one account, five types, two
# regions), scanned by the release binary. Prints wall time and API calls (docs/BENCHMARKS.md).
# TAGGUARD_BINS="A B" scans with each binary in turn instead (A B A B ...), to compare builds
# on the same seeded server. Each run ends with the baseline, scripts/sequential_boto3_scan.py
# (the same estate read by plain sequential boto3), so the order is A B ... boto3, A B ... boto3.
# Each scan also shows moto's own CPU time during it (user+system of the moto_server process,
# its threads and any children), and the end gives per-command medians and, per run, the ratio
# of each binary's wall time to the baseline's. FAULTS=1 adds, per binary and run, the same scan
# through the fault-injecting proxy of the tests (tests/fault_proxy.py): once with 30 % of the
# calls throttled and 5 % failing with 500, once with eu-west-1 hanging (default timeouts).
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
# One line per scan for the summary: run, command, wall s, moto CPU s, resources, and the
# baseline's own wall time (without Python's start and imports; '-' for tagguard).
results=$(mktemp)
trap 'kill $moto_pid 2>/dev/null || true; rm -rf "$data" "$out" "$results"' EXIT
clk_tck=$(getconf CLK_TCK)
# CPU clock ticks of process $1 so far: utime+stime (fields 14, 15 of /proc/PID/stat: every
# thread's, live or ended) + cutime+cstime (16, 17: children it has reaped), plus the same of its
# live children. moto_server is one threaded process that starts no children here; the sum
# stays right if a version forks.
cpu_ticks() {
  local stat fields child total
  read -r stat < "/proc/$1/stat" || { echo 0; return; }
  read -ra fields <<< "${stat##*) }"
  total=$((fields[11] + fields[12] + fields[13] + fields[14]))
  for child in $(ps -o pid= --ppid "$1" || true); do
    total=$((total + $(cpu_ticks "$child")))
  done
  echo "$total"
}
# Seconds of moto CPU between two tick counts.
moto_cpu() { python3 -c "print(f'{($2 - $1) / $clk_tck:.2f}')"; }
proxy=""
if [ "${FAULTS:-0}" = 1 ]; then
  proxy_log=$(mktemp)
  python3 tests/fault_proxy.py --upstream "$AWS_ENDPOINT_URL" --port 0 --seed 7 > "$proxy_log" &
  proxy_pid=$!
  trap 'kill $moto_pid $proxy_pid 2>/dev/null || true; rm -rf "$data" "$out" "$results" "$proxy_log"' EXIT
  until grep -q '^listening on ' "$proxy_log"; do sleep 0.1; done
  proxy=$(sed -n 's/^listening on //p' "$proxy_log")
fi
# Sets the proxy's fault rules (JSON).
faults() { curl -fsS -X POST -H 'Content-Type: application/json' -d "$1" "$proxy/__faults/config" >/dev/null; }
# One tagguard scan: binary, label, endpoint, run.
scan_with() {
  local bin=$1 label=$2 endpoint=$3 run=$4 ticks start end cpu
  ticks=$(cpu_ticks "$moto_pid")
  start=$(date +%s.%N)
  AWS_ENDPOINT_URL="$endpoint" "$bin" scan --source aws --regions us-east-1,eu-west-1 --data-dir "$data/$(basename "$bin")" \
    --resource-types ec2:instance,rds:db,s3:bucket,lambda:function,ecs:service \
    --format json --no-progress > "$out" || true
  end=$(date +%s.%N)
  cpu=$(moto_cpu "$ticks" "$(cpu_ticks "$moto_pid")")
  python3 - "$start" "$end" "$label" "$out" "$cpu" "$run" "$results" <<'PY'
import json, sys
r = json.load(open(sys.argv[4]))
calls = r["api_calls"]
total = sum(calls.values())
per_bucket = calls.get("s3:GetBucketLocation", 0)
issues = (r.get("tally") or r)["issues"]
wall = float(sys.argv[2]) - float(sys.argv[1])
throttled = sum(r.get("throttled_calls", {}).values())
retried = sum(r.get("retried_calls", {}).values())
print(f"{sys.argv[3]}: wall {wall:.2f} s, moto CPU {sys.argv[5]} s, {r['total_resources']} resources, "
      f"{total} API calls ({per_bucket} GetBucketLocation, {total - per_bucket} others; {throttled} throttled, "
      f"{retried} retries), issues {len(issues)}" + (f" ({', '.join(sorted({i['kind'] for i in issues}))})" if issues else ""))
print("  " + ", ".join(f"{k} {v}" for k, v in sorted(calls.items())))
with open(sys.argv[7], "a") as f:
    f.write(f"{sys.argv[6]}\t{sys.argv[3]}\t{wall}\t{sys.argv[5]}\t{r['total_resources']}\t-\n")
PY
}
for run in 1 2 3; do
  for bin in $TAGGUARD_BINS; do
    scan_with "$bin" "$bin" "$AWS_ENDPOINT_URL" "$run"
    if [ -n "$proxy" ]; then
      faults '{"throttle": 0.3, "error500": 0.05}'
      scan_with "$bin" "$bin, 30 % throttled + 5 % 500s" "$proxy" "$run"
      faults '{"hang_regions": ["eu-west-1"]}'
      scan_with "$bin" "$bin, eu-west-1 hanging" "$proxy" "$run"
      faults '{}'
    fi
  done
  ticks=$(cpu_ticks "$moto_pid")
  start=$(date +%s.%N)
  .venv/bin/python scripts/sequential_boto3_scan.py "$AWS_ENDPOINT_URL" us-east-1 eu-west-1 > "$out"
  end=$(date +%s.%N)
  cpu=$(moto_cpu "$ticks" "$(cpu_ticks "$moto_pid")")
  python3 - "$start" "$end" "$out" "$cpu" "$run" "$results" <<'PY'
import json, sys
r = json.load(open(sys.argv[3]))
calls = r["calls"]
total = sum(calls.values())
per_bucket = calls.get("s3:GetBucketLocation", 0)
wall = float(sys.argv[2]) - float(sys.argv[1])
print(f"boto3 sequential: wall {wall:.2f} s (in the script {r['wall_seconds']:.2f} s), moto CPU {sys.argv[4]} s, "
      f"{r['resources']} resources, {total} API calls ({per_bucket} GetBucketLocation, {total - per_bucket} others)")
print("  " + ", ".join(f"{k} {v}" for k, v in sorted(calls.items())))
with open(sys.argv[6], "a") as f:
    f.write(f"{sys.argv[5]}\tboto3 sequential\t{wall}\t{sys.argv[4]}\t{r['resources']}\t{r['wall_seconds']}\n")
PY
done
python3 - "$results" <<'PY'
import sys
from collections import defaultdict
from statistics import median
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
by_command, by_run = defaultdict(list), defaultdict(dict)
for run, command, wall, cpu, resources, inner in rows:
    by_command[command].append((float(wall), float(cpu), inner))
    by_run[run][command] = (float(wall), int(resources), inner)
print(f"medians over {len(by_run)} runs:")
for command, scans in by_command.items():
    inner = [float(i) for _, _, i in scans if i != "-"]
    print(f"  {command}: wall {median(w for w, _, _ in scans):.2f} s"
          + (f" (in the script {median(inner):.2f} s)" if inner else "")
          + f", moto CPU {median(c for _, c, _ in scans):.2f} s")
base = "boto3 sequential"
for command in by_command:
    if command != base:
        ratios = [runs[command][0] / runs[base][0] for runs in by_run.values()]
        inner = [runs[command][0] / float(runs[base][2]) for runs in by_run.values()]
        print(f"{command} wall / boto3 wall, per run: " + ", ".join(f"{r:.2f}" for r in ratios)
              + f" (median {median(ratios):.2f}); to the script's own time: "
              + ", ".join(f"{r:.2f}" for r in inner) + f" (median {median(inner):.2f})")
counts = {runs[command][1] for runs in by_run.values() for command in runs if "hanging" not in command}
print(f"resources found (no region hanging): {' '.join(map(str, sorted(counts)))}"
      + (" (every scan agrees)" if len(counts) == 1 else " (the scans DISAGREE)"))
PY
