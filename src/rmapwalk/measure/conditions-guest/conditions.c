/*
 * rmapwalk conditions: the v4 rmap_benchmark's KSM case under the conditions it was posted
 * with (issue 10, item 1), written from its description in ../shared/reference/FACTS.md
 * ("The v4 benchmark's exact conditions"), not from its source.
 *
 *   conditions PARAMS.txt
 *
 * PARAMS.txt holds key=value lines (written by rmapwalk.measure.conditions from
 * data/conditions/<name>.yaml): pages, byte, page (the page to migrate), rounds,
 * sleep_millisecs, pages_to_scan, full_scans, poll_ms, max_seconds, settle_ms, and two
 * switches that give the reproduction's own conditions instead (data/scenarios/
 * seed-benchmark.yaml): split_before_merge=1 splits before MADV_MERGEABLE and run=1,
 * stop_before_trigger=1 parks ksmd (run=0) once the scans are done.  Both 0: as posted.
 *
 * One round is one run of the benchmark, in order:
 *   1. mmap `pages` anonymous pages, fill them with `byte`;
 *   2. KSM: run=2 (stop, unmerge everything), sleep_millisecs, pages_to_scan;
 *   3. madvise(MADV_MERGEABLE) on the region;
 *   4. run=1: ksmd scans from here on and is never stopped before the trigger;
 *   5. mprotect(PROT_READ) on every even page: the region splits into `pages` VMAs sharing
 *      one anon_vma *while ksmd runs* (the reproduction's own benchmark splits first and
 *      parks ksmd with run=0 before it migrates);
 *   6. wait until /sys/kernel/mm/ksm/full_scans grew by `full_scans`, polling every
 *      `poll_ms`, giving up after `max_seconds` (then the trigger runs anyway, as posted);
 *   7. trigger, ksmd still running: move_pages(MPOL_MF_MOVE_ALL) once to query the node of
 *      page `page`, once to move it to the other node; a positive return (the page was not
 *      migrated: mm/migrate.c gave up after its retries) is not an error;
 *   8. sleep `settle_ms`; the trigger window of the trace ends here (the posted benchmark
 *      then read every rmap_walk line with page_type=ksm and printed max, avg and count);
 *   9. munmap.
 * After the last round: run=2, so that ksmd is quiet while /init streams the trace.
 *
 * Trace markers (tracefs trace_marker), in the launcher's trigger vocabulary so that
 * rmapwalk.measure.programs.parse_trace files every walk under its round:
 *   rmapwalk-programs trigger step=R op=migrate pid=P comm=conditions begin
 *   rmapwalk-programs trigger step=R op=migrate pid=P comm=conditions end result=RC errno=E pages=1
 *   rmapwalk-conditions round=R phase=NAME      (mmap, mergeable, run, split, merged, done)
 * Console (stdout), one line per round:
 *   RMAPWALK-CONDITIONS round=R key=value ...   (KSM counters, pfns, nodes, vmstat deltas)
 * Exit status 0 after every round, 2 when something the benchmark needs is missing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <numaif.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"

#define PAGE_SIZE 4096UL
#define KSM "/sys/kernel/mm/ksm/"

/* the replayer's error prefix: the driver quotes these lines in a failed run's reason */
static const struct guest_errors GUEST_ERRORS = { .prefix = "rmapwalk-replayer: error: " };

struct params {
	long pages, byte, page, rounds, sleep_millisecs, pages_to_scan, full_scans, poll_ms,
	     max_seconds, settle_ms, split_before_merge, stop_before_trigger;
};

static void write_long(const char *path, long v)
{
	char buf[32];
	int fd = open(path, O_WRONLY | O_CLOEXEC), n;

	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	n = snprintf(buf, sizeof(buf), "%ld\n", v);
	if (write(fd, buf, (size_t)n) != n)
		die("write %ld to %s: %s", v, path, strerror(errno));
	close(fd);
}

/* the pfn of the page at addr (Documentation/admin-guide/mm/pagemap.rst), 0 if absent */
static uint64_t pfn_of(void *addr)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("open /proc/self/pagemap: %s", strerror(errno));
	if (pread(fd, &e, 8, (off_t)((uintptr_t)addr / PAGE_SIZE * 8)) != 8)
		die("read /proc/self/pagemap: %s", strerror(errno));
	close(fd);
	return (e >> 63) ? e & ((1ULL << 55) - 1) : 0;
}

static long move_pages1(void *addr, const int *node, int *status)
{
	void *pages[1] = { addr };
	return syscall(SYS_move_pages, 0, 1UL, pages, node, status, MPOL_MF_MOVE_ALL);
}

static void load(const char *path, struct params *p)
{
	const struct param keys[] = {
		{ "pages", &p->pages, 2, 1 << 20 }, { "byte", &p->byte, 0, 255 },
		{ "page", &p->page, 0, (1 << 20) - 1 }, { "rounds", &p->rounds, 1, 100 },
		{ "sleep_millisecs", &p->sleep_millisecs, 0, 100000 },
		{ "pages_to_scan", &p->pages_to_scan, 1, 1 << 20 },
		{ "full_scans", &p->full_scans, 0, 100 }, { "poll_ms", &p->poll_ms, 1, 60000 },
		{ "max_seconds", &p->max_seconds, 1, 3600 }, { "settle_ms", &p->settle_ms, 0, 60000 },
		{ "split_before_merge", &p->split_before_merge, 0, 1 },
		{ "stop_before_trigger", &p->stop_before_trigger, 0, 1 },
	};

	load_params(path, keys, sizeof(keys) / sizeof(keys[0]), NULL, NULL);
	if (p->page >= p->pages)
		die("%s: page=%ld is not in the region of %ld pages", path, p->page, p->pages);
}

