"""Four-eyes approvals through Airlock's MCP server, with the official MCP
Python SDK: an agent may request a reset but never approve one.

Run by crates/airlock/tests/it/mcp.rs against an in-process stack where resets
wait for approval. The editor's agent resets a connection and gets the job
awaiting approval, naming its pending request; the approver's agent is
offered no tool that decides, and an `approve` tool does not exist. The last
line of output is a JSON report for the Rust side.

Environment:
  AIRLOCK_URL                    Airlock's root
  TOKEN_EDITOR, TOKEN_APPROVER   bearer tokens of the demo identity provider
  CONNECTION                     a connection's id
"""

import asyncio
import json
import os

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

URL = os.environ["AIRLOCK_URL"].rstrip("/") + "/mcp"
CONNECTION = os.environ["CONNECTION"]


def step(name):
    print(f"step: {name}", flush=True)


def agent(role):
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {os.environ[f'TOKEN_{role.upper()}']}"},
        timeout=httpx2.Timeout(30, read=60),
    )
    return Client(streamable_http_client(URL, http_client=http))


async def main():
    step("editor's agent: reset_connection answers with the pending approval")
    async with agent("editor") as client:
        result = await client.call_tool(
            "reset_connection", {"connection": CONNECTION, "reason": "the agent saw corrupt rows"}
        )
        assert not result.is_error, result
        job = result.structured_content
        assert job["state"] == "awaiting_approval", job
        approval = job["approval"]
        assert approval["state"] == "pending", job
        assert job["links"]["approval"] == f"/v1/approvals/{approval['id']}", job

    step("approver's agent: no tool decides, and approve does not exist")
    async with agent("approver") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert not any("approv" in name or "deny" in name for name in names), names
        try:
            await client.call_tool("approve", {"id": approval["id"]})
        except MCPError as error:
            assert "unknown tool" in str(error.error.message), error
        else:
            raise AssertionError("an approve tool was called")

    print(json.dumps({"job_id": job["id"], "approval_id": approval["id"]}), flush=True)


asyncio.run(main())
