"""Fast checks of the kernel build machinery (no kernel is built here)."""
from __future__ import annotations

import csv
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
    compared = {v for v, var in KL.variants.items() if not var.fragments}
    for base in KL.bases.values():
        # every base has the comparison's variants; the path variants are 6.12's only
        assert set(base.series) - compared <= {v for v in KL.variants if v.endswith("-paths")}
        assert compared <= set(base.series), base.name
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


def _pristine_files(dest: Path, files: list[str], base) -> bool:
    """Copy the pristine version of ``files`` of ``base`` into ``dest``; False if no source.
    From the base's unpacked tree in the cache (its applied patches reversed), else its
    tarball."""
    try:
        src = kernel.find_source(install=False, base=base.name)
    except kernel.KernelBuildError:
        return False
    tree = kernel.kernels_dir() / "src" / src.ident / "linux"
    if tree.is_dir() and not src.path.is_dir():
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
    if not base.tarball.is_file():
        return False
    # Existing files only: the patches also create new ones (the trace header).
    # tar complains about those, and extracts the others.
    subprocess.run(["tar", "xJf", str(base.tarball), "-C", str(dest),
                    "--strip-components=1"] + [f"{base.package}/{f}" for f in files],
                   capture_output=True)
    return True


@pytest.mark.parametrize("base_name", sorted(KL.bases))
def test_series_applies_to_the_pristine_tree(tmp_path, base_name):
    base = KL.base(base_name)
    series = base.series
    files = sorted({f for ps in series.values() for p in ps
                    for f in _touched(base.patch_dir / p) if f != "/dev/null"})
    if not _pristine_files(tmp_path, files, base):
        pytest.skip(f"no unpacked tree in the cache and no {base.package} tarball")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    for name, patches in series.items():
        work = tmp_path / f"k-{name}"
        shutil.copytree(tmp_path, work, ignore=shutil.ignore_patterns("k-*", ".git"))
        for p in patches:
            r = subprocess.run(["git", "apply", "--check", str(base.patch_dir / p)],
                               cwd=work, capture_output=True, text=True)
            assert r.returncode == 0, f"{base_name} {name}: {p}: {r.stderr}"
            subprocess.run(["git", "apply", str(base.patch_dir / p)], cwd=work, check=True)


# --- build-only variants, the merged form, base 6.1 ------------------------------------

def test_build_only_variants_are_built_not_captured():
    build_only = {v.name for v in KL.variants.values() if not v.capture and not v.fragments}
    assert build_only == {"merged-notrace", "baseline-notrace"}
    assert not build_only & set(kernels.variants())
    assert not build_only & {v for _, v in KL.kernels()}
    assert build_only <= {v for _, v in KL.builds()}
    for base in KL.bases:
        with pytest.raises(kernels.KernelListError, match="build-only"):
            KL.patches(base, "merged-notrace")
        assert KL.patches(base, "baseline-notrace", build=True) == []
        assert kernel.kernel_inputs(base, "baseline-notrace")[0] == []


def test_tracepoint_flag_matches_the_series():
    for base in KL.bases.values():
        for v, patches in base.series.items():
            has = any(p.startswith("0001-") for p in patches)
            assert has == KL.variants[v].tracepoint, (base.name, v)
        assert base.series["merged-notrace"] == tuple(
            p for p in base.series["merged"] if not p.startswith("0001-"))


def test_merged_counts_like_v4_in_the_model():
    assert KL.strategy("merged") == KL.strategy("patched") == "pgoff"
    assert KL.strategy("merged-notrace") == "pgoff"


def test_collect_procs_ksm_patch_only_where_it_exists():
    """6.12 has collect_procs_ksm() (memory failure on KSM pages); 6.1 has not."""
    assert any("collect_procs_ksm" in p for p in KL.base("6.12").series["merged"])
    assert not any("collect_procs_ksm" in p for p in KL.base("6.1").series["merged"])


