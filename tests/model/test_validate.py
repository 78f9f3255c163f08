"""The model's cross-structure validator: one broken fixture per invariant."""
import pytest

from rmapwalk.model import kernel as K
from rmapwalk.contract import PAGE_SIZE
from rmapwalk.scenario import REGION_BASE


def small():
    k = K.Kernel("pgoff", max_page_sharing=4)
    k.mmap(0, REGION_BASE, 8)
    for p in range(8):
        k.write(0, REGION_BASE + p * PAGE_SIZE, ("byte", 1))
    k.mprotect(0, REGION_BASE + PAGE_SIZE, REGION_BASE + 2 * PAGE_SIZE, "r")
    k.madvise_mergeable(0, REGION_BASE, REGION_BASE + 8 * PAGE_SIZE)
    k.fork(0)
    k.ksm_run(2)
    K.validate(k)
    return k


def vma0(k):
    return k.procs[0].vmas[0]


@pytest.mark.parametrize("invariant, breaker", [
    ("vma-order", lambda k: setattr(vma0(k), "vm_end", vma0(k).vm_start)),
    ("avc-key", lambda k: setattr(vma0(k), "vm_pgoff", vma0(k).vm_pgoff + 1)),
    ("avc-own", lambda k: vma0(k).anon_vma_chain.pop()),
    ("avc-dead", lambda k: k.procs[1].vma_unlink(k.procs[1].vmas[-1]) or
     [k.procs[1].pte.pop(a) for a in list(k.procs[1].pte) if a >= k.procs[0].vmas[-1].vm_start]),
    ("pte-maps", lambda k: next(iter(k.procs[0].pte.values())).maps.clear()),
    ("anon-findable", lambda k: k.procs[0].set_pte(REGION_BASE + 7 * PAGE_SIZE,
                                                  K.Folio(("x",), anon_vma=vma0(k).anon_vma, index=0))),
    ("stable-node", lambda k: setattr(next(f for f in k.procs[0].pte.values() if f.stable_node),
                                      "stable_node", K.StableNode(None, None))),
])
def test_validate_names_the_broken_invariant(invariant, breaker):
    k = small()
    breaker(k)
    with pytest.raises(K.ModelInvariantError) as e:
        K.validate(k)
    assert e.value.invariant == invariant
