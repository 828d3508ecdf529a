"""The API's OpenAPI document, as checked in at docs/openapi.json (tests/api/test_openapi.py
keeps the two equal, so that every change to the API is a deliberate one).

    python -m ledger.http.openapi > docs/openapi.json
"""

from __future__ import annotations

import sys
from typing import Any, cast

import orjson


def openapi_document() -> bytes:
    from ledger.http.app import create_app

    # the routes use the service only when called: the schema needs none
    app = create_app(cast(Any, None))
    return orjson.dumps(app.openapi(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


if __name__ == "__main__":
    sys.stdout.buffer.write(openapi_document())