def test_roles_follow_the_list(tmp_path):
    """primary (one captured variant per strategy, first listed), path variants (fragments)
    and variant_of come from kernels.yaml alone: a new variant is placed by its entry."""
    (tmp_path / "patches").mkdir()
    (tmp_path / "x.config").write_text("")
    f = tmp_path / "kernels.yaml"
    f.write_text("default_base: '6.12'\nvariants:\n"
                 "  turbo: {strategy: pgoff, summary: s}\n"
                 "  baseline: {strategy: baseline, summary: s}\n"
                 "  patched: {strategy: pgoff, summary: s}\n"
                 "  quiet: {strategy: naive, summary: s, capture: false}\n"
                 "  turbo-paths: {strategy: pgoff, summary: s, capture: false, fragment: [x.config]}\n"
                 "bases:\n  '6.12': {package: p, tarball: /t, patches: patches, series: {}}\n")
    kl = kernels.parse(f)
    assert kl.primary == ("turbo", "baseline")
    assert kl.path_variants == ("turbo-paths",)
    assert kl.variant_of("pgoff") == "turbo"
    with pytest.raises(kernels.KernelListError, match="no captured variant with strategy 'naive'"):
        kl.variant_of("naive")
    # the committed list: the chapters' kernels, in its order
    assert KL.primary == ("baseline", "patched", "naive")
    assert KL.path_variants == tuple(v for v in KL.variants if v.endswith("-paths"))


@pytest.mark.parametrize("flag", ["capture: maybe", "tracepoint: 1"])
def test_bad_variant_flag_is_rejected(tmp_path, flag):
    (tmp_path / "patches").mkdir()
    f = tmp_path / "kernels.yaml"
    f.write_text(f"default_base: '6.12'\nvariants: {{baseline: {{strategy: baseline, {flag}}}}}\n"
                 "bases:\n  '6.12': {package: p, tarball: /t, patches: patches, series: {}}\n")
    with pytest.raises(kernels.KernelListError, match="must be true or false"):
        kernels.parse(f)


def test_kernel_list_prints_the_role(capsys):
    import argparse
    assert kernel.run(argparse.Namespace(kernel_command="list")) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert {(b, v) for b, v, *_ in lines} == set(KL.builds(with_fragments=True))
    roles = {v: r for _, v, _, _, r in lines}
    assert roles["merged-notrace"] == roles["baseline-notrace"] == "build-only"
    assert roles["baseline-paths"] == roles["merged-paths"] == "paths"
    assert roles["merged"] == roles["baseline"] == "capture"


def test_patches_are_signed_off_on_every_base():
    for base in KL.bases.values():
        for p in base.patch_dir.glob("*.patch"):
            assert "Signed-off-by: rmapwalk <rmapwalk@localhost>" in p.read_text(), p


@pytest.mark.parametrize("base_name", sorted(KL.bases))
def test_checkpatch_clean(base_name):
    """checkpatch.pl --no-tree of the base's own tree: 0 errors, 0 warnings per patch."""
    base = KL.base(base_name)
    try:
        src = kernel.find_source(install=False, base=base_name)
    except kernel.KernelBuildError:
        pytest.skip(f"no {base.package}")
    script = kernel.kernels_dir() / "src" / src.ident / "linux" / "scripts" / "checkpatch.pl"
    if not script.is_file() or not shutil.which("perl"):
        pytest.skip("no unpacked tree with scripts/checkpatch.pl in the cache")
    for name in sorted({p for ps in base.series.values() for p in ps}):
        r = subprocess.run(["perl", str(script), "--no-tree", str((base.patch_dir / name)
                                                                   .resolve())],
                           capture_output=True, text=True)
        assert "total: 0 errors, 0 warnings" in r.stdout, f"{base_name} {name}:\n{r.stdout}"


# --- ensure_objects and the report ----------------------------------------------------------

def _fake_entry(root: Path, base: str, variant: str, source: str) -> kernel.KernelArtifact:
    """A cache entry with tiny real ELF objects: mm/rmap.o, mm/ksm.o and a 'vmlinux'."""
    d = root / f"{base}-{variant}-0123456789abcdef"
    (d / "objects" / "mm").mkdir(parents=True)
    extra = "int extra(int x) { return x * 3 + 1; }\n" if "notrace" not in variant else ""
    for name, text in (("rmap", "int rmap(int x) { return x + 1; }\n" + extra),
                       ("ksm", "int ksm(int x) { return x - 1; }\n")):
        c = d / f"{name}.c"
        c.write_text(text)
        subprocess.run(["gcc", "-c", "-O1", "-o", str(d / "objects" / "mm" / f"{name}.o"),
                        str(c)], check=True)
        c.unlink()
    shutil.copy2(d / "objects" / "mm" / "rmap.o", d / "vmlinux")
    (d / "bzImage").write_bytes(b"x")
    (d / "ksm_rmap_item.pahole.txt").write_text(
        "struct ksm_rmap_item {\n\tunion {\n\t\tlong unsigned int  linear_page_index;"
        "    /*    32     8 */\n\t};\n\n\t/* size: 64, cachelines: 1, members: 6 */\n};\n")
    prov = {"name": variant, "variant": variant, "base": base, "key": "0123456789abcdef",
            "patches": [], "fragment": {"sha256": "f"}, "build_seconds": 1.0,
            "built_at": "2026"}
    (d / "build.json").write_text(json.dumps(prov))
    return kernel.KernelArtifact(variant, "0123456789abcdef", d, prov)


