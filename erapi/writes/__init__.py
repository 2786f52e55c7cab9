"""Batch upsert of entities and relationships, and deletes: every per-item rule of the contract, no HTTP, no driver.

A batch costs a constant number of storage calls whatever its size: one ACL lookup per distinct collection
(usually cached), one entity fetch per collection, one read of the existing documents, one claim of the new
versions, one publish of the winners. Only items that lose a race to a concurrent writer go round again.

Modules: ``context`` (what a write is given and what it answers), ``relationships`` (relationship upsert and
inverses) with ``relationship_checks`` (its per-item rules), ``entities``, ``deletes``, ``versioning`` (the
claim-then-publish engine every write goes through) and ``status_records`` (the tracker's records of a write).
"""
