"""The policy: model (:mod:`.model`), loading with every problem reported (:mod:`.load`), and the
cross-reference rules between its sections (:mod:`.xref`)."""

from bgpctl.policy.load import CheckedPolicy, check_policy, check_policy_text, load_policy, load_policy_text
from bgpctl.policy.model import Policy

__all__ = ["CheckedPolicy", "Policy", "check_policy", "check_policy_text", "load_policy", "load_policy_text"]
