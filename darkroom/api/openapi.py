"""The API's OpenAPI document, generated from the app, and `python -m darkroom.api.openapi`
which writes it to openapi.yaml (committed; a test fails when it is stale).

Two things the resolver cannot say by itself are settled here, the same for every route:
its request checks answer 400 (not 422) with the error body every error has, and each
operation states its authorization, SigV4 unless the route opted out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

DOCUMENT_PATH = Path(__file__).with_name("openapi.yaml")
SIGV4 = "sigv4"
SIGNED: list[dict[str, list[str]]] = [{SIGV4: []}]
# A route open to anyone says so with openapi_extensions=PUBLIC (the resolver drops an
# empty `security=[]`); every other route takes the document's default, SIGNED.
PUBLIC: dict[str, Any] = {"security": []}

DESCRIPTION = """\
A studio's front door. Photographers create a job, upload its RAW files straight to
S3 through presigned PUT URLs, submit it, follow it, reprocess it, and share the
finished renditions with a client through a link that needs no AWS account.

Every operation states its authorization: SigV4 (IAM, service `execute-api`) for the
studio's routes, none for the share link's (`/share/{token}...`), whose token is the
only key, and the gallery page's script. API Gateway enforces it in AWS; the embedded
local cloud's routes are open.

Every error is JSON: `{"error": code, "message": text, ...}` with 400 for bad input,
404 for an unknown job, share or token, 409 for the wrong state, 410 for an expired
or revoked share and 413 for too much.
"""


def document() -> dict[str, Any]:
    from darkroom.api.app import app

    generated = app.get_openapi_json_schema(
        title="darkroom API",
        version="1.0.0",
        description=DESCRIPTION,
        tags=["photographer", "client"],
        security_schemes={
            SIGV4: APIKey.model_validate(
                {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": APIKeyIn.header,
                    "description": "AWS SigV4 (service execute-api); open on the local cloud.",
                }
            )
        },
        security=SIGNED,
    )
    doc: dict[str, Any] = json.loads(generated)
    schemas = doc["components"]["schemas"]
    # The resolver's 422 bodies: its request checks answer 400 with ErrorBody here, and a
    # route's answer that fails its model is a 500.
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(name, None)
    refused = {
        "description": "Bad input; the message names what and why.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    for item in doc["paths"].values():
        for operation in item.values():
            responses = operation["responses"]
            if responses.pop("422", None) is not None:
                responses.setdefault("400", refused)
            for status, response in responses.items():
                if status == "204":
                    response.pop("content", None)
            operation.setdefault("security", SIGNED)
            operation.pop("deprecated", None)
    return doc


def render() -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True  # each operation spelled out, no &anchors

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(document(), Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)


def main() -> None:
    DOCUMENT_PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {DOCUMENT_PATH}", file=sys.stderr)


if __name__ == "__main__":
    main()