def test_report_writes_matrix_deltas_and_a_manifest(tmp_path):
    from rmapwalk.measure import matrix
    if not all(shutil.which(t) for t in ("gcc", "size", "nm")):
        pytest.skip("needs gcc, size and nm")
    arts = {("6.12", v): _fake_entry(tmp_path / "cache", "6.12", v, "")
            for v in ("baseline", "baseline-notrace", "merged", "merged-notrace")}
    out = tmp_path / "kernels"
    rows = matrix.write(out, arts, {"6.12": None})
    assert {r["variant"] for r in rows} == {"baseline", "baseline-notrace", "merged",
                                            "merged-notrace"}
    assert all(r["struct_size"] == 64 and r["struct_union_field"] == "linear_page_index"
               for r in rows)
    by = {r["variant"]: r for r in rows}
    assert by["baseline-notrace"]["role"] == "build-only" and by["merged"]["role"] == "capture"
    assert by["baseline"]["rmap_o_text"] > by["baseline-notrace"]["rmap_o_text"]
    with open(out / "text-deltas.csv") as f:
        deltas = list(csv.DictReader(f))
    tp = [d for d in deltas if (d["old"], d["new"], d["object"]) ==
          ("baseline-notrace", "baseline", "mm/rmap.o")]
    assert len(tp) == 1 and int(tp[0]["delta_text"]) > 0 and int(tp[0]["delta_text_symbols"]) > 0
    alone = [d for d in deltas if (d["old"], d["new"]) == ("baseline-notrace", "merged-notrace")]
    assert {d["object"] for d in alone} == set(matrix.OBJECTS)
    assert (out / "6.12" / "merged" / "size.txt").read_text().splitlines()[1].endswith("mm/rmap.o")
    assert matrix.verify(out) == []
    (out / "6.12" / "merged" / "size.txt").write_text("edited\n")
    assert any("sha256 differs" in p or "size" in p for p in matrix.verify(out))
    # written again: replaced as a whole, no stray temporary folders
    matrix.write(out, {k: v for k, v in arts.items() if k[1] != "merged"}, {"6.12": None})
    assert not (out / "6.12" / "merged").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_report_refuses_an_entry_without_objects(tmp_path):
    from rmapwalk.measure import matrix
    if not shutil.which("gcc"):
        pytest.skip("needs gcc")
    art = _fake_entry(tmp_path / "cache", "6.12", "baseline", "")
    (art.directory / "objects" / "mm" / "ksm.o").unlink()
    with pytest.raises(matrix.ReportError, match="no mm/ksm.o"):
        matrix.write(tmp_path / "out", {("6.12", "baseline"): art}, {})
    assert not (tmp_path / "out").exists()


def test_parse_pahole_and_size():
    from rmapwalk.measure import matrix
    text = ("struct ksm_rmap_item {\n\tunsigned int oldchecksum; /* 32 4 */\n"
            "\t/* size: 64, cachelines: 1, members: 9 */\n"
            "\t/* sum members: 58, holes: 1, sum holes: 4 */\n};\n")
    assert matrix.parse_pahole(text) == {"struct_size": 64, "struct_cachelines": 1,
                                         "struct_members": 9, "struct_holes": 1,
                                         "struct_union_field": ""}
    with pytest.raises(matrix.ReportError):
        matrix.parse_pahole("struct x {};")
    out = ("   text\t   data\t    bss\t    dec\t    hex\tfilename\n"
           "  13460\t    100\t      8\t  13568\t   3500\tmm/rmap.o\n")
    assert matrix.parse_size(out) == {"mm/rmap.o": {"text": 13460, "data": 100, "bss": 8}}


