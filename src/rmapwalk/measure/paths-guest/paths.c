/*
 * rmapwalk paths: the paths reviewers raised (issue 10, item 2), on a KSM page one of whose
 * mappings was moved by mremap(), so that its VMA keeps the page offset of its old address:
 *
 *   reclaim    Hugh Dickins' report on v3: the KSM page is swapped out under memory pressure
 *              (shrink_folio_list() -> try_to_unmap() -> rmap_walk_ksm(try_to_unmap_one)),
 *              after a madvise(MADV_PAGEOUT) that is recorded, not relied on (it skips shared
 *              folios): trigger window step=0 op=pageout, then step=1 op=reclaim.
 *   hwpoison   madvise(MADV_HWPOISON) on the KSM page: memory_failure() ->
 *              hwpoison_user_mappings() -> collect_procs_ksm(), then try_to_unmap().
 *   selftest   the merged selftest's shape (ksm_and_mremap): every process has
 *              PR_SET_MEMORY_MERGE and writes its pages, one worker moves page 2 onto page 1
 *              with MREMAP_FIXED, KSM merges, the worker retries move_pages() up to `retries`
 *              times, and every process compares its pfn with the migrated one.
 *
 *   paths PARAMS.txt
 *
 * PARAMS.txt (written by rmapwalk.measure.paths): key=value lines, `path` a name, the others
 * integers: pages, byte, depth, fanout (a complete fork tree: process i's children are
 * fanout*i+1 .. fanout*i+fanout, the root is 0), mover (the process that mremaps), move_src,
 * move_dst (mremap(region + move_src pages, 1 page, ..., MREMAP_MAYMOVE | MREMAP_FIXED,
 * region + move_dst pages)), merge_before_fork (1: the root merges, then forks, as in Hugh's
 * test; 0: every process writes its own pages after the fork, as in the selftest), prctl
 * (1: PR_SET_MEMORY_MERGE in every process; 0: MADV_MERGEABLE on the region), full_scans,
 * max_seconds (the wait for ksmd), retries (selftest), hog_max_mb, hog_step_mb, zram_mb
 * (reclaim), early_kill (hwpoison: vm.memory_failure_early_kill), buffer_kb (the ftrace ring
 * buffer per CPU; 0 leaves it), ksm_walks_only (an ftrace filter: only rmap_walk events of
 * KSM folios, for reclaim, where every page of the memory hog is walked too), split (1:
 * mprotect(PROT_READ) every even page before MADV_MERGEABLE, as the v4 benchmark does: one
 * VMA per page, all in one anon_vma, so that the query over [0, ULONG_MAX] meets many VMAs
 * that do not cover the page's index).
 *
 * Order: set-up (tracing, swap on zram, KSM knobs); the root maps `pages` pages filled with
 * `byte`; (merge_before_fork: KSM merges them); fork tree; every process: prctl or nothing,
 * writes its pages (merge_before_fork=0), a SIGBUS handler; the mover mremaps; KSM merges
 * until every mapping of every process is on one pfn (the root reads /proc/PID/pagemap) and
 * full_scans grew by `full_scans`; ksmd is stopped (run=0: merged pages stay merged, no race
 * with the trigger); every process records its pagemap entries (pre); the trigger, between
 * trace markers in the launcher's vocabulary (rmapwalk.measure.programs.parse_trace):
 *   rmapwalk-programs trigger step=1 op=OP pid=P comm=paths begin
 *   rmapwalk-programs trigger step=1 op=OP pid=P comm=paths end result=RC errno=E pages=N
 * then every process records its pagemap entries again (post, /proc/self/pagemap).
 * Console lines (one per process and page, then one summary):
 *   RMAPWALK-PATHS-MAP proc=I pid=P ppid=Q page=K moved=0|1 pre=0x... post=0x... sigbus=N sigbus_code=C
 *   RMAPWALK-PATHS-RESULT path=... key=value ...
 * Exit status 0 when the path ran (whatever the kernel did), 2 when something it needs is missing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <numaif.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_HWPOISON
#define MADV_HWPOISON 100
#endif

#define PAGE_SIZE 4096UL
#define KSM "/sys/kernel/mm/ksm/"
#define TRACING "/sys/kernel/tracing/"
#define MAX_PROCS 64
#define MAX_PAGES 36
#define PM_PRESENT (1ULL << 63)
#define PM_SWAP (1ULL << 62)
#define PM_PFN ((1ULL << 55) - 1)

enum { PATH_RECLAIM, PATH_HWPOISON, PATH_SELFTEST };
static const char *const PATH_NAMES[] = { "reclaim", "hwpoison", "selftest" };
static const char *const TRIGGER_OPS[] = { "reclaim", "hwpoison", "migrate" };

struct params {
	long path, pages, byte, depth, fanout, mover, move_src, move_dst, merge_before_fork,
	     prctl, full_scans, max_seconds, retries, hog_max_mb, hog_step_mb, zram_mb,
	     early_kill, buffer_kb, ksm_walks_only, split;
};

enum { PH_SETUP, PH_MOVE, PH_PRE, PH_TRIGGER, PH_POST, PH_EXIT };

struct proc {
	volatile int pid, ppid, ready, moved, pre_done, post_done, sigbus, sigbus_code;
	volatile uint64_t sigbus_addr;
	uint64_t pre[MAX_PAGES], post[MAX_PAGES];
};

/* shared by the whole fork tree (MAP_SHARED: never merged by KSM, not in any anon_vma) */
struct ctl {
	volatile int phase, nprocs, errors, trigger_done;
	volatile long trigger_rc, trigger_errno, tries, node_before, node_after, target;
	volatile uint64_t pfn_before, pfn_after;
	struct proc procs[MAX_PROCS];
};

