"""A reset through Airlock's front, with the official Airbyte SDK, when resets
wait for a second person's approval (four eyes).

Run by crates/airlock/tests/it/approvals_front.rs. The SDK cannot wait for an
approval, so its reset is refused in Airbyte's error shape, naming the
approval request Airlock made for it; the requester cannot approve it; once a
person with `approvals:decide` has (APPROVER_TOKEN, through Airlock's own
API), the same SDK call goes through exactly once, and the next one is
refused again.

Environment:
  AIRLOCK_URL                Airlock's public API base (<airlock>/api/public/v1)
  EDITOR_ID, EDITOR_SECRET   a service account that may reset CONNECTION_ID
  APPROVER_TOKEN             a bearer token of someone who may decide it
  CONNECTION_ID
"""

import json
import os
import sys

import httpx

import airbyte_api
from airbyte_api import errors, models

BASE = os.environ["AIRLOCK_URL"]
AIRLOCK = BASE.removesuffix("/api/public/v1")
CONNECTION = os.environ["CONNECTION_ID"]


def step(name):
    print(f"step: {name}", flush=True)


def sdk():
    return airbyte_api.AirbyteAPI(
        server_url=BASE,
        security=models.Security(
            client_credentials=models.SchemeClientCredentials(
                client_id=os.environ["EDITOR_ID"],
                client_secret=os.environ["EDITOR_SECRET"],
                token_url="/applications/token",
            )
        ),
    )


def reset(client):
    return client.jobs.create_job(
        request=models.JobCreateRequest(connection_id=CONNECTION, job_type=models.JobTypeEnum.RESET)
    ).job_response


def refused_reset(client):
    """The reset is refused with 403 in Airbyte's shape; the approval it names."""
    try:
        reset(client)
    except errors.SDKError as error:
        assert error.status_code == 403, error
        body = json.loads(error.body)
        assert body["title"] == "approval-required", body
        data = body["data"]
        assert data["approvalUrl"].endswith(f"/v1/approvals/{data['approvalId']}"), data
        assert data["approvalUrl"] in data["message"], data
        return data["approvalId"]
    raise AssertionError("expected the reset to wait for approval")


def editor_token():
    response = httpx.post(
        f"{BASE}/applications/token",
        json={"client_id": os.environ["EDITOR_ID"], "client_secret": os.environ["EDITOR_SECRET"]},
    )
    response.raise_for_status()
    return response.json()["access_token"]


def approve(token, approval_id):
    return httpx.post(
        f"{AIRLOCK}/v1/approvals/{approval_id}/approve",
        headers={"authorization": f"Bearer {token}"},
        json={"reason": "approved for the scripted rebuild"},
    )


def main():
    client = sdk()

    step("a reset without an approval is refused, naming the request Airlock made")
    first = refused_reset(client)
    step("asking again names the same open request")
    assert refused_reset(client) == first

    step("the requester cannot approve their own request")
    own = approve(editor_token(), first)
    assert own.status_code == 403, own.text
    assert own.json()["code"] == "four_eyes", own.text

    step("another person approves it")
    approved = approve(os.environ["APPROVER_TOKEN"], first)
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved", approved.text

    step("the same SDK call now goes through, once")
    job = reset(client)
    assert job.connection_id == CONNECTION, job
    job_type = job.job_type.value if hasattr(job.job_type, "value") else str(job.job_type)
    assert job_type == "reset", job_type

    step("the approval is used: the next reset waits again, for a new request")
    second = refused_reset(client)
    assert second != first, (first, second)

    print("front approvals ok", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - the test wants the message
        print(f"FAILED: {error!r}", file=sys.stderr, flush=True)
        raise
