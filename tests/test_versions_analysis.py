"""rmapwalk.analysis.versions: reads data/kernels and data/selftests only after they verify
against their manifests, names the file of a changed, missing or malformed one, and gives
the chapter's tables from the committed data."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rmapwalk import dataset, paths
from rmapwalk.analysis import versions as V

KERNELS, SELFTESTS = paths.DATA / "kernels", paths.DATA / "selftests"
needs_data = pytest.mark.skipif(not (KERNELS / "manifest.json").is_file()
                                or not (SELFTESTS / "manifest.json").is_file(),
                                reason="no committed data/kernels or data/selftests")


@pytest.fixture
def kernels(tmp_path) -> Path:
    return Path(shutil.copytree(KERNELS, tmp_path / "kernels"))


@pytest.fixture
def selftests(tmp_path) -> Path:
    return Path(shutil.copytree(SELFTESTS, tmp_path / "selftests"))


def _remanifest(folder: Path) -> None:
    """Write a fresh manifest over the folder as it is now (an edit that verifies)."""
    (folder / dataset.MANIFEST).unlink()
    dataset.write_manifest(folder, {})


# --- the committed data -------------------------------------------------------------------

@needs_data
def test_committed_data_gives_every_table():
    kd, sd = V.load_kernels(), V.load_selftests()
    st = V.struct_table(kd)
    assert len(st) == len(kd["matrix"]) and set(st["size (bytes)"]) == {64}
    assert set(st[st["index field"] != "-"]["shares the union with"]) >= {"oldchecksum"}
    assert list(V.variant_table(kd)["variant"]) == V.variants()
    dt = V.delta_table(kd)
    assert {"mm/rmap.o text", "mm/ksm.o text", "vmlinux text symbols (nm)"} <= set(dt.columns)
    for b in set(kd["matrix"]["base"]):
        assert V.delta(kd, b, *V.OPTIMISATION, "mm/rmap.o") == 0     # only mm/ksm.c changes
        assert V.delta(kd, b, *V.TRACEPOINT, "mm/rmap.o") > 0
    caps = V.captures_table(kd)
    assert list(caps["scenario"]).count("ci-small") == 1
    assert sd["findings"] == [] and V.same_builds(kd, sd) == []
    assert not V.bloat_functions(kd, *V.OPTIMISATION).empty
    text = V.answer_text(kd, sd)
    assert "64 bytes" in text and "no variant fails" in text
    assert "differ from the model, all on 6.1" in V.model_text(kd)


# --- what verification refuses, naming the file -------------------------------------------

@needs_data
def test_changed_matrix_csv_is_named(kernels):
    victim = kernels / "matrix.csv"
    victim.write_text(victim.read_text().replace(",64,", ",72,", 1))
    with pytest.raises(dataset.DataIntegrityError) as err:
        V.load_kernels(kernels)
    assert str(victim) in str(err.value)


@needs_data
def test_missing_pahole_is_named(kernels):
    victim = kernels / "6.1" / "patched" / "ksm_rmap_item.pahole.txt"
    victim.unlink()
    with pytest.raises(dataset.DataIntegrityError) as err:
        V.load_kernels(kernels)
    assert str(victim) in str(err.value) and "missing" in str(err.value)


@needs_data
def test_unlisted_required_table_is_named(kernels):
    (kernels / "captures-check.csv").unlink()
    _remanifest(kernels)
    with pytest.raises(dataset.DataIntegrityError) as err:
        V.load_kernels(kernels)
    assert str(kernels / "captures-check.csv") in str(err.value)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(dataset.DataIntegrityError) as err:
        V.load_kernels(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)


@needs_data
def test_changed_tap_is_named_by_its_kernel_manifest(selftests):
    victim = selftests / "6.12" / "patched" / "ksm_tests.tap"
    victim.write_text(victim.read_text().replace("not ok", "ok").replace("ok 1 ", "not ok 1 ", 1))
    with pytest.raises(dataset.DataIntegrityError) as err:
        V.load_selftests(selftests)
    assert str(victim) in str(err.value)


@needs_data
@pytest.mark.parametrize("name,old,new,said", [
    ("text-deltas.csv", "delta_text_symbols\n", "delta\n", "delta_text_symbols"),
    ("matrix.csv", ",64,", ",sixty-four,", "sixty-four"),
    ("captures-check.csv", ",True,", ",yes,", "'yes' is not True or False"),
], ids=["missing-column", "not-an-integer", "not-a-boolean"])
def test_bad_table_that_verifies_is_named(kernels, name, old, new, said):
    """A table edited and its manifest written again: verification passes, the reader
    refuses it, naming the file and what is wrong."""
    victim = kernels / name
    victim.write_text(victim.read_text().replace(old, new, 1))
    _remanifest(kernels)
    with pytest.raises(V.VersionsDataError) as err:
        V.load_kernels(kernels)
    assert str(victim) in str(err.value) and said in str(err.value)


@needs_data
def test_summary_that_disagrees_with_the_kernels_is_named(selftests):
    victim = selftests / "summary.csv"
    lines = victim.read_text().splitlines()
    head, row = lines[0], lines[1].split(",")
    row[3] = str(int(row[3]) + 1)                   # one more pass than the manifest says
    victim.write_text("\n".join([head, ",".join(row), *lines[2:]]) + "\n")
    _remanifest(selftests)
    with pytest.raises(V.VersionsDataError) as err:
        V.load_selftests(selftests)
    assert str(victim) in str(err.value)


# --- the parsers --------------------------------------------------------------------------

def test_invocation_rounds_counts_failed_rounds():
    tap = ("TAP version 13\n1..4\nok 1 ksm_tests -U [round 1]\n"
           "not ok 2 ksm_tests -N -m 1 [round 1] # exit status 1\n"
           "# ok 1 KSM NUMA merging\nok 3 ksm_tests -U [round 2]\n"
           "ok 4 ksm_tests -N -m 1 [round 2]\n")
    assert V.invocation_rounds(tap) == [
        {"invocation": "ksm_tests -U", "rounds": 2, "failed": 0},
        {"invocation": "ksm_tests -N -m 1", "rounds": 2, "failed": 1}]


def test_union_partners_reads_the_index_union():
    pahole = """struct ksm_rmap_item {
	union {
		struct anon_vma *  anon_vma;             /*     8     8 */
		int                nid;                  /*     8     4 */
	};                                               /*     8     8 */
	union {
		struct {
			unsigned int oldchecksum;        /*    32     4 */
			rmap_age_t age;                  /*    36     1 */
		};                                       /*    32     8 */
		long unsigned int  vm_pgoff;             /*    32     8 */
	};                                               /*    32     8 */
};"""
    assert V.union_partners(pahole) == ["oldchecksum", "age"]
    assert V.union_partners("struct ksm_rmap_item { unsigned int oldchecksum; };") == []
