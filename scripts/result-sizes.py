#!/usr/bin/env python3
"""The size of every MCP tool's result on a demo estate of N resources: what a client gets
back, as bytes of the whole JSON-RPC result and of its structuredContent, over stdio.

  scripts/result-sizes.py [--size 100000] [--bin target/release/tagguard]

Each tool is called with the arguments that make its answer largest within its caps
(the highest `limit`, every type), and the ARN tools with the most ARNs they take.
Standard library only.
"""

import argparse
import json
import subprocess
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--bin", default="target/release/tagguard")
    a = p.parse_args()
    server = subprocess.Popen(
        [a.bin, "serve", "--stdio", "--source", "demo", "--size", str(a.size)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    next_id = 0

    def ask(method, params):
        nonlocal next_id
        next_id += 1
        server.stdin.write(json.dumps({"jsonrpc": "2.0", "id": next_id, "method": method, "params": params}) + "\n")
        server.stdin.flush()
        while True:
            line = server.stdout.readline()
            if not line:
                raise SystemExit("the server exited")
            message = json.loads(line)
            if message.get("id") == next_id:
                return line, message

    ask("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "sizes", "version": "1"}})
    server.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
    server.stdin.flush()
    _, first = ask("tools/call", {"name": "check_tag_compliance", "arguments": {"limit": 1000}})
    arns = [v["resource_arn"] for v in first["result"]["structuredContent"]["violations"]]
    arns = list(dict.fromkeys(arns))
    calls = [
        ("check_tag_compliance", {"limit": 1000}),
        ("find_untagged_resources", {"limit": 1000}),
        ("validate_resource_tags", {"resource_arns": arns[:100]}),
        ("get_tagging_policy", {}),
        ("get_violation_history", {"days_back": 400}),
        ("get_cost_attribution_gap", {"group_by": "resource_type", "granularity": "daily", "time_period": "last_30_days"}),
        ("suggest_tags", {"resource_arns": arns[:100]}),
        ("generate_compliance_report", {"format": "html"}),
        ("plan_tag_remediation", {"min_confidence": 0.0}),
        ("generate_custodian_policy", {}),
    ]
    print(f"| tool | result bytes | structuredContent bytes | seconds |")
    print(f"|---|---:|---:|---:|")
    for name, args in calls:
        started = time.monotonic()
        line, message = ask("tools/call", {"name": name, "arguments": args})
        took = time.monotonic() - started
        result = message.get("result", {})
        structured = result.get("structuredContent")
        error = " (error)" if result.get("isError") or "error" in message else ""
        print(f"| `{name}`{error} | {len(line.encode()):,} | {len(json.dumps(structured).encode()) if structured is not None else 0:,} | {took:.2f} |")
    server.stdin.close()
    server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
