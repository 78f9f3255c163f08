"""The model refuses what Linux 6.12 refuses, with the same errno, and applies what the kernel
applies before it fails (mm/mprotect.c, mm/mremap.c, mm/madvise.c, mm/migrate.c)."""
import pytest

from rmapwalk.contract import NOT_PRESENT, OUTCOMES, PAGE_SIZE
from rmapwalk.model import kernel as K
from rmapwalk.model import mm as M
from rmapwalk.scenario import REGION_BASE, REGION_STRIDE

A = REGION_BASE


def page(n: int, base: int = A) -> int:
    return base + n * PAGE_SIZE


def kernel_with_region(pages: int = 8, fill: bool = True) -> K.Kernel:
    k = K.Kernel("baseline")
    k.mmap(0, A, pages)
    if fill:
        for p in range(pages):
            k.write(0, page(p), ("byte", 1))
    return k


def flags(k, n):
    return k.procs[0].find_vma(page(n)).vm_flags


def test_mprotect_over_a_hole_applies_up_to_it_then_enomem():
    k = kernel_with_region()
    k.munmap(0, page(4), page(5))
    with pytest.raises(K.ModelError) as e:
        k.mprotect(0, page(1), page(7), "r")
    assert (e.value.errno, e.value.addr) == ("ENOMEM", page(4))
    assert "do_mprotect_pkey" in e.value.source
    assert flags(k, 0) & M.VM_WRITE and not flags(k, 1) & M.VM_WRITE and not flags(k, 3) & M.VM_WRITE
    assert flags(k, 5) & M.VM_WRITE            # above the hole: untouched
    K.validate(k)


def test_mprotect_starting_in_a_hole_applies_nothing():
    k = kernel_with_region()
    k.munmap(0, page(0), page(2))
    with pytest.raises(K.ModelError) as e:
        k.mprotect(0, page(1), page(4), "r")
    assert (e.value.errno, e.value.addr) == ("ENOMEM", page(1))
    assert flags(k, 2) & M.VM_WRITE


def test_mprotect_past_the_end_is_enomem():
    k = kernel_with_region(4)
    with pytest.raises(K.ModelError) as e:
        k.mprotect(0, page(2), page(6), "r")
    assert (e.value.errno, e.value.addr) == ("ENOMEM", page(4))
    assert not flags(k, 3) & M.VM_WRITE


@pytest.mark.parametrize("setup, start, pages, addr", [
    ("moved", 1, 2, 1),         # the range was moved away by an earlier mremap
    ("moved", 2, 1, 2),
    ("split", 0, 4, 2),         # two VMAs: "We can't remap across vm area boundaries"
    ("none", 6, 4, 8),          # past the end of the mapping
])
def test_mremap_outside_one_vma_is_efault(setup, start, pages, addr):
    k = kernel_with_region()
    if setup == "moved":
        k.mremap(0, page(1), 2 * PAGE_SIZE, A + REGION_STRIDE)
    elif setup == "split":
        k.mprotect(0, page(2), page(3), "r")
    before = [(v.vm_start, v.vm_end) for v in k.procs[0].vmas]
    with pytest.raises(K.ModelError) as e:
        k.mremap(0, page(start), pages * PAGE_SIZE, A + 2 * REGION_STRIDE)
    # a range that does not start in a VMA: the syscall's vma_lookup (before mremap_to);
    # one that crosses the end of its VMA: vma_to_resize
    assert e.value.errno == "EFAULT" and ("vma_to_resize" in e.value.source
                                          or "vma_lookup" in e.value.source)
    assert e.value.addr == page(addr)
    assert [(v.vm_start, v.vm_end) for v in k.procs[0].vmas] == before
    K.validate(k)


def test_madvise_mergeable_over_holes_is_applied_around_them_then_enomem():
    k = kernel_with_region()
    k.munmap(0, page(2), page(3))
    k.munmap(0, page(5), page(6))
    with pytest.raises(K.ModelError) as e:
        k.madvise_mergeable(0, A, page(8))
    assert (e.value.errno, e.value.addr) == ("ENOMEM", page(2))
    assert "madvise_walk_vmas" in e.value.source
    assert all(v.vm_flags & M.VM_MERGEABLE for v in k.procs[0].vmas)
    assert k.procs[0].mmf_vm_mergeable
    K.validate(k)


def test_madvise_mergeable_on_nothing_mapped_is_enomem():
    k = kernel_with_region(2)
    k.munmap(0, A, page(2))
    with pytest.raises(K.ModelError) as e:
        k.madvise_mergeable(0, A, page(2))
    assert e.value.errno == "ENOMEM" and not k.procs[0].mmf_vm_mergeable


def test_madvise_mergeable_ignores_a_shared_file_mapping():
    """mm/ksm.c ksm_madvise: !vma_ksm_compatible (VM_SHARED|VM_MAYSHARE) -> return 0."""
    k = K.Kernel("baseline")
    k.mmap(0, A, 4, file="f")
    k.madvise_mergeable(0, A, page(4))
    vma = k.procs[0].find_vma(A)
    assert not vma.vm_flags & M.VM_MERGEABLE and not k.procs[0].mmf_vm_mergeable


def test_outcomes_speak_the_contract():
    k = kernel_with_region(4)
    k.munmap(0, page(3), page(4))
    k.mmap(0, A + REGION_STRIDE, 1)           # mapped, never written: no page
    assert k.move_page(0, page(0)) == ("moved", "")
    assert k.move_page(0, page(3)) == ("error", "EFAULT")              # no VMA: vma_lookup
    assert k.move_page(0, A + REGION_STRIDE) == ("error", "ENOENT")    # no page: folio_walk_start
    assert k.page_idle(0, page(1)) == ("ok", "")
    assert k.page_idle(0, page(3)) == ("error", NOT_PRESENT)
    assert k.page_idle(0, A + REGION_STRIDE) == ("error", NOT_PRESENT)
    for result in ("moved", "ok", "error", "not-migrated"):
        assert result in OUTCOMES


def test_a_stuck_ksm_page_is_not_migrated():
    """The naive query misses the mremap()ed mapping: the unmap walk never empties the
    folio, migrate_pages() gives up (move_pages() > 0)."""
    k = K.Kernel("naive")
    k.mmap(0, A, 4)
    for p in range(4):
        k.write(0, page(p), ("byte", 5))
    k.mremap(0, page(2), PAGE_SIZE, A + REGION_STRIDE)
    k.madvise_mergeable(0, A + REGION_STRIDE, A + REGION_STRIDE + PAGE_SIZE)
    with pytest.raises(K.ModelError):
        k.madvise_mergeable(0, A, page(4))
    k.ksm_run(2)
    assert k.move_page(0, A + REGION_STRIDE) == ("not-migrated", "")
