"""The small fuzz campaign of every CI run (issue 7): the ``ci`` entry of data/fuzz/campaign.yaml
(about 20 generated scenarios) through ``rmapwalk fuzz`` on every captured kernel of the default
base, compared walk by walk with the model.  Any disagreement, capture failure or run that does
not verify fails the test; the lines ``rmapwalk fuzz`` printed are the failure message."""
import json
import re
import shutil
import subprocess
import sys

import pytest

from rmapwalk import kernels
from rmapwalk.fuzz import campaign
from rmapwalk.measure import kernel

pytestmark = [pytest.mark.vm, pytest.mark.slow]

LAST_LINE = re.compile(r"^fuzz: (\d+) scenarios, (\d+) walks compared, (\d+) disagreements$")


def test_ci_campaign_agrees_on_every_kernel(tmp_path):
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 not installed")
    kl = kernels.load()
    variants = [v for b, v in kl.kernels() if b == kl.default_base]
    for v in variants:
        try:
            kernel.kernel_image(v, build=False)
        except kernel.KernelBuildError as e:
            pytest.skip(f"no cached {v} kernel (make test-kernels builds it): {e}")
    ci = campaign.load_plan()["ci"]
    out = tmp_path / "fuzz"
    r = subprocess.run([sys.executable, "-m", "rmapwalk.cli", "fuzz", "--seed", str(ci["seed"]),
                        "--count", str(ci["count"]), "--kernel", ",".join(variants),
                        "--out", str(out), "--minimize", "1"],
                       capture_output=True, text=True, timeout=1800)
    lines = r.stdout.splitlines()
    assert lines, r.stderr
    m = LAST_LINE.match(lines[-1])
    assert m, r.stdout + r.stderr
    assert (int(m.group(1)), int(m.group(3))) == (ci["count"], 0), r.stdout + r.stderr[-4000:]
    assert int(m.group(2)) > 0 and r.returncode == 0, r.stdout + r.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["capture_failures"] == 0 and summary["verify_problems"] == 0
    assert summary["kernels"] == variants
