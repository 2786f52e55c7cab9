"""Every route of the service, in one table: its method, path, handler and OpenAPI operation.

The aiohttp router (``erapi.app``), the OpenAPI document (``erapi.openapi.build_document``) and the check that
refuses an unknown query parameter (``erapi.middleware``) are all built from ``ROUTES``: an endpoint is one
entry here, and a parameter it takes is one ``Parameter`` of its operation. The vocabulary the operations are
written in (shared parameters, responses, operation shapes) is ``erapi.openapi``.
"""

from __future__ import annotations

import re

from dataclasses import dataclass, replace
from typing import Awaitable, Callable

from aiohttp import web

from erapi.handlers import (
    changes,
    collections,
    deletes,
    docs,
    entities,
    explorer,
    export,
    graph,
    health,
    metrics,
    reads,
    relationships,
    status,
    subscriptions,
)
from erapi.handlers import schema as schema_handlers
from erapi.kinds import ENTITIES, RELATIONSHIPS
from erapi.openapi import (
    AUTHENTICATED,
    CASCADE,
    CLASS_FILTERS,
    COLLECTION_ID,
    DIRECTION,
    ERCOLLECTION,
    FEED_PARAMETERS,
    ERROR,
    EXAMPLE_COLLECTION,
    GRAPH_PARAMETERS,
    INCLUDE_INACTIVE,
    INCLUDE_SUBTYPES,
    INCLUDE_SYSTEM_DATA,
    PAGED,
    READ_SCOPE,
    RELATIONSHIP_FILTERS,
    RELATIONSHIP_TYPES,
    STATUS_QUERY,
    STORAGE,
    WRITE_REQUEST,
    WRITE_SCOPE,
    Operation,
    Response,
    batch_write,
    catalog_item,
    catalog_list,
    delete,
    document_list,
    document_read,
    errors,
    id_parameter,
    path_parameter,
    read,
    schema,
    type_parameter,
    versions,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ANY_SEGMENT = re.compile(r"{(\w+)}")


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # aiohttp's form, which is also OpenAPI's: /apollo/er/entities/{entityId}
    handler: Handler
    operation: Operation
    # the status tracker takes its query parameter names in any letter case (tracker URLs of the old service)
    query_names_any_case: bool = False

    def definition(self) -> web.RouteDef:
        """The aiohttp route (a GET also answers HEAD, as aiohttp's ``web.get`` does). A path parameter matches any
        segment: aiohttp's default leaves out ``{`` and ``}``, which ids may hold (``common.json#/$defs/id``)."""
        return web.route(self.method, ANY_SEGMENT.sub(r"{\1:[^/]+}", self.path), self.handler)


SUBSCRIPTIONS = "/apollo/er/ercollections/{collectionId}/subscriptions"
SUBSCRIPTION = SUBSCRIPTIONS + "/{subscriptionId}"
SUBSCRIPTION_ID = path_parameter("subscriptionId", {"type": "string", "minLength": 1, "maxLength": 256},
                                 example="3f1c2a9e-8d4b-4c4e-9a51-6f0e2b7d1c55")
SUBSCRIBER_ONLY = "Neither the collection's owner nor holding a write grant on it, or scope missing"
NO_READ_GRANT = "No read grant on the collection, or scope missing"

ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", health.healthz, Operation(
        summary="Liveness: the process answers", tag="Probes",
        responses={200: Response("envelope", "Alive")}, operation_id="healthz",
    )),
    Route("GET", "/readyz", health.readyz, Operation(
        summary="Readiness: the storage backend answers", tag="Probes",
        responses={200: Response("envelope", "Ready"), 503: Response("envelope", "Storage is not answering", ("Retry-After",))},
        operation_id="readyz",
    )),
    Route("GET", "/metrics", metrics.get_metrics, Operation(
        summary="Prometheus metrics (text exposition format)", tag="Probes",
        description="Requests, items written and failed, pending job items, storage calls: docs/OPERATIONS.md, "
                    "Metrics. Open unless `metrics.token` is set; then `Authorization: Bearer <metrics.token>` "
                    "(a static token, not a JWT) or 401. 404 when `metrics.enabled` is false.",
        responses={200: Response(None, "The metrics", media_types=("text/plain",)),
                   401: Response("error", "The metrics token is set and was not sent"),
                   404: Response("error", "Metrics are turned off")},
        operation_id="metrics",
    )),
    Route("POST", "/apollo/collections", collections.create_collection, Operation(
        summary="Register an ERCollection; the caller becomes its owner with read and write grants",
        tag="Collections",
        scopes=(WRITE_SCOPE,),
        request=schema("collection-request"),
        request_example={"collectionId": EXAMPLE_COLLECTION, "collectionName": "August 14, building 81"},
        responses={
            201: Response("collection", "Registered", ("X-ER-Sequence",)),
            **errors(*WRITE_REQUEST, *AUTHENTICATED, 409, *STORAGE, e409="The collection exists"),
        },
        operation_id="createCollection",
    )),
    Route("GET", "/apollo/collections", collections.list_collections, Operation(
        summary="The collections the caller holds a grant on", tag="Collections",
        scopes=(READ_SCOPE,),
        parameters=PAGED,
        responses={200: Response("collection-list", "One page, in collectionId order, each with the caller's "
                                                    "access; `paging.continuationToken` is null on the last page"),
                   **errors(*AUTHENTICATED, 400, *STORAGE, e403="Scope missing")},
        operation_id="listCollections",
    )),
    Route("GET", "/apollo/collections/{collectionId}", collections.get_collection, Operation(
        summary="Read a collection's registration", tag="Collections",
        scopes=(READ_SCOPE,),
        parameters=(COLLECTION_ID,),
        responses={200: Response("collection", "The registration"),
                   **errors(*AUTHENTICATED, 404, *STORAGE, e403="No grant on the collection, or scope missing")},
        operation_id="getCollection",
    )),
    Route("PUT", "/apollo/collections/{collectionId}/acl", collections.put_grant, Operation(
        summary="Grant or revoke a principal's access (owner only); `[]` revokes", tag="Collections",
        scopes=(WRITE_SCOPE,),
        parameters=(COLLECTION_ID,),
        request=schema("acl-request"),
        request_example={"principal": "bob", "access": ["read"]},
        responses={200: Response("grant", "The grant as stored", ("X-ER-Sequence",)),
                   **errors(*WRITE_REQUEST, *AUTHENTICATED, 404, *STORAGE, e403="Not the owner, or scope missing")},
        operation_id="putGrant",
    )),
    Route("GET", "/apollo/collections/{collectionId}/acl", collections.get_grants, Operation(
        summary="List a collection's grants (owner only)", tag="Collections",
        scopes=(READ_SCOPE,),
        parameters=(COLLECTION_ID,),
        responses={200: Response("grants", "Owner and grants"),
                   **errors(*AUTHENTICATED, 404, *STORAGE, e403="Not the owner, or scope missing")},
        operation_id="getGrants",
    )),
    Route("POST", "/apollo/er/entities", entities.post_entities, batch_write(ENTITIES)),
    Route("GET", "/apollo/er/entities", reads.list_entities, document_list(
        ENTITIES, "List the entities of a collection, in pages", operation_id="listEntities")),
    Route("GET", "/apollo/er/entities/{entityId}",
          entities.get_entity, document_read(ENTITIES)),
    Route("DELETE", "/apollo/er/entities/{entityId}", deletes.delete_entity_handler, delete(
        ENTITIES, CASCADE,
        description="Refused with 409 while active relationships reference the entity from any collection, "
                    "unless cascade=true, which deactivates them in the same request and reports them.")),
    Route("GET", "/apollo/er/entities/{entityId}/versions", reads.entity_versions, versions(ENTITIES)),
    Route("GET", "/apollo/er/entities/{entityId}/relationships", reads.list_entity_relationships, read(
        "The relationships of one entity: outgoing, incoming from any readable collection, or both",
        RELATIONSHIPS.plural_label,
        (id_parameter(ENTITIES), ERCOLLECTION, DIRECTION, *PAGED, INCLUDE_SYSTEM_DATA, INCLUDE_INACTIVE),
        Response("relationship-list", "One page, ordered by (sourceERCollectionId, id)"),
        description="An incoming relationship stored in a collection the caller may not read is neither shown "
                    "nor counted.",
        operation_id="listEntityRelationships",
    )),
    Route("GET", "/apollo/er/entities/{entityId}/graph", graph.get_entity_graph, read(
        "The neighbourhood of one entity over several hops, across the collections the caller may read", "Graph",
        (id_parameter(ENTITIES), ERCOLLECTION, *GRAPH_PARAMETERS),
        Response("graph", "`{nodes, edges, truncated}`: each entity once, with its collection and depth; the "
                          "relationships followed between them"),
        404, e404="The entity is not in the collection",
        description="Relationships stored in a collection the caller may not read, and entities of such "
                    "collections, are left out at every hop. Depth d costs d + 1 storage calls.",
        operation_id="getEntityGraph",
    )),
    Route("POST", "/apollo/er/graph/query", graph.query_graph, Operation(
        summary="Match a path pattern: a start, then hops; the distinct end entities or every path, in pages",
        tag="Graph",
        scopes=(READ_SCOPE,),
        parameters=(ERCOLLECTION, *PAGED),
        request=schema("graph-query"),
        request_example={"start": {"entityId": "ahu_A1"},
                         "hops": [{"relationshipType": "feeds", "direction": "outgoing", "entityType": "VAV"},
                                  {"relationshipType": "hasPoint", "entityType": "Point"}]},
        responses={200: Response("graph-matches", "One page of entities (`return: entities`) or paths (`paths`)"),
                   **errors(400, *AUTHENTICATED, 404, 413, 415, *STORAGE,
                            e400="The pattern is not valid: the message starts with the JSON pointer of the field",
                            e404="The start entity is not in the collection")},
        description="Each hop follows its relationship (and its inverse stored the other way round) from every "
                    "entity the previous hop matched, in one storage call; collections the caller may not read "
                    "contribute nothing.",
        operation_id="queryGraph",
    )),
    Route("GET", "/apollo/er/entitytypes/{type}/entities", reads.list_entities_of_type, document_list(
        ENTITIES, "List the entities of one type (includeSubtypes=true: and of its subclasses)",
        type_parameter(ENTITIES), INCLUDE_SUBTYPES, operation_id="listEntitiesOfType",
        description="The type may be given under any of its names (aliases); entities stored under any of them "
                    "are listed.")),
    Route("POST", "/apollo/er/relationships",
          relationships.post_relationships, batch_write(RELATIONSHIPS)),
    Route("GET", "/apollo/er/relationships", reads.list_relationships, document_list(
        RELATIONSHIPS, "List the relationships of a collection, in pages", *RELATIONSHIP_FILTERS,
        operation_id="listRelationships")),
    Route("GET", "/apollo/er/relationships/{relationshipId}",
          relationships.get_relationship, document_read(RELATIONSHIPS)),
    Route("DELETE", "/apollo/er/relationships/{relationshipId}", deletes.delete_relationship_handler, delete(
        RELATIONSHIPS,
        description="A new version with isActive false and a status record (requestAction Delete); afterwards "
                    "lists leave it out and a read answers 404 unless includeInactive=true.")),
    Route("GET", "/apollo/er/relationships/{relationshipId}/versions",
          reads.relationship_versions, versions(RELATIONSHIPS)),
    Route("GET", "/apollo/er/relationshiptypes/{type}/relationships", reads.list_relationships_of_type, document_list(
        RELATIONSHIPS, "List the relationships of one type", type_parameter(RELATIONSHIPS),
        *RELATIONSHIP_FILTERS, operation_id="listRelationshipsOfType",
        description="The type may be given under any of its names (aliases); relationships stored under any of "
                    "them are listed.")),
    Route("GET", "/apollo/er/relationshiptypes/{type}/relationships/{relationshipId}",
          reads.get_relationship_of_type, read(
        "Read one relationship of one type by id", RELATIONSHIPS.plural_label,
        (type_parameter(RELATIONSHIPS), id_parameter(RELATIONSHIPS), ERCOLLECTION, INCLUDE_SYSTEM_DATA,
         INCLUDE_INACTIVE),
        Response("relationship-read", "`data` holds the relationship", ("ETag",)),
        404, e404="Unknown type, or no relationship of that id and type",
        operation_id="getRelationshipOfType",
    )),
    Route("GET", "/apollo/er/ercollections/{collectionId}/stats", reads.collection_stats, read(
        "Counts of a collection's active entities and relationships, in all and per type", "Collections",
        (COLLECTION_ID, INCLUDE_SYSTEM_DATA), Response("collection-stats", "The counts"),
        e403=NO_READ_GRANT,
        description="The collection comes from the path (no ercollectionid header); a read grant is needed. "
                    "Types are counted under the names they are stored with.",
        operation_id="getCollectionStats",
    )),
    Route("GET", "/apollo/er/ercollections/{collectionId}/changes", changes.get_changes, read(
        "The collection's change feed: every change after a sequence number, in order; long poll with wait",
        "Collections", (COLLECTION_ID, *FEED_PARAMETERS),
        Response("changes", "The changes after `after`, at most `limit`, in sequence order; send `paging.next` as "
                            "the next `after`"),
        410, e403=NO_READ_GRANT,
        e410="`after` is below the trimmed part of the feed: the message and `errors` say from which number it is "
             "whole",
        description="Entities and relationships written or deactivated, and grants given or taken. A consumer that "
                    "remembers the last sequence number it processed and asks for `after` that number misses "
                    "nothing and sees nothing twice, whichever process served the writes. Retention: "
                    "`changes.retention_seconds` (default 7 days); see docs/API.md, Change feed.",
        operation_id="getCollectionChanges",
    )),
    Route("GET", "/apollo/er/ercollections/{collectionId}/export", export.export_collection, read(
        "The collection as Brick RDF: Turtle or JSON-LD, streamed page by page", "Collections", (COLLECTION_ID,),
        Response(None, "Active entities (classes, kept statements) and the relationships stored in the collection, "
                       "as Brick predicates", media_types=("text/turtle", "application/ld+json")),
        406, e403=NO_READ_GRANT, e406="The Accept header takes neither text/turtle nor application/ld+json",
        description="`Accept: text/turtle` (also the answer to `*/*` or no Accept) or `application/ld+json` "
                    "(expanded JSON-LD). Entity IRIs: the id when it is an absolute IRI, else "
                    "`urn:erapi:<collectionId>/<percent-encoded id>` (docs/BRICK.md).",
        operation_id="exportCollection",
    )),
    Route("POST", SUBSCRIPTIONS, subscriptions.create_subscription, Operation(
        summary="Subscribe a webhook to the collection's changes", tag="Subscriptions",
        scopes=(WRITE_SCOPE,),
        parameters=(COLLECTION_ID,),
        request=schema("subscription-request"),
        request_example={"url": "https://hooks.example.com/erapi", "secret": "a-long-random-shared-secret",
                         "filters": {"kinds": ["relationship"], "operations": ["created", "updated"]}},
        responses={201: Response("subscription", "The subscription, active; its secret is never shown"),
                   **errors(*WRITE_REQUEST, *AUTHENTICATED, 409, *STORAGE,
                            e400="Bad body, a URL that is not absolute http(s) or carries credentials, a host that "
                                 "does not resolve, an unknown type in filters.types, startAfter beyond the feed",
                            e403="The URL's host is not in the operator's allow-list (webhooks.allowed_targets), or "
                                 "the caller is neither the owner nor holds a write grant, or scope missing",
                            e409="The collection holds webhooks.max_per_collection subscriptions already")},
        description="Each change of the collection that the filters take is POSTed to `url` as JSON, signed "
                    "(`X-Erapi-Signature-256: sha256=<HMAC-SHA256 of the raw body with the secret>`), in sequence "
                    "order, at least once (docs/API.md, Webhooks). Failed attempts are retried with exponential "
                    "backoff; a subscription that keeps failing is paused.",
        operation_id="createSubscription",
    )),
    Route("GET", SUBSCRIPTIONS, subscriptions.list_subscriptions, read(
        "List the collection's webhook subscriptions and their delivery state", "Subscriptions", (COLLECTION_ID,),
        Response("subscription-list", "Every subscription, by id"), e403=SUBSCRIBER_ONLY,
        scopes=(READ_SCOPE, WRITE_SCOPE), operation_id="listSubscriptions",
    )),
    Route("GET", SUBSCRIPTION, subscriptions.get_subscription, read(
        "A webhook subscription: state, why it is paused, its cursor and its last attempts", "Subscriptions",
        (COLLECTION_ID, SUBSCRIPTION_ID), Response("subscription", "The subscription"), 404, e403=SUBSCRIBER_ONLY,
        scopes=(READ_SCOPE, WRITE_SCOPE), operation_id="getSubscription",
    )),
    Route("DELETE", SUBSCRIPTION, subscriptions.delete_subscription, Operation(
        summary="Delete a webhook subscription; deliveries stop", tag="Subscriptions",
        scopes=(WRITE_SCOPE,),
        parameters=(COLLECTION_ID, SUBSCRIPTION_ID),
        responses={200: Response("subscription", "The subscription as it was"),
                   **errors(400, *AUTHENTICATED, 404, *STORAGE, e403=SUBSCRIBER_ONLY)},
        description="An attempt already under way may still reach the receiver.",
        operation_id="deleteSubscription",
    )),
    Route("POST", SUBSCRIPTION + "/resume", subscriptions.resume_subscription, Operation(
        summary="Resume a paused webhook subscription from the change it stopped at", tag="Subscriptions",
        scopes=(WRITE_SCOPE,),
        parameters=(COLLECTION_ID, SUBSCRIPTION_ID),
        responses={200: Response("subscription", "The subscription, active"),
                   **errors(400, *AUTHENTICATED, 404, *STORAGE,
                            e403="The URL's host is no longer in the allow-list, or " + SUBSCRIBER_ONLY)},
        description="No body. The failure count starts again from zero and the change that failed is retried "
                    "first; nothing is skipped (unless the feed's retention trimmed it meanwhile: then delivery "
                    "goes on after the trimmed stretch). Resuming an active subscription changes nothing.",
        operation_id="resumeSubscription",
    )),
    Route("GET", "/apollo/status/logs", status.get_status_logs, read(
        "Status tracker: the status records of a collection's transactions", "Status", (ERCOLLECTION, *STATUS_QUERY),
        Response("status-logs", "One page of records, oldest first"), 404, e404="No record matches",
        scopes=(READ_SCOPE, WRITE_SCOPE),
        description="At least one of transactionid, relationshipid, entityid, correlationid, startTime and "
                    "endTime is required (400 without); state narrows them. The names are case-insensitive. The "
                    "tracker URLs the writes return are such queries.",
        operation_id="getStatusLogs",
    ), query_names_any_case=True),
    Route("GET", "/apollo/schema/relationshiptypes", schema_handlers.list_relationship_types, replace(
        RELATIONSHIP_TYPES, parameters=CLASS_FILTERS, responses={**RELATIONSHIP_TYPES.responses, **errors(400)},
        description="Filtered by source and/or destination class, subclass-aware; an unknown class is a 400.")),
    Route("GET", "/apollo/schema/relationshiptypes/{type}",
          schema_handlers.get_relationship_type, catalog_item("relationship type", "relationship-types")),
    Route("GET", "/apollo/schema/relationshiptypes/{type}/entitytypes",
          schema_handlers.get_relationship_type_entity_types, replace(
        catalog_item("relationship type", "envelope"),
        summary="The entity types a relationship type may join: its source and destination classes with all "
                "their subclasses",
        operation_id="getRelationshipTypeEntityTypes")),
    Route("GET", "/apollo/schema/entitytypes", schema_handlers.list_entity_types, catalog_list("entity types", "entity-types")),
    Route("GET", "/apollo/schema/entitytypes/{type}",
          schema_handlers.get_entity_type, catalog_item("entity type", "entity-types")),
    Route("GET", "/apollo/openapi.json", docs.get_openapi, Operation(
        summary="This description (OpenAPI 3.1)", tag="Documentation",
        responses={200: Response("openapi-document", "The OpenAPI document")},
        operation_id="getOpenApi",
    )),
    Route("GET", "/apollo/docs", docs.get_docs, Operation(
        summary="Interactive documentation (Swagger UI, served by the service itself)", tag="Documentation",
        responses={200: Response(None, "The documentation page", media_types=("text/html",))},
        operation_id="getDocs",
    )),
    Route("GET", "/apollo/docs/assets/{asset}", docs.get_asset, Operation(
        summary="A static file of the documentation page or of the graph explorer", tag="Documentation",
        parameters=(path_parameter("asset", {"type": "string", "enum": sorted(docs.ASSETS)}),),
        responses={200: Response(None, "The file", media_types=tuple(sorted({
                       "text/javascript", *docs.PACKAGE_ASSETS.values(), *docs.EXPLORER_ASSETS.values()}))),
                   404: Response(ERROR, "No such asset")},
        operation_id="getDocsAsset",
    )),
    Route("GET", "/apollo/explorer", explorer.get_explorer, Operation(
        summary="The graph explorer: draws an entity's neighbourhood from this API with a pasted token",
        tag="Documentation",
        responses={200: Response(None, "The explorer page", media_types=("text/html",))},
        operation_id="getExplorer",
    )),
)

# (method, path) -> its entry; a HEAD request is checked as the GET it mirrors
BY_METHOD_AND_PATH: dict[tuple[str, str], Route] = {(route.method, route.path): route for route in ROUTES}
OPERATIONS: dict[tuple[str, str], Operation] = {key: route.operation for key, route in BY_METHOD_AND_PATH.items()}


def route_of(method: str, path: str) -> Route | None:
    """The entry of a matched request: its method (HEAD as GET) and its route's canonical path."""
    return BY_METHOD_AND_PATH.get(("GET" if method == "HEAD" else method, path))
