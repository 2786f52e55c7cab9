"""The two kinds of versioned document, each described once: every name a kind goes by, in one place.

``name`` is the storage-facing value ("entities", "relationships"): what storage plugins are passed and keep,
what job chunks and metrics carry, and what storage's VERSION_FIELD and TYPE_FIELD maps are keyed by (those
maps are built from these descriptions, so a plugin keeps working with plain strings).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str  # storage-facing: "entities" or "relationships"
    label: str  # one of them in messages, and a status record's requestObject: "Entity"
    plural_label: str  # several of them in messages: "Entities"
    version_field: str  # the version's field in sysData
    type_field: str  # the field holding the stored type name
    id_field: str  # the id's name in a route's path ({entityId}) and in a status record's serviceData
    tracker_parameter: str  # the status tracker's query parameter that names one of them


ENTITIES = Kind("entities", "Entity", "Entities", "sysEntityVersion", "entityType", "entityId", "entityid")
RELATIONSHIPS = Kind("relationships", "Relationship", "Relationships", "sysRelationshipVersion", "relationshipType",
                     "relationshipId", "relationshipid")
KINDS = (ENTITIES, RELATIONSHIPS)  # in the order status records list their ids
BY_NAME = {kind.name: kind for kind in KINDS}
