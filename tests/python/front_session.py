"""The official Airbyte Python SDK against Airlock's Airbyte-compatible front.

Run by crates/airlock/tests/it/front.rs. The SDK is pointed at Airlock
(server_url = <airlock>/api/public/v1) with the client credentials of
Airlock service accounts, exactly as it would be pointed at Airbyte.

Environment:
  AIRLOCK_URL          Airlock's public API base, e.g. http://127.0.0.1:8080/api/public/v1
  RUNNER_ID, RUNNER_SECRET   a service account granted `runner` in one workspace
  READER_ID, READER_SECRET   a service account granted `reader` everywhere
  WORKSPACE_ID         the runner's workspace
  WORKSPACE_CONNECTIONS  how many connections that workspace has
  OTHER_CONNECTION     a connection of another workspace
  SIM_ADMIN            the simulator's admin base, to move its clock
"""

import json
import os
import sys

import httpx

import airbyte_api
from airbyte_api import api, errors, models

BASE = os.environ["AIRLOCK_URL"]
ADMIN = os.environ["SIM_ADMIN"]
TERMINAL = {"succeeded", "failed", "cancelled"}


def step(name):
    print(f"step: {name}", flush=True)


def sdk(client_id, client_secret, token_url="/applications/token"):
    return airbyte_api.AirbyteAPI(
        server_url=BASE,
        security=models.Security(
            client_credentials=models.SchemeClientCredentials(
                client_id=client_id,
                client_secret=client_secret,
                token_url=token_url,
            )
        ),
    )


def status_of(job):
    return job.status.value if hasattr(job.status, "value") else str(job.status)


def expect_error(status, call):
    try:
        call()
    except errors.SDKError as error:
        assert error.status_code == status, f"expected {status}, got {error.status_code}: {error.body}"
        assert error.raw_response.headers["content-type"].startswith("application/json"), error.raw_response.headers
        body = json.loads(error.body)
        assert body["status"] == status, body
        assert body["data"]["request_id"] == error.raw_response.headers["x-request-id"], body
        return body
    raise AssertionError(f"expected a {status}")


def main():
    # The SDK's default token URL resolves to the host root; Airflow's
    # relative "v1/applications/token" resolves under /api/public/.
    runner = sdk(os.environ["RUNNER_ID"], os.environ["RUNNER_SECRET"])
    reader = sdk(os.environ["READER_ID"], os.environ["READER_SECRET"], token_url="v1/applications/token")
    workspace = os.environ["WORKSPACE_ID"]

    step("the runner sees only its workspace")
    workspaces = runner.workspaces.list_workspaces(request=api.ListWorkspacesRequest()).workspaces_response.data
    assert [w.workspace_id for w in workspaces] == [workspace], workspaces

    step("the runner's connection list holds only its workspace's connections")
    connections = runner.connections.list_connections(
        request=api.ListConnectionsRequest(limit=100)
    ).connections_response.data
    assert connections, "the workspace has connections"
    assert all(c.workspace_id == workspace for c in connections), [c.workspace_id for c in connections]
    assert len(connections) == int(os.environ["WORKSPACE_CONNECTIONS"]), len(connections)

    step("the reader sees more")
    everything = reader.connections.list_connections(
        request=api.ListConnectionsRequest(limit=100)
    ).connections_response.data
    assert len(everything) > len(connections), (len(everything), len(connections))

    step("a connection of another workspace does not exist for the runner")
    body = expect_error(
        404,
        lambda: runner.connections.get_connection(
            request=api.GetConnectionRequest(connection_id=os.environ["OTHER_CONNECTION"])
        ),
    )
    assert body["title"] == "resource-not-found", body

    step("the runner creates a sync and polls it to the end")
    active = [c for c in connections if str(getattr(c.status, "value", c.status)) == "active"]
    target = active[0]
    created = runner.jobs.create_job(
        request=models.JobCreateRequest(connection_id=target.connection_id, job_type=models.JobTypeEnum.SYNC)
    ).job_response
    assert created.connection_id == target.connection_id
    seen = []
    for _ in range(200):
        job = runner.jobs.get_job(request=api.GetJobRequest(job_id=created.job_id)).job_response
        status = status_of(job)
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in TERMINAL:
            break
        httpx.post(f"{ADMIN}/advance", json={"seconds": 5}).raise_for_status()
    else:
        raise AssertionError(f"job {created.job_id} did not finish: {seen}")
    assert seen[-1] in {"succeeded", "failed"}, seen
    print(f"job: {created.job_id} {seen[-1]}", flush=True)

    step("the reader may read the job but not start one")
    job = reader.jobs.get_job(request=api.GetJobRequest(job_id=created.job_id)).job_response
    assert job.job_id == created.job_id
    body = expect_error(
        403,
        lambda: reader.jobs.create_job(
            request=models.JobCreateRequest(connection_id=target.connection_id, job_type=models.JobTypeEnum.SYNC)
        ),
    )
    assert body["title"] == "forbidden", body

    step("the runner may not reset")
    expect_error(
        403,
        lambda: runner.jobs.create_job(
            request=models.JobCreateRequest(connection_id=target.connection_id, job_type=models.JobTypeEnum.RESET)
        ),
    )

    step("the runner's job list holds only its workspace's jobs")
    jobs = runner.jobs.list_jobs(request=api.ListJobsRequest(limit=100)).jobs_response.data
    ids = {c.connection_id for c in connections}
    assert created.job_id in [j.job_id for j in jobs], jobs
    assert all(j.connection_id in ids for j in jobs), jobs

    step("administrative routes are refused")
    expect_error(
        403,
        lambda: runner.users.list_users_within_an_organization(
            request=api.ListUsersWithinAnOrganizationRequest(organization_id="00000000-0000-0000-0000-000000000000")
        ),
    )

    step("wrong credentials get no token")
    wrong = sdk(os.environ["RUNNER_ID"], "not-the-secret")
    try:
        wrong.workspaces.list_workspaces(request=api.ListWorkspacesRequest())
        raise AssertionError("wrong credentials must fail")
    except Exception as error:  # the SDK raises a bare Exception here
        assert "400" in str(error), error

    print("front session ok", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # report and fail: the Rust test shows stdout
        print(f"FAILED: {type(error).__name__}: {error}", flush=True)
        sys.exit(1)
