"""Schemathesis hooks for tests/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS=tests.schemathesis_hooks)."""

import schemathesis


@schemathesis.hook
def filter_case(ctx, case) -> bool:
    """createInverse=true needs async: false (a 400 otherwise): a rule across two parameters OpenAPI cannot state."""
    query = case.query or {}
    headers = case.headers or {}
    return not (str(query.get("createInverse", "")).lower() == "true"
                and str(headers.get("async", "")).lower() == "true")


SYNC_MAX_ITEMS = 100  # server.max_items of the test config


@schemathesis.hook("filter_case")
def sync_batches_within_the_item_limit(ctx, case) -> bool:
    """The request schemas allow 10,000 items (async: true); a synchronous batch over 100 is a 413 by design."""
    if str((case.headers or {}).get("async", "false")).lower() == "true":
        return True
    return not (isinstance(case.body, list) and len(case.body) > SYNC_MAX_ITEMS)


@schemathesis.hook("filter_case")
def no_unknown_header_as_a_fault(ctx, case) -> bool:
    """Schemathesis counts an unknown header as invalid data (when no header is required) and expects a 4xx; an
    HTTP service must ignore header fields it does not recognise (RFC 9110, section 5.1), so such a case has no
    fault to refuse."""
    return not any(name.lower().startswith("x-schemathesis-unknown") for name in (case.headers or {}))
