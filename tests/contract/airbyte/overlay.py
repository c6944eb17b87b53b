"""What real Airbyte servers answer beyond their OpenAPI document
(../shared/airbyte/README.md), laid over the document in memory before
schemathesis reads it. The document file itself is never changed.

Only statuses and values real Airbyte is known to answer are added; the
checks themselves stay as they are.
"""
import schemathesis

# 400: Micronaut's binding errors (an id that is not a UUID, a body that is
# not JSON, a missing required property) on every route that takes input.
# 404: "resource-not-found" for an id named in the body or path.
# 409: a sync already running (POST /jobs), a job not running (DELETE).
# 422: refresh jobs (POST /jobs); a create without a connector type;
# `jobType=clear` or `refresh` on the job list, as the simulator answers it
# (not yet checked against Airbyte's source).
EXTRA = {
    ("get", "/jobs"): ["400", "422"],
    ("post", "/jobs"): ["404", "409", "422"],
    ("get", "/jobs/{jobId}"): ["400"],
    ("delete", "/jobs/{jobId}"): ["400", "409"],
    ("get", "/connections"): ["400"],
    ("post", "/connections"): ["404"],
    ("patch", "/connections/{connectionId}"): ["400"],
    ("get", "/workspaces"): ["400"],
    ("patch", "/workspaces/{workspaceId}"): ["404"],
    ("get", "/sources"): ["400"],
    ("post", "/sources"): ["404", "422"],
    ("patch", "/sources/{sourceId}"): ["400"],
    ("put", "/sources/{sourceId}"): ["400"],
    ("get", "/destinations"): ["400"],
    ("post", "/destinations"): ["422"],
    ("patch", "/destinations/{destinationId}"): ["400"],
    ("put", "/destinations/{destinationId}"): ["400"],
}

ERROR = {"description": "Airbyte's error (not in the document)",
         "content": {"application/json": {"schema": {"type": "object"}}}}

# 401 (missing or expired bearer): the web framework's body, not a problem.
UNAUTHORIZED = {
    "description": "No valid bearer token (README: the framework's body)",
    "content": {"application/json": {"schema": {
        "type": "object",
        "required": ["message", "_links", "_embedded"],
        "properties": {
            "message": {"const": "Unauthorized"},
            "_links": {"type": "object", "required": ["self"]},
            "_embedded": {
                "type": "object",
                "required": ["errors"],
                "properties": {"errors": {"type": "array", "minItems": 1}},
            },
        },
    }}},
}


def _fix_uuid_format(node):
    # The document spells some formats "UUID"; JSON Schema formats are
    # case-sensitive, so those ids were unconstrained strings.
    if isinstance(node, dict):
        if node.get("format") == "UUID":
            node["format"] = "uuid"
        for value in node.values():
            _fix_uuid_format(value)
    elif isinstance(node, list):
        for value in node:
            _fix_uuid_format(value)


@schemathesis.hook
def before_load_schema(context, raw_schema):
    _fix_uuid_format(raw_schema)
    for path, item in raw_schema["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation and operation.get("security") != []:
                operation["responses"].setdefault("401", UNAUTHORIZED)
    # Creates and updates of sources and destinations need a body (the
    # document leaves `required` out; Airbyte answers 400 without one).
    for path, method in [("/sources", "post"), ("/sources/{sourceId}", "patch"),
                         ("/sources/{sourceId}", "put"), ("/destinations", "post"),
                         ("/destinations/{destinationId}", "patch"),
                         ("/destinations/{destinationId}", "put")]:
        raw_schema["paths"][path][method]["requestBody"]["required"] = True
    # Jackson binds an explicit null as "absent" for an optional property.
    ws = raw_schema["components"]["schemas"]["WorkspaceCreateRequest"]["properties"]
    ws["organizationId"] = {"anyOf": [ws["organizationId"], {"type": "null"}]}
    for (method, path), statuses in EXTRA.items():
        responses = raw_schema["paths"][path][method]["responses"]
        for status in statuses:
            responses.setdefault(status, ERROR)
    # Servers report `queued` since May 2026.
    status_enum = raw_schema["components"]["schemas"]["JobStatusEnum"]["enum"]
    if "queued" not in status_enum:
        status_enum.append("queued")
