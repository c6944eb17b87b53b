"""Validates a server's answers against Airbyte's published OpenAPI document.

Run by the Rust integration tests against `airlock sim`. It exercises every
route the simulator serves, and checks each 2xx JSON body against the response
schema the document gives for that operation (JSON Schema 2020-12, as OpenAPI
3.1 says). The one known difference is allowed: the `queued` job status,
which servers added in May 2026 and the document predates.

Error bodies have no schema in the document; they are checked against the
shape Airbyte's servers use: {status, type, title, detail}.

Environment: AIRBYTE_URL, CLIENT_ID, CLIENT_SECRET, SIM_ADMIN, OPENAPI (path).
"""

import os
import re
import sys

import httpx
import yaml
from jsonschema import Draft202012Validator

BASE = os.environ["AIRBYTE_URL"]
ADMIN = os.environ["SIM_ADMIN"]
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

with open(os.environ["OPENAPI"], "rb") as handle:
    DOC = yaml.load(handle, Loader=Loader)

# The one documented difference: `queued` is newer than the document.
DOC["components"]["schemas"]["JobStatusEnum"]["enum"].append("queued")

checked = []


def schema_for(method, template, status):
    operation = DOC["paths"][template][method.lower()]
    response = operation["responses"].get(str(status))
    if response is None:
        raise AssertionError(f"{method} {template}: the document has no {status} answer")
    content = response.get("content", {}).get("application/json")
    return None if content is None else content["schema"]


def check(method, template, response, expected_status):
    assert response.status_code == expected_status, (
        f"{method} {template}: {response.status_code} {response.text[:300]}"
    )
    if expected_status >= 400:
        assert response.headers["content-type"].startswith("application/json"), response.headers
        body = response.json()
        for key in ("status", "type", "title", "detail"):
            assert key in body, f"{method} {template} error body lacks {key}: {body}"
        assert body["status"] == expected_status, body
        checked.append(f"{method} {template} {expected_status} (error shape)")
        return body
    if expected_status == 204:
        assert schema_for(method, template, 204) is None, f"{method} {template}: the document gives 204 a body"
        assert response.content == b"", f"{method} {template}: a 204 with a body: {response.text[:200]}"
        checked.append(f"{method} {template} 204 (no body)")
        return None
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    schema = schema_for(method, template, expected_status)
    assert schema is not None, f"{method} {template} has no JSON schema"
    wrapped = {"components": DOC["components"], **schema}
    errors = sorted(Draft202012Validator(wrapped).iter_errors(body), key=lambda e: list(e.path))
    if errors:
        details = "\n".join(f"  at {list(e.path)}: {e.message[:200]}" for e in errors[:10])
        raise AssertionError(f"{method} {template} {expected_status} does not match the document:\n{details}")
    checked.append(f"{method} {template} {expected_status}")
    return body


def main():
    token = httpx.post(
        f"{BASE}/applications/token",
        json={"client_id": os.environ["CLIENT_ID"], "client_secret": os.environ["CLIENT_SECRET"]},
    )
    assert token.status_code == 200, token.text
    access = token.json()["access_token"]
    http = httpx.Client(base_url=BASE, headers={"authorization": f"Bearer {access}"})

    workspaces = check("GET", "/workspaces", http.get("/workspaces"), 200)["data"]
    check("GET", "/workspaces/{workspaceId}", http.get(f"/workspaces/{workspaces[0]['workspaceId']}"), 200)
    sources = check("GET", "/sources", http.get("/sources", params={"limit": 100}), 200)["data"]
    check("GET", "/sources/{sourceId}", http.get(f"/sources/{sources[0]['sourceId']}"), 200)
    destinations = check("GET", "/destinations", http.get("/destinations"), 200)["data"]
    check("GET", "/destinations/{destinationId}", http.get(f"/destinations/{destinations[0]['destinationId']}"), 200)
    connections = check("GET", "/connections", http.get("/connections", params={"limit": 100}), 200)["data"]
    check(
        "GET",
        "/connections",
        http.get("/connections", params=[("workspaceIds", workspaces[0]["workspaceId"]), ("limit", 2)]),
        200,
    )
    check("GET", "/connections/{connectionId}", http.get(f"/connections/{connections[0]['connectionId']}"), 200)
    check("GET", "/connections/{connectionId}", http.get("/connections/00000000-0000-0000-0000-000000000000"), 404)

    active = [c for c in connections if c["status"] == "active"]
    target = active[0]["connectionId"]
    job = check("POST", "/jobs", http.post("/jobs", json={"connectionId": target, "jobType": "sync"}), 200)
    check("GET", "/jobs/{jobId}", http.get(f"/jobs/{job['jobId']}"), 200)
    check("POST", "/jobs", http.post("/jobs", json={"connectionId": target, "jobType": "sync"}), 409)
    httpx.post(f"{ADMIN}/advance", json={"seconds": 3}).raise_for_status()
    check("GET", "/jobs/{jobId}", http.get(f"/jobs/{job['jobId']}"), 200)
    check("GET", "/jobs", http.get("/jobs", params={"connectionId": target, "orderBy": "createdAt|DESC"}), 200)
    check("DELETE", "/jobs/{jobId}", http.delete(f"/jobs/{job['jobId']}"), 200)
    check("DELETE", "/jobs/{jobId}", http.delete(f"/jobs/{job['jobId']}"), 409)
    check("GET", "/jobs/{jobId}", http.get("/jobs/999999999"), 404)

    reset = check("POST", "/jobs", http.post("/jobs", json={"connectionId": active[1]["connectionId"], "jobType": "reset"}), 200)
    for _ in range(60):
        httpx.post(f"{ADMIN}/advance", json={"seconds": 30}).raise_for_status()
        finished = check("GET", "/jobs/{jobId}", http.get(f"/jobs/{reset['jobId']}"), 200)
        if finished["status"] in ("succeeded", "failed", "cancelled"):
            break
    else:
        raise AssertionError(f"reset never finished: {finished}")
    assert re.fullmatch(r"P(T(\d+H)?(\d+M)?(\d+S)?)?", finished["duration"]), finished["duration"]
    check("GET", "/jobs", http.get("/jobs", params={"status": "succeeded", "limit": 100}), 200)

    writes(http)

    print(f"{len(checked)} answers match the document:")
    for line in checked:
        print(f"  {line}")