static struct params P;
static struct ctl *C;
static char *region;
static int me;			/* this process's index in the tree */

static void error_context(FILE *out)
{
	fprintf(out, "[proc %d] ", me);
}

static void count_error(void)
{
	if (C)
		__sync_fetch_and_add(&C->errors, 1);
}

static const struct guest_errors GUEST_ERRORS = { .prefix = "rmapwalk-replayer: error: ",
						  .context = error_context,
						  .before_exit = count_error };

static void write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	size_t n = strlen(s);

	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	if (write(fd, s, n) != (ssize_t)n)
		die("write '%s' to %s: %s", s, path, strerror(errno));
	close(fd);
}

static void write_long(const char *path, long v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%ld\n", v);
	write_str(path, buf);
}

/* pagemap entry of page k of the region (Documentation/admin-guide/mm/pagemap.rst) */
static uint64_t pagemap_entry(const char *file, long k)
{
	uint64_t e = 0;
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("open %s: %s", file, strerror(errno));
	if (pread(fd, &e, 8, (off_t)((uintptr_t)(region + k * PAGE_SIZE) / PAGE_SIZE * 8)) != 8)
		die("read %s: %s", file, strerror(errno));
	close(fd);
	return e;
}

static void wait_phase(int phase)
{
	while (C->phase < phase)
		usleep(2000);
}

static int moved_page(int i, long k)
{
	return i == P.mover && k == P.move_dst;
}

static int hole(int i, long k)
{
	return i == P.mover && k == P.move_src;
}

/* processes in the complete tree: 1 + fanout + ... + fanout^depth */
static long tree_size(void)
{
	long n = 1, level = 1, d;

	for (d = 0; d < P.depth; d++) {
		level *= P.fanout;
		n += level;
	}
	return n;
}

static void set_path(const char *path, const char *value)
{
	long i;

	for (i = 0; i < 3 && strcmp(value, PATH_NAMES[i]); i++)
		;
	if (i == 3)
		die("%s: path=%s: expected reclaim, hwpoison or selftest", path, value);
	P.path = i;
}

