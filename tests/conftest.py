"""Shared test configuration.

Rules for every test here (after trio-websocket's): servers bind 127.0.0.1 on
port 0 and hand back their real URL through ``nursery.start``; every network
test is bounded by ``trio.fail_after``; nothing mocks a part that can run for
real on this machine.

Hypothesis profiles: ``ci`` (derandomized, no deadline) is loaded when ``CI`` is
set or ``HYPOTHESIS_PROFILE=ci``; ``dev`` otherwise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--spec-report",
        metavar="PATH",
        default=None,
        help="write a JSON map of spec requirement ID -> citing test node ids to PATH",
    )


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    path = config.getoption("--spec-report")
    if not path:
        return
    cited: dict[str, list[str]] = {}
    for item in items:
        for mark in item.iter_markers(name="spec"):
            for spec_id in mark.args:
                cited.setdefault(str(spec_id), []).append(item.nodeid)
    Path(path).write_text(json.dumps(cited, indent=2, sort_keys=True))
