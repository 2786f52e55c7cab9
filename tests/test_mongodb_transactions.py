"""Which MongoDB servers get atomic=true: the plugin's decision from the dialect and the server's ``hello``.

Plain documents, no server: a replica set (``setName``) or a mongos (``msg: isdbgrid``) has multi-document
transactions; a standalone server and FerretDB 1.x do not, and the reason says which gap it is.
"""

from __future__ import annotations

import pytest

from storage_plugins.mongodb import _transactions_unavailable
from storage_plugins.mongodb_dialect import FERRETDB1, MONGODB

STANDALONE = ("the MongoDB server is a standalone server; multi-document transactions need a replica set or a "
              "sharded cluster")


@pytest.mark.parametrize("dialect, hello, reason", [
    (MONGODB, {"isWritablePrimary": True, "setName": "rs0"}, None),
    (MONGODB, {"isWritablePrimary": True, "msg": "isdbgrid"}, None),
    (MONGODB, {"isWritablePrimary": True}, STANDALONE),
    (FERRETDB1, {"isWritablePrimary": True, "setName": "rs0"},
     "the MongoDB server (dialect ferretdb1, e.g. FerretDB 1.x) has no multi-document transactions"),
])
def test_transactions_are_offered_only_where_the_server_has_them(dialect, hello, reason):
    assert _transactions_unavailable(dialect, hello) == reason
