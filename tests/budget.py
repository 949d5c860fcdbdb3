"""How much work the tests do: ``ci`` (under CI, or ``HYPOTHESIS_PROFILE=ci``) the whole budget, ``dev`` (the
default elsewhere) the developer tier's, so that ``pytest -m "not lab"`` stays a quick check on every change.
The same switch picks the hypothesis profile (tests/conftest.py) and the sizes of the few tests that
exercise a large input (the full scale lab, ten minutes of samples): the developer tier runs them smaller,
with the same checks."""

from __future__ import annotations

import os

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
FULL = PROFILE == "ci"
