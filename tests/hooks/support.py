"""What the hook tests share: the lab policy with a hooks section."""

from __future__ import annotations

import json
from typing import Any

from bgpctl.policy.model import Policy
from tests.control.support import lab_policy


def with_hooks(hooks: dict[str, Any]) -> Policy:
    return Policy.model_validate_json(
        json.dumps({**lab_policy().model_dump(mode="json", by_alias=True), "hooks": hooks})
    )