def writes(http):
    """Creates, changes and deletes a workspace, a source, a destination and a
    connection, and reads the streams in between."""
    workspace = check("POST", "/workspaces", http.post("/workspaces", json={"name": "validation"}), 200)
    wid = workspace["workspaceId"]
    check("PATCH", "/workspaces/{workspaceId}", http.patch(f"/workspaces/{wid}", json={"name": "checked"}), 200)
    config = {"host": "db", "port": 5432, "database": "app", "schema": "public", "username": "airbyte", "password": "secret"}
    source = check(
        "POST",
        "/sources",
        http.post("/sources", json={"name": "s", "workspaceId": wid, "configuration": {"sourceType": "postgres", **config}}),
        200,
    )
    sid = source["sourceId"]
    check("PATCH", "/sources/{sourceId}", http.patch(f"/sources/{sid}", json={"name": "s2"}), 200)
    check("PUT", "/sources/{sourceId}", http.put(f"/sources/{sid}", json={"name": "s3", "configuration": config}), 200)
    destination = check(
        "POST",
        "/destinations",
        http.post(
            "/destinations",
            json={"name": "d", "workspaceId": wid, "configuration": {"destinationType": "postgres", **config}},
        ),
        200,
    )
    did = destination["destinationId"]
    check("PATCH", "/destinations/{destinationId}", http.patch(f"/destinations/{did}", json={"name": "d2"}), 200)
    check(
        "PUT", "/destinations/{destinationId}", http.put(f"/destinations/{did}", json={"name": "d3", "configuration": config}), 200
    )
    check("GET", "/streams", http.get("/streams", params={"sourceId": sid, "destinationId": did}), 200)
    connection = check(
        "POST",
        "/connections",
        http.post(
            "/connections",
            json={
                "sourceId": sid,
                "destinationId": did,
                "name": "c",
                "configurations": {"streams": [{"name": "users", "syncMode": "incremental_deduped_history"}]},
            },
        ),
        200,
    )
    cid = connection["connectionId"]
    check("PATCH", "/connections/{connectionId}", http.patch(f"/connections/{cid}", json={"name": "c2"}), 200)
    check("POST", "/connections", http.post("/connections", json={"sourceId": sid, "destinationId": sid}), 404)
    check("DELETE", "/connections/{connectionId}", http.delete(f"/connections/{cid}"), 204)
    check("DELETE", "/sources/{sourceId}", http.delete(f"/sources/{sid}"), 204)
    check("DELETE", "/destinations/{destinationId}", http.delete(f"/destinations/{did}"), 204)
    check("DELETE", "/workspaces/{workspaceId}", http.delete(f"/workspaces/{wid}"), 204)
    check("DELETE", "/workspaces/{workspaceId}", http.delete("/workspaces/00000000-0000-0000-0000-000000000000"), 404)


if __name__ == "__main__":
    try:
        main()
    except Exception as error:
        print(f"FAILED: {type(error).__name__}: {error}", flush=True)
        sys.exit(1)
