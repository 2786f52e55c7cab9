"""Batch upsert of entities and relationships, and deletes: every per-item rule of the contract, no HTTP, no driver.

A batch costs a constant number of storage calls whatever its size: one ACL lookup per distinct collection
(usually cached), one entity fetch per collection, one read of the existing documents, one claim of the new
versions, one publish of the winners. Only items that lose a race to a concurrent writer go round again.

Modules: ``context`` (what a write is given and what it answers), ``rules`` (the per-item rules as named,
ordered checks, and the one loop that runs them), ``entities`` (entity upsert and its rules), ``relationships``
(relationship upsert and inverses) with ``relationship_checks`` (its rules), ``deletes``, ``versioning`` (the
claim-then-publish engine every write goes through) and ``status_records`` (the tracker's records of a write).
The kinds themselves (labels, field names) are described in ``erapi.kinds``; refusals are ``erapi.errors``.

Adding a per-item rule: write one function ``(batch, index) -> str | None`` that returns the item's failure
message or None (the item is ``batch.items[index]``, the request's context ``batch.ctx``), and add a
``Rule("what it asks of an item", each(function))`` at its place in ``ENTITY_RULES`` (entities.py) or
``RELATIONSHIP_RULES`` (relationship_checks.py): an item is reported with the first rule it breaks, so the
position is the message's priority. A rule most items of a batch pass can instead take the batch and the
indexes still passing and tell which fail (``rules.Rule``), checking once what the items share. If the rule needs something from storage or the ACL, give the Rule a
``fetch=`` coroutine ``(batch, indexes)`` that gets it once for all the items still passing and keeps it on the
batch; never call storage per item. Nothing else changes: the loop, the write and the 207 answer are shared.
"""
