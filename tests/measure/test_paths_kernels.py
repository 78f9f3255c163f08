"""The path variants of kernels.yaml: a per-variant ``fragment:`` list (kernels.py), its place in
the cache key and the build directory (measure/kernel.py), and kernel-config/paths.config."""
from __future__ import annotations

import pytest

from rmapwalk import kernels
from rmapwalk.measure import kernel

KL = kernels.load()
PATHS_VARIANTS = ("baseline-paths", "patched-paths", "naive-paths", "merged-paths")
PATHS_CONFIG = kernel.CONFIG_DIR / "paths.config"


def test_path_variants_are_declared_with_their_fragment():
    for v in PATHS_VARIANTS:
        var = KL.variant(v)
        assert var.fragments == ("paths.config",) and not var.capture and var.tracepoint
        assert KL.fragments(v) == [PATHS_CONFIG]
        counterpart = v.removesuffix("-paths")
        assert var.strategy == KL.strategy(counterpart)
        series = KL.base("6.12").series
        extra = series[v][len(series[counterpart]):]
        assert series[v][:len(series[counterpart])] == series[counterpart], v
        assert extra == (("0009-ksm-add-collect_procs_ksm-tracepoint-to-the-merged-form.patch",)
                         if counterpart == "merged"
                         else ("0008-ksm-add-collect_procs_ksm-tracepoint.patch",)), v
    assert all(v not in KL.base("6.1").series for v in PATHS_VARIANTS)


def test_path_variants_stay_out_of_the_comparison():
    """Not captured, not in `kernel build --kernel all`, `kernel report`, the selftests
    (builds()); only builds(with_fragments=True) and `kernel list` name them."""
    for v in PATHS_VARIANTS:
        assert v not in kernels.variants()
        assert ("6.12", v) not in KL.kernels() and ("6.12", v) not in KL.builds()
        assert ("6.12", v) in KL.builds(with_fragments=True)
        with pytest.raises(kernels.KernelListError, match="build-only"):
            KL.patches("6.12", v)
    assert {v for _, v in KL.kernels() if _ == "6.12"} == {"baseline", "patched", "naive",
                                                           "merged"}


def test_fragment_goes_into_the_key_and_the_build_directory():
    base_patches, base_fragment = kernel.kernel_inputs("6.12", "baseline")
    patches, fragment = kernel.kernel_inputs("6.12", "baseline-paths")
    assert base_fragment == kernel.FRAGMENT.read_bytes()        # keys of the others unchanged
    assert fragment == kernel.FRAGMENT.read_bytes() + PATHS_CONFIG.read_bytes()
    assert patches[:-1] == base_patches
    assert kernel.cache_key("v", patches, fragment) != kernel.cache_key("v", patches,
                                                                        base_fragment)
    assert kernel.fragment_files("baseline") == [kernel.FRAGMENT]
    assert kernel.fragment_files("merged-paths") == [kernel.FRAGMENT, PATHS_CONFIG]
    assert kernel.build_dir_name("abc", "baseline") == "abc"
    assert kernel.build_dir_name("abc", "naive-paths") == "abc+paths"


def test_paths_config_has_a_reason_per_option_and_what_the_paths_need():
    text = PATHS_CONFIG.read_text()
    assert kernel.options_without_reason(text) == []
    opts = kernel.parse_config(text)
    for name in ("CONFIG_BLOCK", "CONFIG_SWAP", "CONFIG_BLK_DEV", "CONFIG_ZRAM",
                 "CONFIG_X86_MCE", "CONFIG_MEMORY_FAILURE"):
        assert opts[name] == "y", name
    # nothing of the comparison's fragment is switched off or changed
    base = kernel.parse_config(kernel.FRAGMENT.read_text())
    assert not {k for k in opts if k in base and base[k] != opts[k]}


def test_combined_fragment_is_checked_against_the_config():
    text = kernel.FRAGMENT.read_text() + PATHS_CONFIG.read_text()
    config = "\n".join(f"{k}={v}" if v != "n" else f"# {k} is not set"
                       for k, v in kernel.parse_config(text).items())
    kernel.check_config(text, config)
    with pytest.raises(kernel.KernelBuildError, match="CONFIG_MEMORY_FAILURE"):
        kernel.check_config(text, config.replace("CONFIG_MEMORY_FAILURE=y", ""))


@pytest.mark.parametrize("fragment,message", [
    ("fragment: paths.config", "must be a list of .config file names"),
    ("fragment: [nope.config]", "fragment nope.config not found"),
    ("fragment: [../rmapwalk.config]", "must be a list of .config file names"),
    ("fragment: [paths.txt]", "must be a list of .config file names"),
])
def test_bad_fragment_is_rejected(tmp_path, fragment, message):
    (tmp_path / "patches").mkdir()
    (tmp_path / "paths.config").write_text("# why\nCONFIG_SWAP=y\n")
    f = tmp_path / "kernels.yaml"
    f.write_text(f"default_base: '6.12'\nvariants: {{baseline: {{strategy: baseline, "
                 f"{fragment}}}}}\nbases:\n  '6.12': {{package: p, tarball: /t, "
                 "patches: patches, series: {}}\n")
    with pytest.raises(kernels.KernelListError, match=message) as e:
        kernels.parse(f)
    assert str(f) in str(e.value)


def test_good_fragment_is_read(tmp_path):
    (tmp_path / "patches").mkdir()
    (tmp_path / "paths.config").write_text("# why\nCONFIG_SWAP=y\n")
    f = tmp_path / "kernels.yaml"
    f.write_text("default_base: '6.12'\nvariants: {baseline: {strategy: baseline},\n"
                 "  b-paths: {strategy: baseline, capture: false, fragment: [paths.config]}}\n"
                 "bases:\n  '6.12': {package: p, tarball: /t, patches: patches, "
                 "series: {baseline: [], b-paths: []}}\n")
    kl = kernels.parse(f)
    assert kl.fragments("b-paths") == [tmp_path / "paths.config"]
    assert kl.builds() == [("6.12", "baseline")]
    assert kl.builds(with_fragments=True) == [("6.12", "baseline"), ("6.12", "b-paths")]