def test_ensure_objects_leaves_a_complete_entry_alone(tmp_path, monkeypatch):
    if not shutil.which("gcc"):
        pytest.skip("needs gcc")
    art = _fake_entry(tmp_path, "6.12", "baseline", "")
    monkeypatch.setattr(kernel, "find_source", _no_source)
    assert kernel.ensure_objects(art) is art


def test_captures_check_against_the_model(tmp_path):
    from rmapwalk import paths
    from rmapwalk.measure import matrix
    src = paths.TRACES / "ci-small" / "6.12" / "patched" / "run-1"
    if not (src / "walks.csv").is_file():
        pytest.skip("no committed ci-small run")
    dest = tmp_path / "ci-small" / "6.12" / "patched" / "run-1"
    shutil.copytree(src, dest)
    (row,) = matrix.check_captures(tmp_path)
    assert row["agree"] and row["verified"] and row["strategy"] == "pgoff"
    assert row["walks_measured"] == row["walks_model"] > 0
    lines = (dest / "walks.csv").read_text().splitlines()
    lines = lines[:-1]                                   # the kernel lost its last walk
    (dest / "walks.csv").write_text("\n".join(lines) + "\n")
    (row,) = matrix.check_captures(tmp_path)
    assert not row["agree"] and not row["verified"] and "only in the model" in \
        row["first_difference"]


def test_scenario_file_of_a_regression_capture():
    from rmapwalk import dataset, paths
    from rmapwalk.measure import matrix
    f = paths.SCENARIOS / "regressions" / "v4-union-smart-scan-age.yaml"
    if not f.is_file():
        pytest.skip("no regression scenario")
    assert matrix.scenario_file("v4-union-smart-scan-age", dataset.sha256_file(f)) == f
    assert matrix.scenario_file("ci-small", None) == paths.SCENARIOS / "ci-small.yaml"
    with pytest.raises(matrix.ReportError, match="no scenario file"):
        matrix.scenario_file("no-such-scenario", None)


def test_committed_kernel_matrix_verifies():
    """data/kernels, when committed: the manifest matches, and every built kernel of
    kernels.yaml has a row with a 64-byte ksm_rmap_item."""
    from rmapwalk import paths
    from rmapwalk.measure import matrix
    root = paths.ROOT / "data" / "kernels"
    if not (root / "manifest.json").is_file():
        pytest.skip("no data/kernels yet")
    assert matrix.verify(root) == []
    with open(root / "matrix.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["base"], r["variant"]) for r in rows} == set(KL.builds())
    assert {r["struct_size"] for r in rows} == {"64"}


@pytest.mark.parametrize("command", [["report"], ["selftests", "--summary-only"]])
def test_report_and_selftests_check_out_before_any_work(tmp_path, monkeypatch, capsys, command):
    """--out that is a file used to be a traceback (selftests at once, report after reading
    every kernel)."""
    from rmapwalk import cli
    from rmapwalk.measure import matrix
    monkeypatch.setattr(matrix, "collect", lambda *a, **k: pytest.fail("work started"))
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    assert cli.main(["kernel", *command, "--out", str(not_a_folder)]) == 2
    err = capsys.readouterr().err
    assert f"--out {not_a_folder}: is a file, expected a folder" in err and "Traceback" not in err


def test_report_does_not_replace_a_folder_that_is_not_a_report(tmp_path, monkeypatch, capsys):
    """The report replaces --out as a whole: --out data (for data/kernels) deleted every other
    data folder; only a new, empty or earlier report folder is taken."""
    from rmapwalk import cli, paths
    from rmapwalk.measure import matrix
    monkeypatch.setattr(matrix, "collect", lambda *a, **k: pytest.fail("work started"))
    other = tmp_path / "data"
    (other / "traces").mkdir(parents=True)
    assert cli.main(["kernel", "report", "--out", str(other)]) == 2
    assert "not a kernel report" in capsys.readouterr().err and (other / "traces").is_dir()
    assert matrix.check_out(paths.DATA / "kernels") == paths.DATA / "kernels"   # an earlier one
    assert matrix.check_out(tmp_path / "new") == tmp_path / "new"
    assert cli.main(["kernel", "report", "--out", str(tmp_path / "new"), "--captures",
                     str(tmp_path / "nope")]) == 2
    assert f"--captures {tmp_path / 'nope'}: no such folder" in capsys.readouterr().err
