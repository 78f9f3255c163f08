/*
 * rmapwalk launcher: start a real program KSM-mergeable, and trigger the rmap walks the
 * kernel makes in production on a whole process (rmapwalk programs, issue 11).
 *
 *   launcher exec PROG [ARGS...]
 *       prctl(PR_SET_MEMORY_MERGE, 1) (Linux 6.4+, mm/ksm.c ksm_enable_merge_any: every
 *       anonymous VMA of this mm, now and later, is MADV_MERGEABLE; the flag is kept across
 *       fork and execve), then execvp(PROG).  The program itself is not changed.
 *
 *   launcher migrate STEP PID
 *       migrate_pages(PID, from = {0, 1}, to = {1}) (mm/mempolicy.c
 *       kernel_migrate_pages -> do_migrate_pages: every page of the process on node 0 goes to
 *       node 1; root, so MPOL_MF_MOVE_ALL: shared and KSM pages too).  Each migrated KSM
 *       folio is walked by rmap_walk_ksm() twice: try_to_migrate() and
 *       remove_migration_ptes().  The syscall returns the number of pages not migrated.
 *
 *   launcher idle STEP PID
 *       The page_idle scan an idle-page tracker makes: every present page of every VMA of
 *       PID (/proc/PID/maps, /proc/PID/pagemap: bit 63 present, bits 0-54 the pfn) gets its
 *       bit set in /sys/kernel/mm/page_idle/bitmap (64-bit words, written with pwrite at
 *       pfn / 64 * 8); mm/page_idle.c page_idle_bitmap_write() walks the rmap of each LRU
 *       folio whose bit is set (page_idle_clear_pte_refs: rmap_walk, rmap_walk_ksm for KSM).
 *
 * Around each trigger the launcher writes trace markers (tracefs trace_marker):
 *   rmapwalk-programs trigger step=S op=migrate|idle pid=P comm=C begin
 *   rmapwalk-programs trigger step=S op=... pid=P comm=C end result=R errno=E pages=N
 * and one line on stdout:
 *   RMAPWALK-TRIGGER step=S op=... pid=P comm=C result=R errno=E pages=N seconds=T
 * For migrate, result is migrate_pages()'s return value (pages not migrated, or -1) and
 * pages is 0; for idle, result is the number of bitmap words written and pages the number of
 * present pages whose bit was set.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

static const char *IDLE_BITMAP = "/sys/kernel/mm/page_idle/bitmap";
static const struct guest_errors GUEST_ERRORS = { .prefix = "rmapwalk-launcher: error: ",
						  .to_stderr = 1 };

static void comm_of(long pid, char *out, size_t size)
{
	char path[64];
	FILE *f;
	size_t i;

	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	snprintf(out, size, "?");
	f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(out, (int)size, f)) {
		out[strcspn(out, "\n")] = 0;
		for (i = 0; out[i]; i++)	/* one token in key=value markers */
			if (out[i] == ' ' || out[i] == '=')
				out[i] = '_';
	}
	fclose(f);
}

static long parse_long(const char *s, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 0)
		die("%s: expected a non-negative integer, got '%s'", what, s);
	return v;
}

static void report(long step, const char *op, long pid, const char *comm, long result, int err,
		   long pages, double seconds)
{
	const char *ename = err ? strerrorname_np(err) : "0";

	marker("rmapwalk-programs trigger step=%ld op=%s pid=%ld comm=%s end result=%ld "
	       "errno=%s pages=%ld\n", step, op, pid, comm, result, ename ? ename : "?", pages);
	printf("RMAPWALK-TRIGGER step=%ld op=%s pid=%ld comm=%s result=%ld errno=%s pages=%ld "
	       "seconds=%.6f\n", step, op, pid, comm, result, ename ? ename : "?", pages, seconds);
	fflush(stdout);
}

