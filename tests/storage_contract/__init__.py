"""The storage contract: what the docstrings of the storage interfaces promise, checked against every plugin.

One module per interface of ``storage_plugins/base.py``: ``test_documents.py`` (DocumentStore: versioned
documents, history, lists, edges, atomic batches), ``test_logs.py`` (LogStore: status records), ``test_jobs.py``
(JobQueue: job chunks and idempotency keys), ``test_access.py`` (AccessStore: registrations and grants) and
``test_subscriptions.py`` (SubscriptionStore: webhook subscriptions).

Each test takes the ``storage`` fixture of ``tests.storage_fixtures`` and so runs once per plugin (memory, and the
MongoDB plugin on FerretDB and on SecantusDB); a new plugin joins by being listed there. A storage method added to
an interface gets its tests in that interface's module. The MongoDB plugin's own checks, which no other plugin can
share, are in ``tests/test_mongodb_plugin.py``.
"""