static void load(const char *path)
{
	const struct param keys[] = {
		{ "pages", &P.pages, 2, MAX_PAGES }, { "byte", &P.byte, 1, 255 },
		{ "depth", &P.depth, 0, 5 }, { "fanout", &P.fanout, 1, 3 },
		{ "mover", &P.mover, 1, MAX_PROCS - 1 },
		{ "move_src", &P.move_src, 0, MAX_PAGES - 1 },
		{ "move_dst", &P.move_dst, 0, MAX_PAGES - 1 },
		{ "merge_before_fork", &P.merge_before_fork, 0, 1 }, { "prctl", &P.prctl, 0, 1 },
		{ "full_scans", &P.full_scans, 0, 100 }, { "max_seconds", &P.max_seconds, 1, 3600 },
		{ "retries", &P.retries, 1, 1000 }, { "hog_max_mb", &P.hog_max_mb, 0, 8192 },
		{ "hog_step_mb", &P.hog_step_mb, 1, 1024 }, { "zram_mb", &P.zram_mb, 0, 8192 },
		{ "early_kill", &P.early_kill, 0, 1 }, { "buffer_kb", &P.buffer_kb, 0, 1 << 20 },
		{ "ksm_walks_only", &P.ksm_walks_only, 0, 1 }, { "split", &P.split, 0, 1 },
	};

	load_params(path, keys, sizeof(keys) / sizeof(keys[0]), "path", set_path);
	if (tree_size() > MAX_PROCS || P.mover >= tree_size())
		die("%s: a tree of %ld processes, mover=%ld", path, tree_size(), P.mover);
	if (P.split && !P.merge_before_fork)
		die("%s: split=1 needs merge_before_fork=1 (nobody writes the read-only pages)", path);
	if (P.move_src >= P.pages || P.move_dst >= P.pages || P.move_src == P.move_dst)
		die("%s: move_src=%ld, move_dst=%ld in a region of %ld pages", path, P.move_src,
		    P.move_dst, P.pages);
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	C->procs[me].sigbus++;
	C->procs[me].sigbus_code = si->si_code;
	C->procs[me].sigbus_addr = (uint64_t)(uintptr_t)si->si_addr;
}

/* the fork tree below process i (runs in process i) */
static void spawn(int i)
{
	long c;

	for (c = 1; c <= P.fanout; c++) {
		long child = P.fanout * i + c;
		pid_t pid;

		if (child >= C->nprocs)
			return;
		pid = fork();
		if (pid < 0)
			die("fork: %s", strerror(errno));
		if (pid == 0) {
			me = (int)child;
			C->procs[me].pid = getpid();
			C->procs[me].ppid = getppid();
			spawn(me);
			return;
		}
	}
}

static void self_check(uint64_t *out)
{
	long k;

	for (k = 0; k < P.pages; k++)
		out[k] = pagemap_entry("/proc/self/pagemap", k);
}

