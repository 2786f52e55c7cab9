"""Schemathesis hooks for tests/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS=tests.schemathesis_hooks)."""

import re

import schemathesis

from erapi.openapi import IF_MATCH, SEQUENCE_REQUEST


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


CONDITIONAL = ("if-match", "if-none-match")


@schemathesis.hook("filter_case")
def write_options_in_their_documented_combinations(ctx, case) -> bool:
    """Rules across parameters OpenAPI cannot state (docs/API.md, *Writes a client can trust*), each a 400 by
    design: atomic=true and the conditional headers need async: false; a conditional header needs a one-item
    request without its own expectedVersion; If-Match and If-None-Match do not go together."""
    headers = {name.lower(): value for name, value in (case.headers or {}).items()}
    run_async = str(headers.get("async", "false")).lower() == "true"
    if str((case.query or {}).get("atomic", "")).lower() == "true" and run_async:
        return False
    conditional = [name for name in CONDITIONAL if name in headers]
    if not conditional or case.method.upper() != "POST":
        return True
    items = case.body if isinstance(case.body, list) else [case.body]
    return (len(conditional) == 1 and not run_async and len(items) == 1
            and not (isinstance(items[0], dict) and "expectedVersion" in items[0]))


@schemathesis.hook("filter_case")
def if_match_as_documented(ctx, case) -> bool:
    """Schemathesis 4's coverage phase sends If-Match values outside the parameter's pattern (e.g. ``0``) as
    schema-valid data, and then counts their 400 as valid data refused: such a case tests schemathesis."""
    value = {name.lower(): value for name, value in (case.headers or {}).items()}.get("if-match")
    return value is None or re.fullmatch(IF_MATCH.schema["pattern"], str(value)) is not None


@schemathesis.hook("filter_case")
def sequence_numbers_a_write_handed_out(ctx, case) -> bool:
    """X-ER-Sequence echoes a write's answer (docs/API.md, *Read your writes*): a number no write handed out is
    waited for and then answered 503 by design, so well-formed values are left out of generated cases (a
    malformed one is still sent, and must be a 400)."""
    value = {name.lower(): v for name, v in (case.headers or {}).items()}.get("x-er-sequence")
    return value is None or not re.fullmatch(SEQUENCE_REQUEST, str(value))


LONGEST_POLL_SENT = 2.0  # seconds; schemathesis gives up on an answer after 10


@schemathesis.hook("filter_case")
def long_polls_shorter_than_the_request_timeout(ctx, case) -> bool:
    """GET .../changes?wait=S answers after S seconds (up to 60) when nothing is new, by design (docs/API.md,
    *Change feed*); schemathesis counts an answer later than its 10-s request timeout as a network error. Waits up to
    2 s are still sent; a malformed one must still be a 400."""
    wait = (case.query or {}).get("wait")
    try:
        return wait is None or not float(wait) > LONGEST_POLL_SENT  # NaN is sent: a 400
    except (TypeError, ValueError):
        return True
