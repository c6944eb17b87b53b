"""Clients that write their whole body before reading the answer.

Run by crates/airlock/tests/it/abuse.rs. Python's urllib (like requests)
sends the request's body in full, then reads the answer: a server that
answers early and closes at once leaves it with a broken pipe instead of
the answer. Prints a JSON report of the statuses it read.

Environment:
  AIRLOCK_URL    Airlock's base URL
  AIRLOCK_TOKEN  a valid bearer token
"""

import json
import os
import urllib.error
import urllib.request

BASE = os.environ["AIRLOCK_URL"]
TOKEN = os.environ["AIRLOCK_TOKEN"]
SYNC = BASE + "/v1/connections/postgres-snowflake/sync"


def status_of(body: bytes, token: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    request = urllib.request.Request(SYNC, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


report = {
    # Past the 256 KiB limit: refused, and the answer is read.
    "too_large": status_of(b"x" * (1024 * 1024), TOKEN),
    # Within the limit but unauthenticated: refused unread.
    "unauthenticated": status_of(b"x" * (200 * 1024), None),
    "too_large_unauthenticated": status_of(b"x" * (2 * 1024 * 1024), None),
}
print(json.dumps(report))