/* every process, after the fork: its own set-up, then the phases */
static void member(void)
{
	struct sigaction sa;
	struct proc *p = &C->procs[me];

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	if (sigaction(SIGBUS, &sa, NULL))
		die("sigaction(SIGBUS): %s", strerror(errno));
	if (P.prctl && prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
		die("prctl(PR_SET_MEMORY_MERGE): %s", strerror(errno));
	if (!P.merge_before_fork)
		memset(region, (int)P.byte, (size_t)P.pages * PAGE_SIZE);	/* own pages (COW) */
	p->ready = 1;
	wait_phase(PH_MOVE);
	if (me == P.mover) {
		void *r = mremap(region + P.move_src * PAGE_SIZE, PAGE_SIZE, PAGE_SIZE,
				 MREMAP_MAYMOVE | MREMAP_FIXED, region + P.move_dst * PAGE_SIZE);
		p->moved = r == MAP_FAILED ? -errno : 1;
		marker("rmapwalk-paths phase=mremap proc=%d result=%d\n", me, p->moved);
	}
	wait_phase(PH_PRE);
	self_check(p->pre);
	p->pre_done = 1;
	wait_phase(PH_TRIGGER);
	if (P.path == PATH_SELFTEST && me == P.mover) {
		/* the worker migrates its moved page, retrying as the selftest does */
		void *addr = region + P.move_dst * PAGE_SIZE;
		int node = -1, status = -1, target;
		long rc = 0, t;

		if (syscall(SYS_move_pages, 0, 1UL, &addr, NULL, &node, 0) < 0)
			die("move_pages (query): %s", strerror(errno));
		target = node == 1 ? 0 : 1;
		C->node_before = node;
		C->target = target;
		C->pfn_before = pagemap_entry("/proc/self/pagemap", P.move_dst) & PM_PFN;
		marker("rmapwalk-programs trigger step=1 op=migrate pid=%d comm=paths begin\n",
		       getpid());
		for (t = 1; t <= P.retries; t++) {
			rc = syscall(SYS_move_pages, 0, 1UL, &addr, &target, &status,
				     MPOL_MF_MOVE_ALL);
			C->trigger_errno = rc < 0 ? errno : 0;
			if (rc == 0 && status == target)
				break;
		}
		C->tries = t > P.retries ? P.retries : t;
		C->trigger_rc = rc;
		marker("rmapwalk-programs trigger step=1 op=migrate pid=%d comm=paths end "
		       "result=%ld errno=%s pages=1\n", getpid(), rc,
		       C->trigger_errno ? strerrorname_np((int)C->trigger_errno) : "0");
		C->node_after = status;
		C->pfn_after = pagemap_entry("/proc/self/pagemap", P.move_dst) & PM_PFN;
		C->trigger_done = 1;
	}
	wait_phase(PH_POST);
	self_check(p->post);
	p->post_done = 1;
	wait_phase(PH_EXIT);
}

static void wait_all(volatile int *(*field)(int), const char *what)
{
	double t0 = now();
	int i, n;

	for (;;) {
		for (i = n = 0; i < C->nprocs; i++)
			n += *field(i) != 0;
		if (n == C->nprocs)
			return;
		if (C->errors)
			die("a process failed while waiting for %s", what);
		if (now() - t0 > P.max_seconds)
			die("%d of %d processes %s after %ld s", n, C->nprocs, what, P.max_seconds);
		usleep(2000);
	}
}

static volatile int *f_ready(int i) { return &C->procs[i].ready; }
static volatile int *f_pre(int i) { return &C->procs[i].pre_done; }
static volatile int *f_post(int i) { return &C->procs[i].post_done; }

/* mappings of the region not on `pfn` (holes left out), read by the root from outside */
static int unmerged(uint64_t pfn, int present_only)
{
	char file[64];
	int i, n = 0;
	long k;

	for (i = 0; i < C->nprocs; i++) {
		snprintf(file, sizeof(file), "/proc/%d/pagemap", C->procs[i].pid);
		for (k = 0; k < P.pages; k++) {
			uint64_t e;
			if (hole(i, k))
				continue;
			e = pagemap_entry(file, k);
			if (present_only)
				n += (e & PM_PRESENT) != 0;
			else
				n += !(e & PM_PRESENT) || (e & PM_PFN) != pfn;
		}
	}
	return n;
}

/* run ksmd until every process's mappings are on one KSM page; the seconds it took */
static double merge(int nprocs, long *scans)
{
	double t0 = now();
	long f0 = read_long(KSM "full_scans");
	int saved = C->nprocs;

	C->nprocs = nprocs;
	write_long(KSM "run", 1);
	for (;;) {
		uint64_t pfn = pagemap_entry("/proc/self/pagemap", 0) & PM_PFN;
		long f = read_long(KSM "full_scans");
		if (f >= f0 + P.full_scans && pfn && !unmerged(pfn, 0))
			break;
		if (now() - t0 > P.max_seconds)
			die("KSM did not merge every mapping in %ld s (full_scans %ld -> %ld, "
			    "%d mappings off the root's page)", P.max_seconds, f0, f, unmerged(pfn, 0));
		usleep(20000);
	}
	write_long(KSM "run", 0);	/* stop ksmd; merged pages stay merged */
	*scans = read_long(KSM "full_scans") - f0;
	C->nprocs = saved;
	return now() - t0;
}

static void setup_swap(void)
{
	char *hdr;
	int fd;
	long pages = P.zram_mb * 256;

	write_long("/sys/block/zram0/disksize", P.zram_mb << 20);
	hdr = calloc(1, PAGE_SIZE);
	if (!hdr)
		die("calloc");
	/* include/linux/swap.h union swap_header: info at 1024, magic at PAGE_SIZE - 10 */
	((uint32_t *)(hdr + 1024))[0] = 1;		/* version */
	((uint32_t *)(hdr + 1024))[1] = (uint32_t)(pages - 1);	/* last_page */
	((uint32_t *)(hdr + 1024))[2] = 0;		/* nr_badpages */
	memcpy(hdr + PAGE_SIZE - 10, "SWAPSPACE2", 10);
	fd = open("/dev/zram0", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		die("open /dev/zram0: %s (CONFIG_ZRAM)", strerror(errno));
	if (pwrite(fd, hdr, PAGE_SIZE, 0) != (ssize_t)PAGE_SIZE)
		die("write the swap header: %s", strerror(errno));
	fsync(fd);
	close(fd);
	free(hdr);
	if (swapon("/dev/zram0", 0))
		die("swapon(/dev/zram0): %s (CONFIG_SWAP)", strerror(errno));
}

/*
 * reclaim: a memory hog.  New anonymous pages start on the inactive list and the KSM page,
 * referenced by several page tables, was activated by its first folio_referenced() walk, so
 * a hog that only streams through new memory never makes reclaim look at the active list
 * (inactive_is_low() stays false).  So after each new step of `hog_step_mb` the hog touches
 * every page it has again: its pages get activated too, the active list grows, and
 * shrink_active_list() deactivates the KSM page, which the next inactive scan reclaims.
 * It stops when no mapping of the region is present any more, or at `hog_max_mb`.
 */
static long reclaim(long *hog_mb)
{
	size_t step = (size_t)P.hog_step_mb << 20, off;
	char *chunks[1024];
	long n = 0, j;

	*hog_mb = 0;
	while (*hog_mb < P.hog_max_mb && n < 1024 && unmerged(0, 1)) {
		chunks[n] = mmap(NULL, step, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				 -1, 0);
		if (chunks[n] == MAP_FAILED)
			die("mmap of the memory hog: %s", strerror(errno));
		memset(chunks[n], 0x5a, step);	/* one repeated word: zram stores it without memory */
		n++;
		*hog_mb += P.hog_step_mb;
		for (j = 0; j < n; j++)
			for (off = 0; off < step; off += PAGE_SIZE)
				((volatile char *)chunks[j])[off] = 0x5a;
	}
	return unmerged(0, 1);	/* mappings still present */
}

int main(int argc, char **argv)
{
	size_t len;
	long scans0 = 0, scans = 0, k, present = -1, hog_mb = 0, sw0 = 0, sw1 = 0;
	long pageout_rc = 0, pageout_present = -1;	/* -1: not tried (not reclaim) */
	long mc0 = vmstat("pgmigrate_success");
	double merge0 = 0, merge1;
	int i, status;
	uint64_t ksm_pfn;

	if (argc != 2)
		die("usage: paths PARAMS.txt");
	load(argv[1]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (access(KSM "run", W_OK))
		die("%srun: %s (CONFIG_KSM)", KSM, strerror(errno));
	C = mmap(NULL, sizeof(*C), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (C == MAP_FAILED)
		die("mmap of the shared control page: %s", strerror(errno));
	C->nprocs = (int)tree_size();
	C->procs[0].pid = getpid();
	C->procs[0].ppid = getppid();

	if (P.buffer_kb)
		write_long(TRACING "buffer_size_kb", P.buffer_kb);
	if (P.ksm_walks_only)	/* enum rmap_walk_type: RMAP_WALK_KSM is 0 (patch 0001) */
		write_str(TRACING "events/rmap/rmap_walk/filter", "type == 0\n");
	if (access(TRACING "events/ksm/collect_procs_ksm/enable", W_OK) == 0)
		write_str(TRACING "events/ksm/collect_procs_ksm/enable", "1\n");
	else if (P.path == PATH_HWPOISON)
		die("no ksm:collect_procs_ksm event (patch 0008/0009)");
	if (P.path == PATH_RECLAIM)
		setup_swap();
	if (P.path == PATH_HWPOISON)
		write_long("/proc/sys/vm/memory_failure_early_kill", P.early_kill);
	write_long(KSM "run", 2);			/* a clean start: nothing merged */
	write_long(KSM "sleep_millisecs", 0);
	write_long(KSM "pages_to_scan", 1000);

	len = (size_t)P.pages * PAGE_SIZE;
	if (P.prctl && prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
		die("prctl(PR_SET_MEMORY_MERGE): %s", strerror(errno));
	region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		die("mmap of %ld pages: %s", P.pages, strerror(errno));
	memset(region, (int)P.byte, len);
	for (k = 0; P.split && k < P.pages; k += 2)	/* one VMA per page, one anon_vma */
		if (mprotect(region + k * PAGE_SIZE, PAGE_SIZE, PROT_READ))
			die("mprotect(PROT_READ) of page %ld: %s", k, strerror(errno));
	if (!P.prctl && madvise(region, len, MADV_MERGEABLE))
		die("madvise(MADV_MERGEABLE): %s", strerror(errno));
	marker("rmapwalk-paths phase=mapped path=%s\n", PATH_NAMES[P.path]);
	if (P.merge_before_fork) {
		merge0 = merge(1, &scans0);
		marker("rmapwalk-paths phase=merged-before-fork\n");
	}

	spawn(0);
	if (me != 0) {
		member();
		while (wait(&status) > 0)
			;
		_exit(0);
	}
	/* the root: its own set-up as a member, then it drives the phases */
	{
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_sigbus;
		sa.sa_flags = SA_SIGINFO | SA_RESTART;
		if (sigaction(SIGBUS, &sa, NULL))
			die("sigaction(SIGBUS): %s", strerror(errno));
		if (!P.merge_before_fork)
			memset(region, (int)P.byte, len);
		C->procs[0].ready = 1;
	}
	wait_all(f_ready, "ready");
	marker("rmapwalk-paths phase=forked procs=%d\n", C->nprocs);
	C->phase = PH_MOVE;
	while (!C->procs[P.mover].moved)
		usleep(2000);
	if (C->procs[P.mover].moved < 0)
		die("mremap in process %ld: %s", P.mover, strerror(-C->procs[P.mover].moved));
	merge1 = merge(C->nprocs, &scans);
	ksm_pfn = pagemap_entry("/proc/self/pagemap", 0) & PM_PFN;
	marker("rmapwalk-paths phase=merged pfn=%#" PRIx64 "\n", ksm_pfn);
	printf("RMAPWALK-PATHS-MERGED procs=%d merge_seconds=%.3f full_scans=%ld "
	       "merge_before_fork_seconds=%.3f full_scans_before_fork=%ld pages_shared=%ld "
	       "pages_sharing=%ld ksm_pfn=%" PRIu64 "\n", C->nprocs, merge1, scans, merge0, scans0,
	       read_long(KSM "pages_shared"), read_long(KSM "pages_sharing"), ksm_pfn);
	C->phase = PH_PRE;
	self_check(C->procs[0].pre);
	C->procs[0].pre_done = 1;
	wait_all(f_pre, "checked their pagemap (pre)");

	C->phase = PH_TRIGGER;
	if (P.path == PATH_SELFTEST) {
		double t0 = now();
		while (!C->trigger_done) {
			if (C->errors || now() - t0 > P.max_seconds)
				die("the worker did not finish its migration");
			usleep(2000);
		}
	} else if (P.path == PATH_HWPOISON) {
		long rc;
		C->pfn_before = ksm_pfn;
		marker("rmapwalk-programs trigger step=1 op=hwpoison pid=%d comm=paths begin\n",
		       getpid());
		rc = madvise(region, PAGE_SIZE, MADV_HWPOISON);
		C->trigger_errno = rc ? errno : 0;
		C->trigger_rc = rc;
		marker("rmapwalk-programs trigger step=1 op=hwpoison pid=%d comm=paths end "
		       "result=%ld errno=%s pages=1\n", getpid(), rc,
		       rc ? strerrorname_np((int)C->trigger_errno) : "0");
	} else {
		/*
		 * First madvise(MADV_PAGEOUT) on the root's mappings, as a record of why it
		 * cannot be the trigger: madvise_cold_or_pageout_pte_range() skips a folio
		 * whose mapcount is not its number of pages, i.e. any shared KSM page.
		 */
		marker("rmapwalk-programs trigger step=0 op=pageout pid=%d comm=paths begin\n",
		       getpid());
		pageout_rc = madvise(region, len, MADV_PAGEOUT) ? -errno : 0;
		marker("rmapwalk-programs trigger step=0 op=pageout pid=%d comm=paths end "
		       "result=%ld errno=0 pages=%ld\n", getpid(), pageout_rc, P.pages);
		pageout_present = unmerged(0, 1);
		C->pfn_before = ksm_pfn;
		sw0 = vmstat("pswpout");
		marker("rmapwalk-programs trigger step=1 op=reclaim pid=%d comm=paths begin\n",
		       getpid());
		present = reclaim(&hog_mb);
		sw1 = vmstat("pswpout");
		C->trigger_rc = present;
		marker("rmapwalk-programs trigger step=1 op=reclaim pid=%d comm=paths end "
		       "result=%ld errno=0 pages=%ld\n", getpid(), present, hog_mb * 256);
	}

	C->phase = PH_POST;
	self_check(C->procs[0].post);
	C->procs[0].post_done = 1;
	wait_all(f_post, "checked their pagemap (post)");
	for (i = 0; i < C->nprocs; i++)
		for (k = 0; k < P.pages; k++)
			printf("RMAPWALK-PATHS-MAP proc=%d pid=%d ppid=%d page=%ld moved=%d hole=%d "
			       "pre=%#" PRIx64 " post=%#" PRIx64 " sigbus=%d sigbus_code=%d\n", i,
			       C->procs[i].pid, C->procs[i].ppid, k, moved_page(i, k), hole(i, k),
			       C->procs[i].pre[k], C->procs[i].post[k], C->procs[i].sigbus,
			       C->procs[i].sigbus_code);
	printf("RMAPWALK-PATHS-RESULT path=%s op=%s procs=%d pages=%ld mover=%ld ksm_pfn=%" PRIu64
	       " result=%ld errno=%s tries=%ld node_before=%ld target=%ld node_after=%ld "
	       "pfn_before=%" PRIu64 " pfn_after=%" PRIu64 " hog_mb=%ld pswpout=%ld "
	       "pgmigrate_success=%ld pageout_rc=%ld pageout_present=%ld\n", PATH_NAMES[P.path],
	       TRIGGER_OPS[P.path], C->nprocs,
	       P.pages, P.mover, ksm_pfn, (long)C->trigger_rc,
	       C->trigger_errno ? strerrorname_np((int)C->trigger_errno) : "0", (long)C->tries,
	       (long)C->node_before, (long)C->target, (long)C->node_after,
	       (uint64_t)C->pfn_before, (uint64_t)C->pfn_after, hog_mb, sw1 - sw0,
	       vmstat("pgmigrate_success") - mc0, pageout_rc, pageout_present);
	C->phase = PH_EXIT;
	while (wait(&status) > 0)
		;
	write_long(KSM "run", 2);
	printf("RMAPWALK-PATHS-DONE path=%s\n", PATH_NAMES[P.path]);
	return 0;
}
