"""The OpenAPI 3.1 description of the service, built at start-up from the route table and the schema files.

Bodies are never described here: every request and response schema is a file of ``schemas/`` (the same
files the service validates with), turned into ``components.schemas`` by ``erapi.schema_components`` (one
component per file and per ``$defs`` entry, in the form client generators take). What this module adds
is what the files cannot say: which operation takes which headers, parameters, scopes and body, and
answers with which codes.

Each route's operation is written where the route is, in the one route table (``erapi/routes.py``), in the
vocabulary defined here: shared parameters, error responses, and the shapes several operations share
(``batch_write``, ``document_list``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any, Iterable, Mapping

from erapi.catalog import SCHEMAS_DIR
from erapi.config import ChangesConfig, JobsConfig, ServerConfig
from erapi.kinds import ENTITIES, RELATIONSHIPS, Kind
from erapi.schema_components import COMPONENTS, component_name, load_components
from erapi.web import READ_SCOPE, WRITE_SCOPE

OPENAPI_VERSION = "3.1.0"
RESPONSES_DIR = SCHEMAS_DIR / "responses"
SECURITY_SCHEME = "bearerAuth"
# the item limits of the default configuration (server.max_items, jobs.max_items), stated by the description
SYNC_ITEM_LIMIT = ServerConfig().max_items
ASYNC_ITEM_LIMIT = JobsConfig().max_items


def schema(stem: str, definition: str = "") -> dict[str, str]:
    """A reference to a schema file's component, or to one of its $defs: ``schema("common", "id")``."""
    return {"$ref": COMPONENTS + component_name(stem, definition)}


def one_or_many(item: str, array: str) -> dict[str, Any]:
    return {"oneOf": [schema(item), schema(array)]}


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # "header", "query" or "path"
    schema: Mapping[str, Any]
    description: str = ""
    required: bool = False
    example: Any = None

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"name": self.name, "in": self.location, "schema": dict(self.schema)}
        if self.description:
            document["description"] = self.description
        if self.example is not None:
            document["example"] = self.example
        if self.required or self.location == "path":
            document["required"] = True
        return document


@dataclass(frozen=True)
class Response:
    schema: str | None = None  # a file of schemas/responses, or None for a body described by media_types alone
    description: str = ""
    headers: tuple[str, ...] = ()  # names from RESPONSE_HEADERS, always sent with this response
    media_types: tuple[str, ...] = ("application/json",)


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    responses: Mapping[int, Response]
    scopes: tuple[str, ...] = ()  # any one of them suffices; () means no authentication
    parameters: tuple[Parameter, ...] = ()
    request: Mapping[str, Any] | None = None  # the JSON body's schema (references to schema files)
    request_example: Any = None  # shown by the docs page, sent first by schemathesis
    description: str = ""
    operation_id: str = ""

    @property
    def query_names(self) -> frozenset[str]:
        """Query parameter names this operation takes."""
        return frozenset(parameter.name for parameter in self.parameters if parameter.location == "query")


# ---- shared pieces ------------------------------------------------------------------------------------------------

# the contract's example (CONTRACT.md): two collections, an air handler in each, a relationship across them
EXAMPLE_COLLECTION = "august_14_81"
EXAMPLE_ENTITY = {"id": "ac4d999e-3798-11e8-a1af-c8e0eb18b031", "entityType": "BRICK_0_4__AHU",
                  "entityName": "AHU-1"}
EXAMPLE_RELATIONSHIP = {
    "id": "5091e806-39b1-11e8-ae2c-c8e0eb18b031",
    "sourceEntityId": "ac4d999e-3798-11e8-a1af-c8e0eb18b031",
    "destinationEntityId": "ac4d8cd8-3798-11e8-a527-c8e0eb18b031",
    "relationshipName": "test",
    "relationshipType": "BRICK_0_4__isFedBy_Equipment_Equipment",
    "sourceERCollectionId": "august_14_81",
    "destinationERCollectionId": "august_14_8",
}
EXAMPLES = {ENTITIES: EXAMPLE_ENTITY, RELATIONSHIPS: EXAMPLE_RELATIONSHIP}

