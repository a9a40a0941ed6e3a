"""The pytest session behind ``uring_conform compare``; not collected by the tools' own tests.

compare.run_pytest_session parametrises ``scenario_change`` over the union of the scenario
ids of BASE and NEW (ids shown as the scenario ids). A scenario that passed on BASE and is
fail/hang/crash/error on NEW fails its test; every other change passes and is listed in the
summary compare prints afterwards.
"""

import pytest


def test_scenario_did_not_regress(scenario_change):
    if scenario_change.kind == "regression":
        pytest.fail(scenario_change.failure_message(), pytrace=False)
