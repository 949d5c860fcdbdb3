"""Shared pytest set-up. Hypothesis: CI runs >= 500 examples per property (profile 'ci'); the developer tier
(profile 'dev', the default outside CI) runs 25, so that ``pytest -m "not lab"`` stays a quick check on every
change (``HYPOTHESIS_PROFILE=ci`` runs CI's budget locally). Properties with a ``max_examples`` of their own
keep it in both.

The lab fixtures (``lab``, ``lab_topology``, ``lab_name_factory``, failure dumps, ``--keep-lab-on-failure``)
come from the lab package's plugin, :mod:`bgpctl_lab.pytest_plugin`.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from tests import budget

pytest_plugins = ["bgpctl_lab.pytest_plugin"]

settings.register_profile("ci", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile(budget.PROFILE)