ERCOLLECTION = Parameter(
    "ercollectionid", "header", schema("common", "collectionId"), required=True,
    description="The ERCollection (partition) the request works in; the caller needs a grant on it.",
    example=EXAMPLE_COLLECTION,
)


def boolean_parameter(name: str, location: str, description: str, default: bool = False) -> Parameter:
    """A true/false parameter; the service also takes the words in any letter case (`TRUE`, `False`)."""
    return Parameter(name, location, {"type": "boolean", "default": default},
                     description=f"{description} Case-insensitive.")


ASYNC = boolean_parameter(
    "async", "header",
    f"`false` (default): apply the batch now and answer 207; at most {SYNC_ITEM_LIMIT} items "
    f"(`server.max_items`). `true`: store it as a job and answer 202 with `data.transactionId` and "
    f"`data.tracker`; at most {ASYNC_ITEM_LIMIT:,} items (`jobs.max_items`). Over the limit: 413. The limits "
    "are those of the default configuration.",
)
CORRELATION = Parameter(
    "X-Correlation-Id", "header", {"type": "string"},
    description="Echoed into every status record of the transaction when it is 1-256 printable characters; "
                "otherwise (or when absent) the transaction id stands in for it.",
)
INCLUDE_SYSTEM_DATA = boolean_parameter(
    "includeSystemData", "query", "`true` adds `sysData` (versions, timestamps, who wrote it).")


def path_parameter(name: str, value_schema: Mapping[str, Any], description: str = "", example: Any = None) -> Parameter:
    return Parameter(name, "path", value_schema, description=description, required=True, example=example)


STATUS_ID = {"type": "string", "minLength": 1, "maxLength": 256}
STATUS_TIME = {"type": "string", "format": "date-time"}
STATUS_STATES = ("Requested", "Processing", "Completed", "Failed")
# the tracker's query, exactly what erapi/handlers/status.py reads; at least one of the first six is required
STATUS_QUERY = (
    Parameter("transactionid", "query", STATUS_ID, "Records of this transaction (`transactionId` of a write)."),
    Parameter(RELATIONSHIPS.tracker_parameter, "query", STATUS_ID, "Records of this relationship id."),
    Parameter(ENTITIES.tracker_parameter, "query", STATUS_ID, "Records of this entity id.",
              example=EXAMPLE_ENTITY["id"]),
    Parameter("correlationid", "query", STATUS_ID, "Records of this correlation id (`X-Correlation-Id` of a write)."),
    Parameter("startTime", "query", STATUS_TIME, "Records received at or after this moment (ISO 8601; UTC when "
                                                  "it has no offset)."),
    Parameter("endTime", "query", STATUS_TIME, "Records received at or before this moment (ISO 8601; UTC when "
                                                "it has no offset)."),
    Parameter("state", "query", {"type": "string", "enum": list(STATUS_STATES)},
              "Only the records now in this state, among those the other filters select (not a filter of its "
              "own: one of the six above is still required). `?transactionid=T&state=Failed`: a job's failures."),
    Parameter("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
              "Records per page, 1-1000 (default 100)."),
    Parameter("continuationToken", "query", {"type": "string", "minLength": 1, "maxLength": 2048},
              "`paging.continuationToken` of the previous page, with the same filters."),
)

