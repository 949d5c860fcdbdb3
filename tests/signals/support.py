"""Policies with a signals section, built through the real loader (base policy of the corpus + signals)."""

from __future__ import annotations

from pathlib import Path

from bgpctl.policy.load import load_policy
from bgpctl.policy.model import Policy

REPO = Path(__file__).resolve().parents[2]
BASE = (REPO / "tests" / "policy" / "good" / "base.yaml").read_text()


def policy_with(tmp_path: Path, signals_yaml: str) -> Policy:
    """The corpus' base policy plus ``signals_yaml`` (the lines under ``signals:``, indented by two)."""
    p = tmp_path / "policy.yaml"
    p.write_text(BASE + "signals:\n" + signals_yaml)
    return load_policy(p)
