"""`airlock mcp` (the stdio transport), launched by the official MCP Python SDK
as an agent host would launch it. It acts with AIRLOCK_TOKEN against the
Airlock at AIRLOCK_URL, so the tools and refusals are those of the token.

Run by the Rust integration tests (crates/airlock/tests/it/mcp.rs). The last
line of output is a JSON report for the Rust side.

Environment:
  AIRLOCK_BIN                 the airlock binary
  AIRLOCK_URL                 Airlock's root, e.g. http://127.0.0.1:8080
  TOKEN_READER, TOKEN_RUNNER  bearer tokens of the demo identity provider
  CONNECTION                  id of a connection whose syncs succeed
"""

import asyncio
import json
import os
import time

from mcp import Client
from mcp.client.stdio import StdioServerParameters

CONNECTION = os.environ["CONNECTION"]
TERMINAL = {"succeeded", "failed", "cancelled"}


def step(name):
    print(f"step: {name}", flush=True)


def agent(role):
    return Client(
        StdioServerParameters(
            command=os.environ["AIRLOCK_BIN"],
            args=["mcp"],
            env={
                "AIRLOCK_URL": os.environ["AIRLOCK_URL"],
                "AIRLOCK_TOKEN": os.environ[f"TOKEN_{role.upper()}"],
                "AIRLOCK_LOG": "warn",
            },
        ),
        read_timeout_seconds=120,
    )


def text_of(result):
    return " ".join(block.text for block in result.content if getattr(block, "text", None))


async def runner():
    step("runner over stdio: tools, then a sync followed to its end")
    async with agent("runner") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "trigger_sync" in names and "cancel_job" in names, names
        assert "reset_connection" not in names, names
        result = await client.call_tool("trigger_sync", {"connection": CONNECTION})
        assert not result.is_error, text_of(result)
        job = result.structured_content
        assert job["channel"] == "mcp", job
        deadline = time.monotonic() + 60
        while job["state"] not in TERMINAL:
            assert time.monotonic() < deadline, f"job did not end: {job}"
            await asyncio.sleep(0.2)
            result = await client.call_tool("get_job", {"job_id": job["id"]})
            assert not result.is_error, text_of(result)
            job = result.structured_content
        assert job["state"] == "succeeded", job
        return job["id"]


async def reader():
    step("reader over stdio: trigger_sync is not listed, and refused when called")
    async with agent("reader") as client:
        tools = (await client.list_tools()).tools
        names = {tool.name for tool in tools}
        assert names == {"list_connections", "get_connection", "get_job", "list_jobs"}, names
        assert all(tool.annotations.read_only_hint for tool in tools)
        result = await client.call_tool("trigger_sync", {"connection": CONNECTION})
        message = text_of(result)
        assert result.is_error and "Forbidden" in message, message
        return message.rsplit("request_id ", 1)[1].rstrip(")")


async def main():
    job_id = await runner()
    denied = await reader()
    print(json.dumps({"job_id": job_id, "denied_request_id": denied}), flush=True)


asyncio.run(main())
