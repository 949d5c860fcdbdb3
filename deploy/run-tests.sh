#!/usr/bin/env bash
# The whole check, in the order a reviewer wants to see it fail: lint, types, tests.
# Called by deploy/quickstart.sh test (after set-up) and so by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"; ruff check bgpctl bgpctl_lab tests bench
echo "== ruff format --check"; ruff format --check bgpctl bgpctl_lab tests bench
echo "== mypy --strict"; mypy
echo "== pytest"
# The whole check gets CI's full budget whether or not the CI system sets CI=true (tests/budget.py: >= 500
# hypothesis examples per property, the large inputs, the packaging test); `pytest -m "not lab"` alone is the
# developer tier's
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
set +e
# Two workers (pytest-xdist), a test file per worker at a time (--dist loadfile keeps a module's lab and its
# tests' order together): the lab tests mostly wait on the network's clocks (hold-downs, rise dwells, call
# meters), so two files at once halve the wall time on CI's 2 cores (docs/testing.md). Three were tried in stop
# 24: 18.5 min, but 4 drills missed their timing bounds with three labs at once.
pytest -p no:cacheprovider --durations=25 -n "${BGPCTL_TEST_WORKERS:-2}" --dist loadfile "$@"
rc=$?
set -e
[ $rc -eq 5 ] && { echo "pytest collected no tests: that is a failure here"; exit 1; }
exit $rc
