"""Shared pytest set-up. Hypothesis: CI runs >= 500 examples per property (profile 'ci').

The lab fixtures (``lab``, ``lab_topology``, ``lab_name_factory``, failure dumps, ``--keep-lab-on-failure``)
come from the lab package's plugin, :mod:`bgpctl_lab.pytest_plugin`.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["bgpctl_lab.pytest_plugin"]

settings.register_profile("ci", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