/* mprotect(PROT_READ) every even page: `pages` VMAs, one anon_vma (mm/mprotect.c) */
static void split(const struct params *p, char *a, long r)
{
	long i;

	for (i = 0; i < p->pages; i += 2)
		if (mprotect(a + i * PAGE_SIZE, PAGE_SIZE, PROT_READ))
			die("mprotect(PROT_READ) of page %ld: %s", i, strerror(errno));
	marker("rmapwalk-conditions round=%ld phase=split\n", r);
}

static void round_(const struct params *p, long r)
{
	size_t len = (size_t)p->pages * PAGE_SIZE;
	long f0, f1, shared, sharing, chains, dups, s0, f0m, rc, polls = 0;
	int node = -1, status = -1, target, after = -1, err;
	uint64_t pfn_before, pfn_after;
	double t0, t_merge, t_move;
	char *a;

	marker("rmapwalk-conditions round=%ld phase=mmap\n", r);
	a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		die("mmap of %ld pages: %s", p->pages, strerror(errno));
	memset(a, (int)p->byte, len);

	if (p->split_before_merge)
		split(p, a, r);
	write_long(KSM "run", 2);
	write_long(KSM "sleep_millisecs", p->sleep_millisecs);
	write_long(KSM "pages_to_scan", p->pages_to_scan);
	marker("rmapwalk-conditions round=%ld phase=mergeable\n", r);
	if (madvise(a, len, MADV_MERGEABLE))
		die("madvise(MADV_MERGEABLE): %s", strerror(errno));
	marker("rmapwalk-conditions round=%ld phase=run\n", r);
	write_long(KSM "run", 1);
	if (!p->split_before_merge)
		split(p, a, r);

	f0 = read_long(KSM "full_scans");
	t0 = now();
	do {
		usleep((useconds_t)p->poll_ms * 1000);
		polls++;
		f1 = read_long(KSM "full_scans");
	} while (f1 < f0 + p->full_scans && now() - t0 < p->max_seconds);
	t_merge = now() - t0;
	shared = read_long(KSM "pages_shared");
	sharing = read_long(KSM "pages_sharing");
	chains = read_long(KSM "stable_node_chains");
	dups = read_long(KSM "stable_node_dups");
	if (p->stop_before_trigger)
		write_long(KSM "run", 0);	/* merged pages stay merged; ksmd sleeps */
	marker("rmapwalk-conditions round=%ld phase=merged\n", r);

	/* the trigger: ksmd is still running */
	pfn_before = pfn_of(a + p->page * PAGE_SIZE);
	s0 = vmstat("pgmigrate_success");
	f0m = vmstat("pgmigrate_fail");
	marker("rmapwalk-programs trigger step=%ld op=migrate pid=%d comm=conditions begin\n", r,
	       getpid());
	if (move_pages1(a + p->page * PAGE_SIZE, NULL, &status) < 0)
		die("move_pages (query) of page %ld: %s", p->page, strerror(errno));
	node = status;
	target = node == 1 ? 0 : 1;
	t0 = now();
	rc = move_pages1(a + p->page * PAGE_SIZE, &target, &after);
	err = rc < 0 ? errno : 0;
	t_move = now() - t0;
	usleep((useconds_t)p->settle_ms * 1000);
	marker("rmapwalk-programs trigger step=%ld op=migrate pid=%d comm=conditions end "
	       "result=%ld errno=%s pages=1\n", r, getpid(), rc, err ? strerrorname_np(err) : "0");
	pfn_after = pfn_of(a + p->page * PAGE_SIZE);
	if (move_pages1(a + p->page * PAGE_SIZE, NULL, &status) < 0)
		status = -errno;
	printf("RMAPWALK-CONDITIONS round=%ld full_scans_before=%ld full_scans_after=%ld "
	       "merge_seconds=%.3f polls=%ld merge_timeout=%d pages_shared=%ld pages_sharing=%ld "
	       "stable_node_chains=%ld stable_node_dups=%ld node_before=%d target=%d "
	       "move_pages=%ld errno=%s status=%d node_after=%d pfn_before=%" PRIu64
	       " pfn_after=%" PRIu64 " pgmigrate_success=%ld pgmigrate_fail=%ld "
	       "move_seconds=%.6f full_scans_end=%ld ksm_run=%ld\n",
	       r, f0, f1, t_merge, polls, f1 < f0 + p->full_scans, shared, sharing, chains, dups,
	       node, target, rc, err ? strerrorname_np(err) : "0", after, status, pfn_before,
	       pfn_after, vmstat("pgmigrate_success") - s0, vmstat("pgmigrate_fail") - f0m,
	       t_move, read_long(KSM "full_scans"), read_long(KSM "run"));
	fflush(stdout);
	if (munmap(a, len))
		die("munmap: %s", strerror(errno));
	marker("rmapwalk-conditions round=%ld phase=done\n", r);
}

int main(int argc, char **argv)
{
	struct params p;
	long r;

	if (argc != 2)
		die("usage: conditions PARAMS.txt");
	load(argv[1], &p);
	if (access(KSM "run", W_OK))
		die("%srun: %s (CONFIG_KSM)", KSM, strerror(errno));
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (r = 1; r <= p.rounds; r++)
		round_(&p, r);
	write_long(KSM "run", 2);
	printf("RMAPWALK-CONDITIONS-DONE rounds=%ld\n", p.rounds);
	return 0;
}
