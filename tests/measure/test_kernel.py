"""Fast checks of the kernel build machinery (no kernel is built here)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rmapwalk import kernels
from rmapwalk.measure import kernel

FRAGMENT = kernel.FRAGMENT.read_bytes()
KL = kernels.load()
BASE = KL.base()
VARIANTS = tuple(KL.variants)


def _patches(name):
    return kernel.kernel_inputs(BASE.name, name)[0]


# --- cache key -----------------------------------------------------------------

def test_cache_key_is_stable():
    p = _patches("patched")
    assert kernel.cache_key("v", p, FRAGMENT) == kernel.cache_key("v", list(p), FRAGMENT)
    assert len(kernel.cache_key("v", p, FRAGMENT)) == 16


def test_cache_key_changes_with_a_patch():
    p = _patches("patched")
    changed = p[:-1] + [(p[-1][0], p[-1][1] + b"\n")]
    assert kernel.cache_key("v", p, FRAGMENT) != kernel.cache_key("v", changed, FRAGMENT)


def test_cache_key_changes_with_the_fragment_and_source():
    p = _patches("baseline")
    key = kernel.cache_key("v", p, FRAGMENT)
    assert key != kernel.cache_key("v", p, FRAGMENT + b"# more\n")
    assert key != kernel.cache_key("w", p, FRAGMENT)


def test_cache_key_differs_per_kernel():
    keys = {kernel.cache_key("v", _patches(n), FRAGMENT) for n in VARIANTS}
    assert len(keys) == len(VARIANTS)


# --- series and fragment -------------------------------------------------------

def test_every_base_has_a_series_per_variant_naming_existing_patches():
    for base in KL.bases.values():
        assert set(base.series) == set(KL.variants), base.name
        for patches in base.series.values():
            for p in patches:
                assert (base.patch_dir / p).is_file(), p
        assert base.series["baseline"] == base.series["patched"][:1] == base.series["naive"][:1]


def test_variants_name_model_strategies():
    from rmapwalk.model.ksm import STRATEGIES
    assert {v.strategy for v in KL.variants.values()} <= set(STRATEGIES)
    assert set(kernels.strategy_of().values()) == set(STRATEGIES)


@pytest.mark.parametrize("text,message", [
    ("default_base: '6.12'\nvariants: {baseline: {strategy: baseline}}\nbases:\n  '6.12': "
     "{package: p, tarball: /t, patches: patches, series: {baseline: [0009-nope.patch]}}\n",
     "patch 0009-nope.patch not found"),
    ("default_base: '6.1'\nvariants: {}\nbases: {}\n", "default_base '6.1' is not one of"),
    ("default_base: '6.12'\nvariants: {baseline: {strategy: baseline}}\nbases:\n  '6.12': "
     "{package: p, tarball: /t, patches: patches, series: {v9: []}}\n", "unknown variant 'v9'"),
    ("variants: [\n", "not valid YAML"),
])
def test_bad_kernel_list_is_rejected(tmp_path, text, message):
    (tmp_path / "patches").mkdir()
    f = tmp_path / "kernels.yaml"
    f.write_text(text)
    with pytest.raises(kernels.KernelListError, match=message) as err:
        kernels.parse(f)
    assert str(f) in str(err.value)


def test_manifest_identity_old_and_new():
    assert KL.identify({"name": "patched", "source": {"package": BASE.package}}) == \
        (BASE.name, "patched")
    assert KL.identify({"base": "6.1", "variant": "naive", "name": "naive"}) == ("6.1", "naive")


def test_patches_are_signed_off():
    for p in BASE.patch_dir.glob("*.patch"):
        assert "Signed-off-by: rmapwalk <rmapwalk@localhost>" in p.read_text(), p.name


def test_fragment_has_a_reason_per_option():
    text = FRAGMENT.decode()
    assert kernel.options_without_reason(text) == []
    assert len(kernel.parse_config(text)) > 30


def test_reason_check_catches_a_bare_option():
    text = "# why\nCONFIG_A=y\nCONFIG_B=y\n\n# CONFIG_C is not set\n"
    assert kernel.options_without_reason(text) == ["CONFIG_B", "CONFIG_C"]


def test_fragment_sets_what_the_guest_needs():
    opts = kernel.parse_config(FRAGMENT.decode())
    for name in ("CONFIG_64BIT", "CONFIG_KSM", "CONFIG_MIGRATION", "CONFIG_NUMA",
                 "CONFIG_NUMA_EMU", "CONFIG_IDLE_PAGE_TRACKING", "CONFIG_EVENT_TRACING",
                 "CONFIG_KALLSYMS", "CONFIG_SERIAL_8250_CONSOLE", "CONFIG_BLK_DEV_INITRD"):
        assert opts.get(name) == "y", name


# --- the "option did not survive" check ----------------------------------------

def test_missing_option_is_named():
    fragment = "# a\nCONFIG_KSM=y\n# b\nCONFIG_NR_CPUS=4\n# c\n# CONFIG_THP is not set\n"
    config = "CONFIG_NR_CPUS=4\n# CONFIG_KSM is not set\nCONFIG_THP=y\n"
    problems = kernel.missing_options(fragment, config)
    assert len(problems) == 2
    assert any(p.startswith("CONFIG_KSM:") for p in problems)
    assert any(p.startswith("CONFIG_THP:") for p in problems)
    with pytest.raises(kernel.KernelBuildError, match="CONFIG_KSM"):
        kernel.check_config(fragment, config)


def test_unset_option_may_be_absent():
    assert kernel.missing_options("# CONFIG_X is not set\n", "CONFIG_Y=y\n") == []


def test_whole_fragment_against_a_fake_config():
    text = FRAGMENT.decode()
    opts = kernel.parse_config(text)
    good = "".join(f"{k}={v}\n" if v != "n" else f"# {k} is not set\n" for k, v in opts.items())
    kernel.check_config(text, good)
    lost = good.replace("CONFIG_NUMA_EMU=y\n", "")
    with pytest.raises(kernel.KernelBuildError, match="CONFIG_NUMA_EMU: fragment says y"):
        kernel.check_config(text, lost)


# --- the cache ------------------------------------------------------------------

def test_cached_entry_is_used_without_the_source(tmp_path, monkeypatch):
    monkeypatch.setattr(kernel.paths, "CACHE", tmp_path)
    monkeypatch.setattr(kernel, "find_source", _no_source)
    patches = _patches("naive")
    d = tmp_path / "kernels" / f"{BASE.name}-naive-0123456789abcdef"
    d.mkdir(parents=True)
    (d / "bzImage").write_bytes(b"x")
    (d / "build.json").write_text(json.dumps({
        "name": "naive", "key": "0123456789abcdef", "built_at": "2026",
        "patches": [{"file": n, "sha256": kernel._sha256(b)} for n, b in patches],
        "fragment": {"sha256": kernel._sha256(FRAGMENT)}}))
    art = kernel.kernel_image("naive", build=False)
    assert art.bzimage == d / "bzImage"
    with pytest.raises(kernel.KernelBuildError, match="no kernel source"):
        kernel.kernel_image("patched", build=False)


def _no_source(*a, **k):
    raise kernel.KernelBuildError("no kernel source")


# --- the patches apply to the pristine tree ---------------------------------------

def _touched(patch: Path) -> list[str]:
    return sorted({line[6:].strip() for line in patch.read_text().splitlines()
                   if line.startswith("+++ b/") or line.startswith("--- a/")})


def _pristine_files(dest: Path, files: list[str]) -> bool:
    """Copy the pristine version of ``files`` into ``dest``; False if no source."""
    for tree in (kernel.kernels_dir() / "src").glob("*/linux"):
        applied = json.loads((tree.parent / "applied.json").read_text())
        for f in files:
            if (tree / f).exists():
                (dest / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(tree / f, dest / f)
        for entry in reversed(applied):
            p = dest / ".patch"
            p.write_text(entry["text"])
            subprocess.run(["git", "apply", "-R", str(p)], cwd=dest, check=True)
            p.unlink()
        return True
    if not BASE.tarball.is_file():
        return False
    # Existing files only: the patches also create new ones (the trace header).
    # tar complains about those, and extracts the others.
    subprocess.run(["tar", "xJf", str(BASE.tarball), "-C", str(dest),
                    "--strip-components=1"] + [f"{BASE.package}/{f}" for f in files],
                   capture_output=True)
    return True


def test_series_applies_to_the_pristine_tree(tmp_path):
    series = BASE.series
    files = sorted({f for ps in series.values() for p in ps
                    for f in _touched(BASE.patch_dir / p) if f != "/dev/null"})
    if not _pristine_files(tmp_path, files):
        pytest.skip("no unpacked tree in the cache and no linux-source-6.12 tarball")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    for name, patches in series.items():
        work = tmp_path / f"k-{name}"
        shutil.copytree(tmp_path, work, ignore=shutil.ignore_patterns("k-*", ".git"))
        for p in patches:
            r = subprocess.run(["git", "apply", "--check", str(BASE.patch_dir / p)],
                               cwd=work, capture_output=True, text=True)
            assert r.returncode == 0, f"{name}: {p}: {r.stderr}"
            subprocess.run(["git", "apply", str(BASE.patch_dir / p)], cwd=work, check=True)
