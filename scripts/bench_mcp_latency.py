#!/usr/bin/env python3
"""Times tools/call over stdio against `tagguard serve --stdio`: fresh scans (force_refresh)
and cached answers. Usage: bench_mcp_latency.py BINARY SIZE (docs/BENCHMARKS.md)."""
import json, subprocess, sys, time, tempfile, statistics
binary, size = sys.argv[1], sys.argv[2]
data = tempfile.mkdtemp()
p = subprocess.Popen([binary, "serve", "--stdio", "--size", size, "--data-dir", data],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
def rpc(i, method, params):
    p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params}) + "\n"); p.stdin.flush()
    while True:
        m = json.loads(p.stdout.readline())
        if m.get("id") == i: return m
rpc(0, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "b", "version": "1"}})
fresh, cached = [], []
for i in range(1, 11):
    t = time.perf_counter(); rpc(i, "tools/call", {"name": "check_tag_compliance", "arguments": {"limit": i, "force_refresh": True}}); fresh.append(time.perf_counter() - t)
    t = time.perf_counter(); rpc(100 + i, "tools/call", {"name": "check_tag_compliance", "arguments": {"limit": 50 + i}}); cached.append(time.perf_counter() - t)
p.stdin.close(); p.wait()
import shutil; shutil.rmtree(data, ignore_errors=True)
print(f"size {size}: fresh scan+record median {statistics.median(fresh)*1000:.1f} ms (min {min(fresh)*1000:.1f}), cached median {statistics.median(cached)*1000:.1f} ms (min {min(cached)*1000:.1f})")
