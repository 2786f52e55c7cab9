"""Request-body validation with the JSON Schema files of ``schemas/``, compiled once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson

from erapi.catalog import SCHEMAS_DIR

REQUEST_SCHEMAS = ("relationships-request", "entities-request", "collection-request", "acl-request")
MAX_REPORTED_ERRORS = 50  # a 10,000-item body could otherwise answer with a multi-megabyte error list
MAX_MESSAGE_CHARS = 300


def json_pointer(path: list[str | int]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def load_schema_documents(directory: Path = SCHEMAS_DIR) -> dict[str, dict]:
    """Every schema file of the directory (not the catalog), keyed by file name without ``.json``."""
    return {path.stem: orjson.loads(path.read_bytes()) for path in sorted(directory.glob("*.json"))}


class RequestValidator:
    def __init__(self, documents: dict[str, dict]) -> None:
        registry = jsonschema_rs.Registry([(doc["$id"], doc) for doc in documents.values()])
        self._validators = {
            name: jsonschema_rs.validator_for(documents[name], registry=registry) for name in REQUEST_SCHEMAS
        }

    def errors(self, schema_name: str, instance: Any) -> list[dict[str, str]]:
        """Every violation (up to a bound) as ``{"path": JSON pointer, "message": ...}``; ``[]`` when valid."""
        validator = self._validators[schema_name]
        if validator.is_valid(instance):
            return []
        found = []
        for error in validator.iter_errors(instance):
            found.append({"path": json_pointer(list(error.instance_path)), "message": _message(error)})
            if len(found) >= MAX_REPORTED_ERRORS:
                break
        return found


def _message(error: jsonschema_rs.ValidationError) -> str:
    # "False schema does not allow {...}" says nothing useful: the only false schemas guard system fields
    if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.FalseSchema) and error.instance_path:
        return f"{error.instance_path[-1]} is set by the service and must not be sent"
    message = error.message
    # messages quote the offending value: without a bound, a 4 MiB body could come back several times over
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "... (truncated)"
    return message