_PAIR = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}=[0-9]{1,18}"
SEQUENCE_REQUEST = rf"^ *([0-9]{{1,18}}|{_PAIR}( *, *{_PAIR}){{0,31}}) *$"  # what erapi/consistency.py accepts
SEQUENCE_PAIRS = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}=[0-9]+(, [A-Za-z0-9][A-Za-z0-9_.:-]{0,127}=[0-9]+)*$"
RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "WWW-Authenticate": {"description": "`Bearer` with the reason", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "string",
                                                                                  "pattern": "^[0-9]+$"}},
    "ETag": {"description": "The document's version as a strong entity tag, e.g. `\"3\"`: send it as If-Match",
             "schema": {"type": "string", "pattern": '^"[1-9][0-9]*"$'}},
    "X-Transaction-Id": {"description": "The transaction id of the write (also in the body)",
                         "schema": {"type": "string", "format": "uuid"}},
    "X-ER-Sequence": {"description": "Each collection the write changed with its change-feed sequence number "
                                     "after the write, e.g. `site=42` or `site=42, plant=7` (the request's "
                                     "collection first, also when nothing changed). Send it back as the "
                                     "X-ER-Sequence request header to read your writes through any process",
                      "schema": {"type": "string", "pattern": SEQUENCE_PAIRS}},
}

ERROR = "error"


def errors(*codes: int, **descriptions: str) -> dict[int, Response]:
    """Error responses, each with the error envelope; ``e413="..."`` overrides one description."""
    headers = {401: ("WWW-Authenticate",), 429: ("Retry-After",), 503: ("Retry-After",)}
    return {
        code: Response(ERROR, descriptions.get(f"e{code}", ""), headers.get(code, ()))
        for code in codes
    }


AUTHENTICATED = (401, 403, 429)  # 429: only when rate limiting is enabled ([ratelimit] in the config)
STORAGE = (503,)
WRITE_REQUEST = (400, 408, 413, 415)  # 408: the body did not arrive within server.body_timeout_seconds


def read(summary: str, tag: str, parameters: tuple[Parameter, ...], answer: Response, *codes: int, operation_id: str,
         description: str = "", scopes: tuple[str, ...] = (READ_SCOPE,), **texts: str) -> Operation:
    """A read of what a collection holds: 200 with ``answer``; else 400, the authentication errors, ``codes`` and
    503 (``e403="..."`` and the like describe one of them)."""
    return Operation(summary=summary, tag=tag, scopes=scopes, parameters=parameters,
                     responses={200: answer, **errors(400, *AUTHENTICATED, *codes, *STORAGE, **texts)},
                     description=description, operation_id=operation_id)


CREATE_INVERSE = boolean_parameter(
    "createInverse", "query",
    "`true`: also write the inverse of every relationship written, in the collection of its source end, with an "
    "id derived from the original; reported as an item of its own. Synchronous only.")
CLASS_FILTERS = (
    Parameter("sourceEntityType", "query", schema("common", "typeName"), example="BRICK_0_4__AHU",
              description="Only types an entity of this class (or a subclass) may have as source."),
    Parameter("destinationEntityType", "query", schema("common", "typeName"), example="BRICK_0_4__AHU",
              description="Only types an entity of this class (or a subclass) may have as destination."),
)

VALIDATE_ONLY = boolean_parameter(
    "validateOnly", "query",
    "`true`: a dry run. Answers the 207 the same request would get now (sync or async: the per-item outcomes a "
    "job would record), with `validateOnly: true` and null trackers, and writes nothing: no document, version, "
    "status record or job. A concurrent writer may change the real outcome.")
