"""The OAuth scopes the handlers check, apart from erapi.auth so that the ``erapi`` command (whose ``token``
subcommand lists them) starts without importing the JWT and logging libraries auth needs."""

READ_SCOPE = "apollo_read"
WRITE_SCOPE = "apollo_write"
KNOWN_SCOPES = (READ_SCOPE, WRITE_SCOPE)  # every scope a handler checks
