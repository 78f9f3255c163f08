"""mm/swap.c: the per-CPU batch that new folios wait in before they reach the LRU.

``folio_add_lru`` (called for every new anonymous folio by ``do_anonymous_page`` and
``wp_page_copy``, and for a new shmem folio by ``shmem_alloc_and_add_folio``) does not put the
folio on an LRU list at once: it takes a reference and adds it to this CPU's
``cpu_fbatches.lru_add`` folio_batch; only when the batch is full (``PAGEVEC_SIZE`` folios,
``folio_batch_add`` returns no space left) or when it is drained does ``folio_batch_move_lru``
set PG_lru on all of them.  Until then ``folio_test_lru`` is false, which is what
mm/page_idle.c ``page_idle_get_folio`` checks: a page_idle write on such a folio does no rmap
walk at all.

The VM runs with one CPU (``-smp 1``), so there is one batch.  The drains the model makes
(each the 6.12 caller of ``lru_add_drain`` / ``lru_add_drain_all`` / ``lru_cache_disable``):

* ksmd at the start of every full scan (mm/ksm.c ``scan_get_next_rmap_item``);
* munmap and mremap, when they unmap something (mm/vma.c ``vms_clear_ptes``);
* move_pages with a target node (mm/migrate.c ``do_pages_move``: ``lru_cache_disable``;
  the new folio is added while the cache is disabled, so straight to the LRU);
* a write fault on a shared, non-KSM anonymous folio that is not on the LRU yet
  (mm/memory.c ``wp_can_reuse_anon_folio``).
"""
from __future__ import annotations

# include/linux/pagevec.h
PAGEVEC_SIZE = 31


class LruAddBatch:
    """``cpu_fbatches.lru_add`` of the one CPU."""

    def __init__(self) -> None:
        self.folios: list = []

    def folio_add_lru(self, folio) -> None:
        """mm/swap.c ``folio_add_lru`` → ``folio_batch_add_and_move``."""
        folio.lru = False
        self.folios.append(folio)
        if len(self.folios) >= PAGEVEC_SIZE:       # !folio_batch_add(): no space left
            self.lru_add_drain()

    def lru_add_drain(self) -> None:
        """mm/swap.c ``lru_add_drain`` (``lru_add_drain_all`` on one CPU): every batched
        folio goes on its LRU list (``lru_add`` sets PG_lru)."""
        for folio in self.folios:
            folio.lru = True
        self.folios = []

    def holds(self, folio) -> bool:
        """The batch holds a reference on each of its folios (``folio_get``)."""
        return not folio.lru