IF_MATCH = Parameter(
    "If-Match", "header", {"type": "string", "pattern": r'^(\*|(W/)?"[1-9][0-9]{0,15}")$'},
    description="One-item synchronous writes only: write only if the stored version is this ETag (from a read, "
                "e.g. `\"3\"`); `*`: only if the id has a version. Otherwise 412 and nothing is written. In a "
                "batch, give each item `expectedVersion` instead.",
    example='"1"',
)
IF_NONE_MATCH = Parameter(
    "If-None-Match", "header", {"type": "string", "enum": ["*"]},  # not const: generators refuse a const header
    description="`*`, one-item synchronous writes only: create only — 412 if the id already has a version.",
)
IDEMPOTENCY_KEY = Parameter(
    "Idempotency-Key", "header", {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
    description="1-255 visible ASCII characters, e.g. a UUID. The first request with a key (per principal and "
                "collection) is processed and its answer kept for `idempotency.retention_seconds` (a day); a retry "
                "with the same key and the same request gets that answer again (same transactionId, header "
                "`Idempotent-Replayed: true`) and writes nothing. The same key with another request: 422. A retry "
                "while the first still runs waits for it (at most `idempotency.wait_seconds`), then 409. Error "
                "answers are not kept. Ignored by a dry run, which stores nothing.",
    example="3f6c1b9e-2a1d-4c8e-9a57-0b6a1c2d3e4f",
)
ATOMIC = boolean_parameter(
    "atomic", "query",
    "`true`, synchronous requests only: all or nothing. If any item fails, nothing is written and every other item "
    "is reported as `Not written: the batch is atomic (atomic=true) and N of its items failed`; readers never see "
    "part of the batch. A backend without the means (a standalone MongoDB, FerretDB 1.x) refuses with 400 naming "
    "the reason.")
WRITE_OPTIONS = (VALIDATE_ONLY, ATOMIC, IF_MATCH, IF_NONE_MATCH, IDEMPOTENCY_KEY)


def batch_write(kind: Kind) -> Operation:
    extra = (CREATE_INVERSE,) if kind is RELATIONSHIPS else ()
    return Operation(
        summary=f"Upsert {kind.plural_label.lower()}: one object or an array, up to {SYNC_ITEM_LIMIT} (sync) or "
                f"{ASYNC_ITEM_LIMIT:,} (async: true)",
        tag=kind.plural_label,
        scopes=(WRITE_SCOPE,),
        parameters=(ERCOLLECTION, ASYNC, CORRELATION, *extra, *WRITE_OPTIONS),
        request=one_or_many(kind.label.lower(), f"{kind.name}-request"),
        request_example=EXAMPLES[kind],
        responses={
            207: Response("batch", "Every item reported once, in request order, as success or failure "
                          "(a one-item write that succeeded also sends its new version as `ETag`; a replayed "
                          "answer to an Idempotency-Key retry adds `Idempotent-Replayed: true`)",
                          ("X-Transaction-Id", "X-ER-Sequence")),
            202: Response("job-accepted", "async: true — the batch is stored as a job; follow the tracker",
                          ("X-Transaction-Id",)),
            **errors(*WRITE_REQUEST, *AUTHENTICATED, 409, 412, 422, *STORAGE,
                     e409="Idempotency-Key: the first request with this key is still being processed (with "
                          "Retry-After)",
                     e412="If-Match / If-None-Match: the stored version is not the one expected; nothing written",
                     e422="Idempotency-Key: the key was used with a different request",
                     e413=f"More than {SYNC_ITEM_LIMIT} items without async, more than {ASYNC_ITEM_LIMIT:,} "
                          "with async: true, or over the byte limit",
                     e429="Rate limit of the caller, or job backpressure"),
        },
        description=f"The body schema allows {ASYNC_ITEM_LIMIT:,} items, the async limit; a synchronous "
                    f"request (no `async: true`) takes at most {SYNC_ITEM_LIMIT} and answers 413 beyond. Both "
                    "limits are settings (`server.max_items`, `jobs.max_items`); these are their defaults.",
        operation_id=f"upsert{kind.plural_label}",
    )


def document_read(kind: Kind) -> Operation:
    singular = kind.label.lower()
    return read(f"Read one {singular} by id", kind.plural_label,
                (id_parameter(kind), ERCOLLECTION, INCLUDE_SYSTEM_DATA, INCLUDE_INACTIVE),
                Response(f"{singular}-read", f"`data` holds the {singular}", ("ETag",)), 404,
                operation_id=f"get{kind.label}")


def catalog_list(label: str, response: str) -> Operation:
    return Operation(
        summary=f"List the {label} of the type catalog",
        tag="Type catalog",
        scopes=(READ_SCOPE,),
        responses={200: Response(response, f"Every {label[:-1]} of the catalog"), **errors(*AUTHENTICATED)},
        operation_id=f"list{label.title().replace(' ', '')}",
    )


def catalog_item(label: str, response: str) -> Operation:
    example = EXAMPLE_RELATIONSHIP["relationshipType"] if label.startswith("relationship") else "BRICK_0_4__AHU"
    return Operation(
        summary=f"Read one {label} of the type catalog",
        tag="Type catalog",
        scopes=(READ_SCOPE,),
        parameters=(path_parameter("type", schema("common", "typeName"), example=example),),
        responses={200: Response(response, f"`data` holds the {label}"), **errors(*AUTHENTICATED, 404)},
        operation_id=f"get{label.title().replace(' ', '')}",
    )



# ---- reads of many, and deletes ----------------------------------------------------------------------------------

PAGE_SIZE = Parameter(
    "PageSize", "header", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    description="Items per page, 1-1000 (default 100); anything else is a 400.",
)
CONTINUATION_TOKEN = Parameter(
    "continuationToken", "header", {"type": "string", "maxLength": 4096},
    description="`paging.continuationToken` of the previous page: opaque and signed, valid only with the same "
                "collection, path and filters; a tampered or foreign token is a 400. Absent or empty: the first "
                "page.",
)
INCLUDE_INACTIVE = boolean_parameter(
    "includeInactive", "query", "`true` also shows soft-deleted documents (`isActive: false`).")
INCLUDE_SUBTYPES = boolean_parameter(
    "includeSubtypes", "query", "`true` also lists entities of every subclass of the type.")
RELATIONSHIP_FILTERS = (
    Parameter("sourceEntityId", "query", schema("common", "id"), example=EXAMPLE_RELATIONSHIP["sourceEntityId"],
              description="Only relationships from this entity."),
    Parameter("destinationEntityId", "query", schema("common", "id"),
              description="Only relationships to this entity (in whichever collection)."),
    Parameter("destinationERCollectionId", "query", schema("common", "collectionId"),
              description="Only relationships whose destination lives in this collection."),
)
DIRECTION = Parameter(
    "direction", "query", {"type": "string", "enum": ["outgoing", "incoming", "both"], "default": "both"},
    description="`outgoing`: stored in this collection with the entity as source. `incoming`: stored in any "
                "collection with the entity as destination, shown only from collections the caller may read. "
                "`both` (default): either, each relationship once.",
)
CASCADE = boolean_parameter(
    "cascade", "query",
    "`true`: also deactivate every active relationship referencing the entity, in whichever collection it lives "
    "(a write grant on each is needed).")
PAGED = (PAGE_SIZE, CONTINUATION_TOKEN)
FEED_PARAMETERS = (
    Parameter("after", "query", {"type": "integer", "minimum": 0, "maximum": 10**18, "default": 0},
              "Changes with a sequence number above this one (0: from the start)", example=0),
    Parameter("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
              "At most this many changes"),
    Parameter("wait", "query", {"type": "number", "minimum": 0, "maximum": ChangesConfig().max_wait_seconds,
                                "default": 0},
              "Long poll: when nothing is new, wait up to this many seconds for a change (at most "
              "`changes.max_wait_seconds`); answers as soon as one comes"),
    boolean_parameter("includeDocuments", "query", "false: leave each change's document out", default=True),
)
SEQUENCE = Parameter(
    "X-ER-Sequence", "header", {"type": "string", "maxLength": 4096, "pattern": SEQUENCE_REQUEST},
    "Read your writes: the X-ER-Sequence of a write's answer (or a bare number for the request's collection). "
    "The request is answered once this server reflects those sequence numbers (grants read afresh); 503 with "
    "Retry-After after `changes.read_your_writes_wait_seconds`",
)
GRAPH_PARAMETERS = (
    Parameter("depth", "query", {"type": "integer", "minimum": 1, "maximum": 5, "default": 1},
              description="Hops from the entity, 1-5. Left out with `transitive=true`."),
    replace(DIRECTION, description="Which way each hop follows relationships. With `relationshipType`, a type "
                                   "is also followed as its inverse stored the other way round (`A feeds B` and "
                                   "`B isFedBy A` are one fact)."),
    Parameter("relationshipType", "query", {"type": "array", "items": schema("common", "typeName")},
              example=["feeds"],
              description="Follow only these (repeatable): a relationship type or alias, or a Brick relationship "
                          "(`feeds`, `BRICK_1_4__feeds`) meaning each of its types. Unknown → 400."),
    Parameter("entityType", "query", {"type": "array", "items": schema("common", "typeName")},
              example=["Point"],
              description="Answer only entities of these classes or their subclasses (repeatable; a type, alias "
                          "or Brick class name such as `VAV`); the walk still passes through the others."),
    Parameter("limit", "query", {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000},
              description="At most this many entities are visited; `truncated` says the limit cut the walk."),
    boolean_parameter("transitive", "query",
                      "`true`: follow the `relationshipType`s, which must all be transitive Brick relationships "
                      "(feeds, isFedBy, hasPart, isPartOf, hasLocation, isLocationOf), as far as they go."),
    INCLUDE_SYSTEM_DATA,
)

DELETE_IF_MATCH = replace(
    IF_MATCH, description="Delete only if the stored version is this ETag (from a read, e.g. `\"3\"`); `*`: only if "
                          "the id has a version. Otherwise 412 and nothing is deleted (checked before 404 and 409).")
TYPE_EXAMPLES = {RELATIONSHIPS: EXAMPLE_RELATIONSHIP["relationshipType"], ENTITIES: EXAMPLE_ENTITY["entityType"]}


def document_list(kind: Kind, summary: str, *extra: Parameter, operation_id: str,
                  description: str = "") -> Operation:
    return read(summary, kind.plural_label, (*extra, ERCOLLECTION, *PAGED, INCLUDE_SYSTEM_DATA, INCLUDE_INACTIVE),
                Response(f"{kind.label.lower()}-list",
                         "One page, in id order; `paging.continuationToken` is null on the last page"),
                404, e404="The type is not in the catalog", description=description, operation_id=operation_id)


def type_parameter(kind: Kind) -> Parameter:
    return path_parameter("type", schema("common", "typeName"), example=TYPE_EXAMPLES[kind])


def id_parameter(kind: Kind) -> Parameter:
    return path_parameter(kind.id_field, schema("common", "id"), example=EXAMPLES[kind]["id"])


def versions(kind: Kind) -> Operation:
    singular = kind.label.lower()
    system_data = boolean_parameter("includeSystemData", "query", "`false` leaves out `sysData` (shown by default "
                                    "here).", default=True)
    return read(f"Every version of one {singular}, oldest first, with sysData (a deletion is a version with "
                "isActive false)", kind.plural_label, (id_parameter(kind), ERCOLLECTION, *PAGED, system_data),
                Response(f"{singular}-list", "One page of versions"), 404,
                e404="The id never existed in the collection", operation_id=f"get{singular.title()}Versions")


def delete(kind: Kind, *extra: Parameter, description: str) -> Operation:
    singular = kind.label.lower()
    return Operation(
        summary=f"Soft-delete one {singular}: a new version with isActive false",
        tag=kind.plural_label,
        scopes=(WRITE_SCOPE,),
        parameters=(id_parameter(kind), ERCOLLECTION, CORRELATION, *extra, DELETE_IF_MATCH),
        responses={
            200: Response("delete", "What was deactivated, with versions and trackers",
                          ("X-Transaction-Id", "X-ER-Sequence")),
            **errors(400, *AUTHENTICATED, 404, 412, *STORAGE, *(() if kind is RELATIONSHIPS else (409,)),
                     e412=f"If-Match: the {singular}'s version is not the one expected; nothing deleted",
                     e404=f"No active {singular} of that id in the collection",
                     e409="Active relationships reference the entity (without cascade=true)"),
        },
        description=description,
        operation_id=f"delete{singular.title()}",
    )


RELATIONSHIP_TYPES = catalog_list("relationship types", "relationship-types")
COLLECTION_ID = path_parameter("collectionId", schema("common", "collectionId"), example=EXAMPLE_COLLECTION)


# ---- building the document ----------------------------------------------------------------------------------------

def build_document(operations: Mapping[tuple[str, str], Operation], *, version: str = "") -> dict[str, Any]:
    """The OpenAPI document of ``operations`` ((method, path) -> operation, in the order the paths are listed):
    ``erapi.routes.OPERATIONS``, the operations of the route table."""
    components = load_components((SCHEMAS_DIR, RESPONSES_DIR))
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), operation in operations.items():
        if _reads_its_collection(path, operation):
            operation = replace(operation, parameters=(*operation.parameters, SEQUENCE))
        paths.setdefault(path, {})[method.lower()] = _operation(operation)
    for name in _referenced_components(paths):
        if name not in components:
            raise ValueError(f"An operation references schema {name!r}, which is no file of schemas/")
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "erapi — Entity-Relationship service for Brick building metadata",
            "version": version or "0",
            "description": "Entities and typed relationships, partitioned into ERCollections. Every JSON "
                           "response carries `status: {message, code}`; errors add `errors` with JSON-pointer "
                           "paths. Bearer tokens (JWT): reads need `apollo_read`, writes `apollo_write`; the "
                           "names listed under each operation's security are the scopes it accepts.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": name} for name in dict.fromkeys(op.tag for op in operations.values())],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                  "description": "`erapi token` mints local tokens; production tokens come "
                                                 "from the identity provider (RS256/ES256, JWKS)."},
            },
        },
    }


