"""A scripted session of the official Airbyte Python SDK against a server.

Run by the Rust integration tests (crates/airlock/tests/it/sdk.rs) against
`airlock sim`. Every step asserts what a real Airbyte would answer; the script
exits non-zero with the failed step on the first surprise.

Environment:
  AIRBYTE_URL     the public API base, e.g. http://127.0.0.1:8000/api/public/v1
  CLIENT_ID, CLIENT_SECRET
  SIM_ADMIN       the simulator's admin base (http://HOST/_sim), used only to
                  move the simulator's clock and to force token expiry
"""

import json
import os
import sys
import time

import httpx

import airbyte_api
from airbyte_api import api, errors, models

BASE = os.environ["AIRBYTE_URL"]
ADMIN = os.environ["SIM_ADMIN"]
TERMINAL = {"succeeded", "failed", "cancelled"}


def step(name):
    print(f"step: {name}", flush=True)


def admin(path, body=None):
    response = httpx.post(f"{ADMIN}{path}", json=body or {})
    response.raise_for_status()
    return response


def sdk():
    return airbyte_api.AirbyteAPI(
        server_url=BASE,
        security=models.Security(
            client_credentials=models.SchemeClientCredentials(
                client_id=os.environ["CLIENT_ID"],
                client_secret=os.environ["CLIENT_SECRET"],
                # Relative to server_url, as Airflow's provider does; the SDK's
                # default ("/applications/token") resolves to the host root.
                token_url="v1/applications/token",
            )
        ),
    )


def status_of(job):
    # The SDK parses `status` into its enum; a value it did not know would
    # have failed the call before we got here.
    return job.status.value if hasattr(job.status, "value") else str(job.status)


def wait_until_terminal(client, job_id, max_polls=200):
    seen = []
    for _ in range(max_polls):
        job = client.jobs.get_job(request=api.GetJobRequest(job_id=job_id)).job_response
        status = status_of(job)
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in TERMINAL:
            return job, seen
        admin("/advance", {"seconds": 5})
    raise AssertionError(f"job {job_id} did not finish: {seen}")


def main():
    client = sdk()

    step("list workspaces")
    workspaces = client.workspaces.list_workspaces(request=api.ListWorkspacesRequest()).workspaces_response.data
    assert len(workspaces) >= 2, workspaces
    first_ws = workspaces[0].workspace_id

    step("list connections of one workspace")
    page = client.connections.list_connections(
        request=api.ListConnectionsRequest(workspace_ids=[first_ws], limit=100)
    ).connections_response
    connections = page.data
    assert connections, "the first workspace has connections"
    assert all(c.workspace_id == first_ws for c in connections), "workspace filter"

    step("list all connections")
    all_connections = client.connections.list_connections(
        request=api.ListConnectionsRequest(limit=100)
    ).connections_response.data
    assert len(all_connections) > len(connections)
    by_id = {c.connection_id: c for c in all_connections}
    active = [c for c in all_connections if str(getattr(c.status, "value", c.status)) == "active"]
    assert len(active) >= 3, "need three active connections"

    step("create a sync and poll it to the end")
    target = active[0]
    created = client.jobs.create_job(
        request=models.JobCreateRequest(connection_id=target.connection_id, job_type=models.JobTypeEnum.SYNC)
    ).job_response
    assert created.connection_id == target.connection_id
    assert status_of(created) in {"pending", "queued", "running"}, status_of(created)
    finished, seen = wait_until_terminal(client, created.job_id)
    assert status_of(finished) in {"succeeded", "failed"}, seen
    assert finished.last_updated_at, "a finished job has lastUpdatedAt"
    assert finished.duration and finished.duration.startswith("PT"), finished.duration

    step("list jobs with filters and orderBy")
    second = client.jobs.create_job(
        request=models.JobCreateRequest(connection_id=target.connection_id, job_type=models.JobTypeEnum.SYNC)
    ).job_response
    jobs = client.jobs.list_jobs(
        request=api.ListJobsRequest(connection_id=target.connection_id, order_by="createdAt|DESC", limit=10)
    ).jobs_response.data
    ids = [j.job_id for j in jobs]
    assert ids[:2] == [second.job_id, created.job_id], ids
    asc = client.jobs.list_jobs(
        request=api.ListJobsRequest(connection_id=target.connection_id, limit=10)
    ).jobs_response.data
    assert [j.job_id for j in asc][-2:] == [created.job_id, second.job_id], "oldest first by default"
    running = client.jobs.list_jobs(
        request=api.ListJobsRequest(
            workspace_ids=[target.workspace_id],
            status=models.JobStatusEnum(status_of(second)),
            job_type=models.JobTypeEnum.SYNC,
        )
    ).jobs_response.data
    assert second.job_id in [j.job_id for j in running], "status filter"
    assert all(by_id[j.connection_id].workspace_id == target.workspace_id for j in running if j.connection_id in by_id)

    step("a second sync on a busy connection answers 409")
    try:
        client.jobs.create_job(
            request=models.JobCreateRequest(connection_id=target.connection_id, job_type=models.JobTypeEnum.SYNC)
        )
        raise AssertionError("expected a 409")
    except errors.SDKError as error:
        assert error.status_code == 409, error
        body = json.loads(error.body)
        assert body["title"] == "try-again-later", body
        assert target.connection_id in body["data"]["message"], body

    step("cancel a running job")
    cancelled = client.jobs.cancel_job(request=api.CancelJobRequest(job_id=second.job_id)).job_response
    assert status_of(cancelled) == "cancelled", status_of(cancelled)
    try:
        client.jobs.cancel_job(request=api.CancelJobRequest(job_id=second.job_id))
        raise AssertionError("cancelling a finished job must fail")
    except errors.SDKError as error:
        assert error.status_code == 409, error

    step("the session survives a token the server expired early")
    admin("/expire-tokens")
    try:
        client.workspaces.list_workspaces(request=api.ListWorkspacesRequest())
        raise AssertionError("an expired token must get a 401")
    except errors.SDKError as error:
        assert error.status_code == 401, error
    # The SDK dropped its token on the 401; the next call fetches a new one.
    again = client.workspaces.list_workspaces(request=api.ListWorkspacesRequest()).workspaces_response.data
    assert len(again) == len(workspaces)

    step("the session refreshes its token ahead of expiry")
    time.sleep(float(os.environ.get("TOKEN_WAIT_SECS", "0")))
    job = client.jobs.create_job(
        request=models.JobCreateRequest(connection_id=active[1].connection_id, job_type=models.JobTypeEnum.SYNC)
    ).job_response
    wait_until_terminal(client, job.job_id)

    print("sdk session ok", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # report and fail: the Rust test shows stdout
        print(f"FAILED: {type(error).__name__}: {error}", flush=True)
        sys.exit(1)
