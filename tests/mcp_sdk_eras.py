#!/usr/bin/env python3
"""tagguard's MCP server through the official Python MCP SDK (PyPI `mcp` 2.x), in both eras of
the protocol: `legacy` (the 2025 initialize handshake), `auto` (the SDK's default: a
`server/discover` probe, which tagguard answers, so the client speaks 2026-07-28), and
`2026-07-28` pinned (stateless from the first request; the client is given the server's own
discover result, since a pinned client does not ask for it).

In each mode, over the transport given: the protocol version, the server's identity and
capabilities, tools/list (every tool has object schemas), a tool call whose structured result
is checked, the report tool's resource link read back with resources/read, resources/list and
templates, prompts/list and prompts/get, completion/complete, and an unknown tool refused.

  mcp_sdk_eras.py --stdio "tagguard serve --stdio --source demo"
  mcp_sdk_eras.py --http http://127.0.0.1:8080/mcp

Exit status 0 when every check passed in every mode, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp import Client, MCPError, StdioServerParameters

MODERN = "2026-07-28"
failures: list[str] = []


def check(ok: bool, what: str, detail: Any = "") -> None:
    print(f"  {'PASS' if ok else 'FAIL'}  {what}{'  ' + str(detail) if detail and not ok else ''}")
    if not ok:
        failures.append(what)


def dump(model: Any) -> Any:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def target(a: argparse.Namespace) -> Any:
    if a.stdio:
        argv = shlex.split(a.stdio)
        return StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))
    return a.http


async def exercise(a: argparse.Namespace, mode: str, prior: Any = None) -> None:
    print(f"mode {mode}")
    kwargs: dict[str, Any] = {"mode": mode}
    if prior is not None:
        kwargs["prior_discover"] = prior
    async with Client(target(a), client_info=types.Implementation(name="tagguard-sdk-test", version="1"), **kwargs) as client:
        expected = "2025-11-25" if mode == "legacy" else MODERN
        check(client.protocol_version == expected, f"{mode}: protocol version", client.protocol_version)
        caps = dump(client.server_capabilities)
        for capability in ("tools", "resources", "prompts", "completions"):
            check(capability in caps, f"{mode}: capability {capability}", caps)
        if mode != MODERN:
            # A pinned client learns no identity (it does not ask server/discover).
            info = client.server_info
            check(info is not None and info.name == "tagguard", f"{mode}: serverInfo", info)

        tools = (await client.list_tools(cache_mode="refresh")).tools
        names = {t.name for t in tools}
        check("generate_compliance_report" in names and len(names) >= 9, f"{mode}: tools/list", sorted(names))
        check(all(t.input_schema.get("type") == "object" for t in tools), f"{mode}: input schemas are objects")

        result = await client.call_tool("check_tag_compliance", {"resource_types": ["s3:bucket"], "limit": 3})
        structured = result.structured_content or {}
        check(not result.is_error and structured.get("total_resources", 0) > 0, f"{mode}: check_tag_compliance", structured.get("total_resources"))
        check(len(structured.get("violations", [])) == 3, f"{mode}: limit honoured")

        report = await client.call_tool("generate_compliance_report", {"format": "markdown"})
        summary = report.structured_content or {}
        links = [c for c in report.content if getattr(c, "type", "") == "resource_link"]
        check(len(links) == 1 and str(links[0].uri) == summary.get("report_uri"), f"{mode}: report linked", [dump(c) for c in report.content][-1:])
        if links:
            read = await client.read_resource(str(links[0].uri), cache_mode="refresh")
            text = read.contents[0].text if read.contents else ""
            check(text.startswith("# Tag compliance report") and len(text.encode()) == summary.get("bytes"), f"{mode}: report read back", text[:60])

        listed = await client.list_resources(cache_mode="refresh")
        uris = {str(r.uri) for r in listed.resources}
        check("tagguard://policy" in uris and summary.get("report_uri") in uris, f"{mode}: resources/list", sorted(uris)[:5])
        templates = await client.list_resource_templates(cache_mode="refresh")
        check(any("violations" in t.uri_template for t in templates.resource_templates), f"{mode}: resources/templates/list")

        prompts = await client.list_prompts()
        check({p.name for p in prompts.prompts} == {"account_audit", "cost_gap_review", "fix_plan"}, f"{mode}: prompts/list")
        got = await client.get_prompt("cost_gap_review", {"group_by": "account"})
        text = json.dumps([dump(m) for m in got.messages])
        check("get_cost_attribution_gap" in text and "account" in text, f"{mode}: prompts/get")
        completion = await client.complete(types.PromptReference(type="ref/prompt", name="fix_plan"), {"name": "tag", "value": "Env"})
        check(completion.completion.values == ["Environment"], f"{mode}: completion/complete", completion.completion.values)

        try:
            unknown = await client.call_tool("__no_such_tool__", {})
            check(bool(unknown.is_error), f"{mode}: unknown tool refused", dump(unknown))
        except MCPError:
            check(True, f"{mode}: unknown tool refused")


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--stdio")
    g.add_argument("--http")
    a = p.parse_args()
    for mode in ("legacy", "auto"):
        try:
            await exercise(a, mode)
        except Exception as e:  # a failure to connect or an unexpected error fails the mode
            check(False, f"{mode}: session", f"{type(e).__name__}: {e}")
    # Pinned to 2026-07-28 from the first request, with the server's own discovery.
    try:
        async with Client(target(a), mode="auto") as probe:
            prior = types.DiscoverResult(
                supported_versions=[probe.protocol_version],
                capabilities=probe.server_capabilities,
                result_type="complete",
                ttl_ms=0,
                cache_scope="private",
            )
        await exercise(a, MODERN, prior)
    except Exception as e:
        check(False, f"{MODERN}: session", f"{type(e).__name__}: {e}")
    print(f"mcp_sdk_eras: {'all passed' if not failures else str(len(failures)) + ' failed: ' + ', '.join(failures)}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
