"""Airbyte's configuration writes through Airlock's front, with the official SDK.

Run by crates/airlock/tests/it/front_writes.rs. An editor (airbyte:write in
one workspace) creates a source, a destination and a connection there,
renames and deletes them; a runner of the same workspace (no airbyte:write)
is refused each write; the editor is refused in another workspace. Between
steps, Airlock's own catalog (`GET /v1/connections`) must show the change.

Environment:
  AIRLOCK_URL            Airlock's public API base (<airlock>/api/public/v1)
  EDITOR_ID, EDITOR_SECRET   a service account granted `editor` in WORKSPACE_ID
  RUNNER_ID, RUNNER_SECRET   a service account granted `runner` in WORKSPACE_ID
  WORKSPACE_ID, OTHER_WORKSPACE_ID
"""

import json
import os
import sys

import httpx

import airbyte_api
from airbyte_api import api, errors, models

BASE = os.environ["AIRLOCK_URL"]
AIRLOCK = BASE.removesuffix("/api/public/v1")
WORKSPACE = os.environ["WORKSPACE_ID"]
OTHER = os.environ["OTHER_WORKSPACE_ID"]


def step(name):
    print(f"step: {name}", flush=True)


def sdk(client_id, client_secret):
    return airbyte_api.AirbyteAPI(
        server_url=BASE,
        security=models.Security(
            client_credentials=models.SchemeClientCredentials(
                client_id=client_id, client_secret=client_secret, token_url="/applications/token"
            )
        ),
    )


def refused(statuses, call):
    """The call fails with one of `statuses` in Airbyte's error shape."""
    try:
        call()
    except errors.SDKError as error:
        assert error.status_code in statuses, f"expected {statuses}, got {error.status_code}: {error.body}"
        body = json.loads(error.body)
        assert body["status"] == error.status_code, body
        return body
    raise AssertionError(f"expected one of {statuses}")


class Catalog:
    """Airlock's own view of the connections, as the editor sees it."""

    def __init__(self, client_id, client_secret):
        token = httpx.post(
            f"{AIRLOCK}/applications/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
        )
        assert token.status_code == 200, token.text
        self.http = httpx.Client(headers={"authorization": f"Bearer {token.json()['access_token']}"})

    def connection(self, connection_id):
        answer = self.http.get(f"{AIRLOCK}/v1/connections")
        assert answer.status_code == 200, answer.text
        found = [c for c in answer.json()["data"] if c["id"] == connection_id]
        return found[0] if found else None


def postgres_source(name, workspace):
    return models.SourceCreateRequest(
        name=name,
        workspace_id=workspace,
        configuration=models.SourcePostgres(database="app", host="db", username="airbyte", password="pw"),
    )


def main():
    editor = sdk(os.environ["EDITOR_ID"], os.environ["EDITOR_SECRET"])
    runner = sdk(os.environ["RUNNER_ID"], os.environ["RUNNER_SECRET"])
    catalog = Catalog(os.environ["EDITOR_ID"], os.environ["EDITOR_SECRET"])

    step("the runner may not create a source")
    body = refused({403}, lambda: runner.sources.create_source(request=postgres_source("Runner's", WORKSPACE)))
    assert body["title"] == "forbidden", body

    step("the editor may not create one in another workspace")
    refused({403, 404}, lambda: editor.sources.create_source(request=postgres_source("Elsewhere", OTHER)))

    step("the editor creates a source and a destination")
    source = editor.sources.create_source(request=postgres_source("Orders DB", WORKSPACE)).source_response
    assert source.workspace_id == WORKSPACE, source
    assert source.configuration.password == "**********", source.configuration
    destination = editor.destinations.create_destination(
        request=models.DestinationCreateRequest(
            name="Lake",
            workspace_id=WORKSPACE,
            configuration=models.DestinationPostgres(database="lake", host="lake", username="airbyte"),
        )
    ).destination_response
    print(f"source: {source.source_id}", flush=True)

    step("the editor reads the source's streams")
    streams = editor.streams.get_stream_properties(
        request=api.GetStreamPropertiesRequest(source_id=source.source_id, destination_id=destination.destination_id)
    ).stream_properties_response
    names = [s.stream_name for s in streams]
    assert "users" in names, names

    step("the editor creates a connection")
    connection = editor.connections.create_connection(
        request=models.ConnectionCreateRequest(
            name="Orders to Lake",
            source_id=source.source_id,
            destination_id=destination.destination_id,
            configurations=models.StreamConfigurations(
                streams=[models.StreamConfiguration(name="users", sync_mode=models.ConnectionSyncModeEnum.INCREMENTAL_APPEND)]
            ),
        )
    ).connection_response
    assert connection.workspace_id == WORKSPACE, connection
    cid = connection.connection_id
    print(f"connection: {cid}", flush=True)
    seen = catalog.connection(cid)
    assert seen is not None, "the catalog shows the new connection"
    assert seen["name"] == "Orders to Lake", seen
    print(f"slug: {seen['slug']}", flush=True)

    step("the runner may neither rename nor delete it")
    patch = models.ConnectionPatchRequest(name="Hijacked")
    refused({403}, lambda: runner.connections.patch_connection(request=api.PatchConnectionRequest(connection_patch_request=patch, connection_id=cid)))
    refused({403}, lambda: runner.connections.delete_connection(request=api.DeleteConnectionRequest(connection_id=cid)))
    refused({403}, lambda: runner.sources.delete_source(request=api.DeleteSourceRequest(source_id=source.source_id)))

    step("the editor renames the connection and the source")
    renamed = editor.connections.patch_connection(
        request=api.PatchConnectionRequest(
            connection_patch_request=models.ConnectionPatchRequest(name="Orders nightly"), connection_id=cid
        )
    ).connection_response
    assert renamed.name == "Orders nightly", renamed
    assert catalog.connection(cid)["name"] == "Orders nightly", catalog.connection(cid)
    print(f"renamed slug: {catalog.connection(cid)['slug']}", flush=True)
    patched = editor.sources.patch_source(
        request=api.PatchSourceRequest(source_id=source.source_id, source_patch_request=models.SourcePatchRequest(name="Orders"))
    ).source_response
    assert patched.name == "Orders", patched

    step("the editor deletes the connection, then the source and the destination")
    editor.connections.delete_connection(request=api.DeleteConnectionRequest(connection_id=cid))
    assert catalog.connection(cid) is None, "the catalog forgets a deleted connection"
    editor.sources.delete_source(request=api.DeleteSourceRequest(source_id=source.source_id))
    editor.destinations.delete_destination(
        request=api.DeleteDestinationRequest(destination_id=destination.destination_id)
    )
    listed = editor.sources.list_sources(request=api.ListSourcesRequest(workspace_ids=[WORKSPACE], limit=100))
    assert source.source_id not in [s.source_id for s in listed.sources_response.data], "a deleted source is gone"

    print("front writes ok", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # report and fail: the Rust test shows stdout
        print(f"FAILED: {type(error).__name__}: {error}", flush=True)
        sys.exit(1)