static int do_migrate(long step, long pid)
{
	unsigned long from = 0x3, to = 0x2;	/* nodes {0, 1} -> {1} */
	char comm[64];
	double t0;
	long r;
	int err;

	comm_of(pid, comm, sizeof(comm));
	marker("rmapwalk-programs trigger step=%ld op=migrate pid=%ld comm=%s begin\n", step, pid,
	       comm);
	t0 = now();
	r = syscall(SYS_migrate_pages, (pid_t)pid, 8 * sizeof(unsigned long), &from, &to);
	err = r < 0 ? errno : 0;
	report(step, "migrate", pid, comm, r, err, 0, now() - t0);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int do_idle(long step, long pid)
{
	char path[64], line[4096], comm[64];
	uint64_t *pfns = NULL, *buf;
	size_t n = 0, cap = 0, i, j;
	long words = 0;
	int pm, bm, err = 0;
	FILE *maps;
	double t0;

	comm_of(pid, comm, sizeof(comm));
	snprintf(path, sizeof(path), "/proc/%ld/maps", pid);
	maps = fopen(path, "r");
	if (!maps)
		die("open %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "/proc/%ld/pagemap", pid);
	pm = open(path, O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		die("open %s: %s", path, strerror(errno));
	buf = malloc(512 * sizeof(uint64_t));
	if (!buf)
		die("out of memory");
	/* the pfns first (reading pagemap walks page tables, not the rmap) */
	while (fgets(line, sizeof(line), maps)) {
		unsigned long start, end, vpn;
		if (sscanf(line, "%lx-%lx", &start, &end) != 2)
			continue;
		if (strstr(line, "[vsyscall]"))
			continue;
		for (vpn = start >> 12; vpn < end >> 12;) {
			size_t want = (end >> 12) - vpn;
			ssize_t got;
			if (want > 512)
				want = 512;
			got = pread(pm, buf, want * 8, (off_t)(vpn * 8));
			if (got <= 0)
				break;
			for (i = 0; i < (size_t)got / 8; i++) {
				uint64_t e = buf[i];
				if (!(e >> 63) || !(e & ((1ULL << 55) - 1)))
					continue;	/* not present, or a pfn we may not see */
				if (n == cap) {
					cap = cap ? 2 * cap : 65536;
					pfns = realloc(pfns, cap * sizeof(*pfns));
					if (!pfns)
						die("out of memory");
				}
				pfns[n++] = e & ((1ULL << 55) - 1);
			}
			vpn += (size_t)got / 8;
		}
	}
	fclose(maps);
	close(pm);
	qsort(pfns, n, sizeof(*pfns), cmp_u64);
	bm = open(IDLE_BITMAP, O_RDWR | O_CLOEXEC);
	if (bm < 0)
		die("open %s: %s", IDLE_BITMAP, strerror(errno));
	marker("rmapwalk-programs trigger step=%ld op=idle pid=%ld comm=%s begin\n", step, pid,
	       comm);
	t0 = now();
	for (i = 0; i < n; i = j) {
		uint64_t word = pfns[i] / 64, bits = 0;
		for (j = i; j < n && pfns[j] / 64 == word; j++)
			bits |= 1ULL << (pfns[j] % 64);
		/* A short write (0) is not an error: the chunk holding max_pfn stops early. */
		if (pwrite(bm, &bits, 8, (off_t)(word * 8)) < 0 && !err)
			err = errno;
		words++;
	}
	close(bm);
	/* unique pages: a page mapped twice in the process counts once */
	for (i = 0, j = 0; i < n; i++)
		if (i == 0 || pfns[i] != pfns[i - 1])
			j++;
	report(step, "idle", pid, comm, words, err, (long)j, now() - t0);
	free(pfns);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "exec")) {
		if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
			die("prctl(PR_SET_MEMORY_MERGE, 1): %s", strerror(errno));
		execvp(argv[2], argv + 2);
		die("execvp %s: %s", argv[2], strerror(errno));
	}
	if (argc == 4 && !strcmp(argv[1], "migrate"))
		return do_migrate(parse_long(argv[2], "STEP"), parse_long(argv[3], "PID"));
	if (argc == 4 && !strcmp(argv[1], "idle"))
		return do_idle(parse_long(argv[2], "STEP"), parse_long(argv[3], "PID"));
	fprintf(stderr, "usage: launcher exec PROG [ARGS...] | migrate STEP PID | idle STEP PID\n");
	return 2;
}