def _reads_its_collection(path: str, operation: Operation) -> bool:
    """Whether the operation checks the caller's grant on the collection of its ercollectionid header or of its
    /apollo/er/ercollections/{collectionId} path: those are the ones that take X-ER-Sequence."""
    return ERCOLLECTION in operation.parameters or path.startswith("/apollo/er/ercollections/")


def _operation(operation: Operation) -> dict[str, Any]:
    result: dict[str, Any] = {"summary": operation.summary, "tags": [operation.tag]}
    if operation.operation_id:
        result["operationId"] = operation.operation_id
    if operation.description:
        result["description"] = operation.description
    # an empty list states "no authentication" explicitly
    result["security"] = [{SECURITY_SCHEME: [scope]} for scope in operation.scopes]
    if operation.parameters:
        result["parameters"] = [parameter.document() for parameter in operation.parameters]
    if operation.request is not None:
        media: dict[str, Any] = {"schema": dict(operation.request)}
        if operation.request_example is not None:
            media["example"] = operation.request_example
        result["requestBody"] = {"required": True, "content": {"application/json": media}}
    result["responses"] = {str(code): _response(code, response)
                           for code, response in sorted(operation.responses.items())}
    return result


def _response(code: int, response: Response) -> dict[str, Any]:
    document: dict[str, Any] = {"description": response.description or HTTPStatus(code).phrase}
    media = {"schema": schema(response.schema)} if response.schema is not None else {}
    document["content"] = {media_type: media for media_type in response.media_types}
    if response.headers:
        document["headers"] = {name: {**RESPONSE_HEADERS[name], "required": True} for name in response.headers}
    return document


def _referenced_components(node: Any) -> set[str]:
    found = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(COMPONENTS):
            found.add(ref.split("/")[3])
        for value in node.values():
            found |= _referenced_components(value)
    elif isinstance(node, list):
        for value in node:
            found |= _referenced_components(value)
    return found


def route_table(app_routes: Iterable[Any]) -> list[tuple[str, str]]:
    """(method, path) of every route of an aiohttp router, HEAD left out (aiohttp adds it to every GET)."""
    pairs = []
    for route in app_routes:
        if route.method in ("HEAD", "*"):
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path is None:
            continue  # a static directory: not an operation
        pairs.append((route.method, path))
    return pairs
