"""Request-body validation with the JSON Schema files of ``schemas/``, compiled once at start-up."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson

from erapi.catalog import SCHEMAS_DIR

REQUEST_SCHEMAS = ("relationships-request", "entities-request", "collection-request", "acl-request", "graph-query",
                   "subscription-request")
MAX_REPORTED_ERRORS = 50  # a 10,000-item body could otherwise answer with a multi-megabyte error list
MAX_MESSAGE_CHARS = 300
CUT = " ... (truncated) ... "
# no valid body comes near it (the schemas allow 4 levels); it is checked before the validator, whose own
# recursion limit (about 255 levels) would otherwise surface as a ValueError
MAX_DEPTH = 32


def json_pointer(path: list[str | int]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def load_schema_documents(directory: Path = SCHEMAS_DIR) -> dict[str, dict]:
    """Every schema file of the directory (not the catalog), keyed by file name without ``.json``."""
    return {path.stem: orjson.loads(path.read_bytes()) for path in sorted(directory.glob("*.json"))}


# Batch bodies (an array of items) whose items' names are checked once per distinct name, not once per item
# (``_NamesOnce``); each by the schema document of its items
BATCH_SCHEMAS = {"relationships-request": "relationship", "entities-request": "entity"}


class RequestValidator:
    def __init__(self, documents: dict[str, dict]) -> None:
        registry = jsonschema_rs.Registry([(doc["$id"], doc) for doc in documents.values()])
        self._validators = {
            name: jsonschema_rs.validator_for(documents[name], registry=registry) for name in REQUEST_SCHEMAS
        }
        self._names_once = {name: _NamesOnce(documents, name, item) for name, item in BATCH_SCHEMAS.items()}

    def errors(self, schema_name: str, instance: Any) -> list[dict[str, str]]:
        """Every violation (up to a bound) as ``{"path": JSON pointer, "message": ...}``; ``[]`` when valid.

        NestedTooDeep when the instance nests deeper than MAX_DEPTH (a valid body never does, so the depth
        is walked only once the fast check has failed).
        """
        validator = self._validators[schema_name]
        names_once = self._names_once.get(schema_name)
        try:
            if validator.is_valid(instance) if names_once is None else names_once.is_valid(instance):
                return []
        except ValueError:  # the validator's recursion limit: the depth check below explains it
            pass
        too_deep = path_beyond_depth(instance, MAX_DEPTH)
        if too_deep is not None:
            raise NestedTooDeep(json_pointer(too_deep))
        found = []
        for error in validator.iter_errors(instance):
            found.append({"path": json_pointer(list(error.instance_path)), "message": _message(error)})
            if len(found) >= MAX_REPORTED_ERRORS:
                break
        return found


class _NamesOnce:
    """The validity of a batch body, its items' property names checked once per distinct name.

    The item schema's ``propertyNames`` regular expression is most of the cost of validating a batch (its 100
    items send the same few names): the body is checked by the schema without that keyword, then each distinct
    name of the items by the same expression (the names of the nested objects keep theirs). Valid exactly when
    the whole schema says so; the errors of an invalid body come from the whole schema, as before."""

    def __init__(self, documents: dict[str, dict], schema_name: str, item_name: str) -> None:
        documents = copy.deepcopy(documents)
        item = documents[item_name]
        names = item.pop("propertyNames")
        common, pointer = names["$ref"].split("#")
        assert common == "common.json" and pointer.startswith("/$defs/"), names  # where the schemas keep it
        self._pattern = re.compile(documents["common"]["$defs"][pointer.removeprefix("/$defs/")]["pattern"])
        registry = jsonschema_rs.Registry([(doc["$id"], doc) for doc in documents.values()])
        self._without_names = jsonschema_rs.validator_for(documents[schema_name], registry=registry)

    def is_valid(self, instance: Any) -> bool:
        if not self._without_names.is_valid(instance):
            return False
        names = set().union(*instance) if isinstance(instance, list) else set(instance)
        matches = self._pattern.fullmatch  # anchored as the schema's ^...$, and no newline before the end
        return all(type(name) is str and matches(name) for name in names)


class NestedTooDeep(ValueError):
    def __init__(self, path: str) -> None:
        super().__init__(f"The request body is nested deeper than {MAX_DEPTH} levels")
        self.path = path


def path_beyond_depth(instance: Any, limit: int) -> list[str | int] | None:
    """The path of the first array or object at level ``limit + 1`` (the body itself is level 1), or None.

    Iterative, so that no depth orjson accepts (1,024) comes near Python's own recursion limit.
    """
    stack: list[tuple[Any, list[str | int]]] = [(instance, [])]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            children = value.items()
        elif isinstance(value, list):
            children = enumerate(value)
        else:
            continue
        if len(path) >= limit:
            return path
        stack.extend((child, [*path, key]) for key, child in reversed(list(children)))
    return None


def _message(error: jsonschema_rs.ValidationError) -> str:
    # "False schema does not allow {...}" says nothing useful: the only false schemas guard system fields
    if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.FalseSchema) and error.instance_path:
        return f"{error.instance_path[-1]} is set by the service and must not be sent"
    message = error.message
    # messages quote the offending value first: without a bound, a 4 MiB body could come back several times
    # over; the middle goes, so that the reason at the end ("is longer than 4096 characters") stays
    if len(message) > MAX_MESSAGE_CHARS:
        keep = (MAX_MESSAGE_CHARS - len(CUT)) // 2
        message = message[:keep] + CUT + message[-keep:]
    return message
