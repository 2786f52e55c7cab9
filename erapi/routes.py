"""Every route of the service, in one table."""

from __future__ import annotations

from aiohttp import web

from erapi.handlers import (
    collections,
    deletes,
    docs,
    entities,
    explorer,
    graph,
    health,
    metrics,
    reads,
    relationships,
    schema,
    status,
)

ROUTES = [
    web.get("/healthz", health.healthz),
    web.get("/readyz", health.readyz),
    web.get("/metrics", metrics.get_metrics),
    web.post("/apollo/collections", collections.create_collection),
    web.get("/apollo/collections", collections.list_collections),
    web.get("/apollo/collections/{collectionId}", collections.get_collection),
    web.put("/apollo/collections/{collectionId}/acl", collections.put_grant),
    web.get("/apollo/collections/{collectionId}/acl", collections.get_grants),
    web.post("/apollo/er/entities", entities.post_entities),
    web.get("/apollo/er/entities", reads.list_entities),
    web.get("/apollo/er/entities/{entityId}", entities.get_entity),
    web.delete("/apollo/er/entities/{entityId}", deletes.delete_entity_handler),
    web.get("/apollo/er/entities/{entityId}/versions", reads.entity_versions),
    web.get("/apollo/er/entities/{entityId}/relationships", reads.list_entity_relationships),
    web.get("/apollo/er/entities/{entityId}/graph", graph.get_entity_graph),
    web.post("/apollo/er/graph/query", graph.query_graph),
    web.get("/apollo/er/entitytypes/{type}/entities", reads.list_entities_of_type),
    web.post("/apollo/er/relationships", relationships.post_relationships),
    web.get("/apollo/er/relationships", reads.list_relationships),
    web.get("/apollo/er/relationships/{relationshipId}", relationships.get_relationship),
    web.delete("/apollo/er/relationships/{relationshipId}", deletes.delete_relationship_handler),
    web.get("/apollo/er/relationships/{relationshipId}/versions", reads.relationship_versions),
    web.get("/apollo/er/relationshiptypes/{type}/relationships", reads.list_relationships_of_type),
    web.get("/apollo/er/relationshiptypes/{type}/relationships/{relationshipId}", reads.get_relationship_of_type),
    web.get("/apollo/er/ercollections/{collectionId}/stats", reads.collection_stats),
    web.get("/apollo/status/logs", status.get_status_logs),
    web.get("/apollo/schema/relationshiptypes", schema.list_relationship_types),
    web.get("/apollo/schema/relationshiptypes/{type}", schema.get_relationship_type),
    web.get("/apollo/schema/relationshiptypes/{type}/entitytypes", schema.get_relationship_type_entity_types),
    web.get("/apollo/schema/entitytypes", schema.list_entity_types),
    web.get("/apollo/schema/entitytypes/{type}", schema.get_entity_type),
    web.get("/apollo/openapi.json", docs.get_openapi),
    web.get("/apollo/docs", docs.get_docs),
    web.get("/apollo/docs/assets/{asset}", docs.get_asset),
    web.get("/apollo/explorer", explorer.get_explorer),
]
