"""Shared pytest set-up. Hypothesis: CI runs >= 500 examples per property (profile 'ci')."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def pytest_addoption(parser: pytest.Parser) -> None:
    # Lab fixtures (tests/lab/conftest.py); declared here because pytest reads options from the root conftest.
    parser.addoption("--keep-lab-on-failure", action="store_true", default=False,
                     help="leave the session's lab up when a test failed (bgpctl lab status/down -n bt<pid>)")
