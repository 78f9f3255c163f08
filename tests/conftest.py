"""With RMAPWALK_REQUIRE_VM=1 (set by .ci/run, where `make test` builds the kernels first), a
VM test that skips — no QEMU, a kernel not built — fails instead: CI must not pass because
the tests that boot the real kernels did not run."""
import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if (report.skipped and os.environ.get("RMAPWALK_REQUIRE_VM") == "1"
            and item.get_closest_marker("vm") is not None):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid}: a VM test skipped although RMAPWALK_REQUIRE_VM=1 "
                           f"(CI): {reason}")
