"""Airlock's MCP server at /mcp, driven by the official MCP Python SDK.

Run by the Rust integration tests (crates/airlock/tests/it/mcp.rs) against an
in-process stack. Every step asserts what an agent would see; the script exits
non-zero with the failed step on the first surprise. Its last line of output
is a JSON report for the Rust side (request ids to find in the audit trail).

Environment:
  AIRLOCK_URL                 Airlock's root, e.g. http://127.0.0.1:8080
  TOKEN_READER, TOKEN_RUNNER, TOKEN_EDITOR
                              bearer tokens of the demo identity provider
  CONNECTION                  id of a connection whose syncs succeed
"""

import asyncio
import json
import os
import time

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

URL = os.environ["AIRLOCK_URL"].rstrip("/") + "/mcp"
CONNECTION = os.environ["CONNECTION"]
TERMINAL = {"succeeded", "failed", "cancelled"}
READS = {"list_connections", "get_connection", "get_job", "list_jobs"}
EXPECTED = {
    "reader": READS,
    "runner": READS | {"trigger_sync", "cancel_job"},
    "editor": READS | {"trigger_sync", "cancel_job", "reset_connection"},
}


def step(name):
    print(f"step: {name}", flush=True)


def token(role):
    return os.environ[f"TOKEN_{role.upper()}"]


def agent(role, mode="auto"):
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token(role)}"},
        timeout=httpx2.Timeout(30, read=120),
    )
    return Client(streamable_http_client(URL, http_client=http), mode=mode)


def text_of(result):
    return " ".join(block.text for block in result.content if getattr(block, "text", None))


async def ok(client, name, arguments=None):
    result = await client.call_tool(name, arguments or {})
    assert not result.is_error, f"{name} failed: {text_of(result)}"
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


async def refused(client, name, arguments, expect):
    result = await client.call_tool(name, arguments)
    message = text_of(result)
    assert result.is_error, f"{name} was not refused: {result}"
    assert expect in message, message
    assert "request_id " in message, message
    return message.rsplit("request_id ", 1)[1].rstrip(")")


async def tool_lists():
    for role, expected in EXPECTED.items():
        for mode in ("auto", "legacy"):
            step(f"tools/list as {role} ({mode})")
            async with agent(role, mode) as client:
                print(f"  negotiated {client.protocol_version}", flush=True)
                tools = {tool.name: tool for tool in (await client.list_tools()).tools}
                assert set(tools) == expected, (role, mode, sorted(tools))
                for name, tool in tools.items():
                    hints = tool.annotations
                    assert hints is not None, name
                    assert hints.read_only_hint is (name in READS), name
                    assert hints.destructive_hint is (name == "reset_connection"), name
                    assert hints.open_world_hint is False, name
                    assert tool.input_schema["type"] == "object", name
                    assert tool.output_schema["type"] == "object", name
                if "trigger_sync" in tools:
                    schema = tools["trigger_sync"].input_schema
                    assert schema["required"] == ["connection"], schema
                    assert {"wait_seconds", "idempotency_key"} <= set(schema["properties"]), schema
                    assert tools["trigger_sync"].annotations.idempotent_hint is False


async def runner_follows_a_sync():
    step("runner: list_connections, get_connection by slug")
    async with agent("runner") as client:
        listed = await ok(client, "list_connections")
        found = [c for c in listed["data"] if c["id"] == CONNECTION]
        assert len(found) == 1, listed
        slug = found[0]["slug"]
        connection = await ok(client, "get_connection", {"connection": slug})
        assert connection["id"] == CONNECTION, connection

        step("runner: trigger_sync, then get_job until it ends")
        job = await ok(client, "trigger_sync", {"connection": slug})
        assert job["connection_id"] == CONNECTION, job
        assert job["channel"] == "mcp", job
        assert job["state"] not in TERMINAL, job
        deadline = time.monotonic() + 60
        while job["state"] not in TERMINAL:
            assert time.monotonic() < deadline, f"job did not end: {job}"
            await asyncio.sleep(0.2)
            job = await ok(client, "get_job", {"job_id": job["id"]})
        assert job["state"] == "succeeded", job
        assert job["requested_by"] == "runner", job

        step("runner: list_jobs of the connection shows it")
        jobs = await ok(client, "list_jobs", {"connection": slug, "state": "succeeded", "limit": 5})
        assert job["id"] in [j["id"] for j in jobs["data"]], jobs

        step("runner: trigger_sync with wait_seconds answers with the ended job")
        waited = await ok(client, "trigger_sync", {"connection": CONNECTION, "wait_seconds": 60})
        assert waited["state"] == "succeeded", waited

        step("runner: an idempotency key returns the same job")
        first = await ok(client, "trigger_sync", {"connection": slug, "idempotency_key": "mcp-42"})
        again = await ok(client, "trigger_sync", {"connection": slug, "idempotency_key": "mcp-42"})
        assert first["id"] == again["id"], (first, again)

        step("runner: reset_connection (unlisted) is refused")
        reset_denied = await refused(client, "reset_connection", {"connection": slug}, "Forbidden")

        step("runner: errors are tool errors with a request id")
        await refused(client, "get_connection", {"connection": "no-such-connection"}, "Not found")
        await refused(client, "trigger_sync", {"connection": slug, "wait_seconds": 5000}, "invalid arguments")
        await refused(client, "trigger_sync", {}, "invalid arguments")
        try:
            await client.call_tool("drop_tables", {})
        except MCPError as error:
            assert "unknown tool" in str(error.error.message), error
        else:
            raise AssertionError("an unknown tool was called")
        return {"job_id": job["id"], "reset_denied": reset_denied}


async def reader_is_refused():
    step("reader: trigger_sync is not listed, and refused when called anyway")
    async with agent("reader") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "trigger_sync" not in names, names
        request_id = await refused(client, "trigger_sync", {"connection": CONNECTION}, "Forbidden")
        listed = await ok(client, "list_jobs", {"limit": 1})
        assert len(listed["data"]) == 1, listed
        return request_id


async def editor_resets():
    step("editor: reset_connection is listed, marked destructive, and works")
    async with agent("editor") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert tools["reset_connection"].annotations.destructive_hint is True
        job = await ok(client, "reset_connection", {"connection": CONNECTION, "wait_seconds": 60})
        assert job["type"] == "reset", job
        assert job["state"] == "succeeded", job


def http_door():
    step("the door: no token is 401, a foreign Host or Origin is 403")
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    bare = httpx2.post(URL, json=body, headers=headers)
    assert bare.status_code == 401, bare.status_code
    assert bare.headers["www-authenticate"].startswith("Bearer"), bare.headers
    problem = bare.json()
    assert problem["code"] == "unauthorized" and problem["request_id"], problem
    signed = {**headers, "Authorization": f"Bearer {token('editor')}"}
    for extra in ({"Host": "evil.example:8080"}, {"Origin": "http://evil.example"}):
        response = httpx2.post(URL, json=body, headers={**signed, **extra})
        assert response.status_code == 403, (extra, response.status_code)
        assert response.json()["code"] == "forbidden", response.text
    local = httpx2.post(URL, json=body, headers={**signed, "Origin": "http://localhost:6274"})
    assert local.status_code == 200, (local.status_code, local.text)


async def main():
    http_door()
    await tool_lists()
    runner = await runner_follows_a_sync()
    denied = await reader_is_refused()
    await editor_resets()
    print(json.dumps({"denied_request_id": denied, **runner}), flush=True)


asyncio.run(main())
