"""bench/write_options.py measures what it says: every option's answers are checked, and each is measured.

Not a timed test: it runs the bench with one batch per option on the memory plugin (which has every option,
atomic included) and checks what a reader of its table relies on.
"""

from __future__ import annotations

import pytest

from bench import write_options

pytestmark = pytest.mark.slow


def test_every_option_is_measured_against_plain_on_one_service(capsys):
    results = write_options.run(rounds=1, requests=2)
    measured = results["memory"]
    assert [option.name for option in measured] == [
        "plain", "validateOnly", "expectedVersion", "Idempotency-Key", "key replay", "atomic"]
    assert all(len(option.latencies) == 2 and not option.refused for option in measured)
    table = capsys.readouterr().out
    assert "x plain" in table and all(option.name in table for option in measured)


def test_the_expected_version_template_makes_every_item_create_only():
    template = write_options.with_expected_version(write_options.workload.relationship_template(items=3))
    assert template.count('"expectedVersion":0') == 3
