// SPDX-License-Identifier: GPL-2.0-only
/*
 * replayer: perform a scenario's steps with real system calls, inside the VM.
 *
 * Reads the line-based program written by rmapwalk/measure/program.py (format in that
 * module's docstring).  A controller process creates the command/reply pipes of every
 * process the scenario will have, forks process 0 and then hands out the steps one by one;
 * process N runs the ops of a step addressed to it; a fork op makes it fork children that
 * switch to their own pipe pair.  The controller itself never touches scenario memory.
 *
 * Around every step, and before every page of a migrate/idle step, a marker goes to
 * trace_marker so that the host can attribute each rmap_walk event to the page that caused
 * it; the outcome of every page (node before/after, errno) follows as a marker too.
 *
 * Any system call failing where the program did not expect it ends the run: the message names
 * the step, the op, the system call and errno, and the exit status is non-zero.
 *
 * usage: replayer [-m TRACE_MARKER] [-k KSM_SYSFS_DIR] [-f FILE_DIR] [-i IDLE_BITMAP] PROGRAM
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE_SIZE 4096UL
#define MPOL_MF_MOVE_ALL (1 << 2)	/* include/uapi/linux/mempolicy.h */
#ifndef MADV_MERGEABLE
#define MADV_MERGEABLE 12
#endif
#ifndef MADV_UNMERGEABLE
#define MADV_UNMERGEABLE 13
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif

enum op_kind { OP_MMAP, OP_FILL, OP_MPROTECT, OP_MERGEABLE, OP_KSM_MERGE, OP_FORK,
	       OP_MREMAP, OP_MUNMAP, OP_MIGRATE, OP_IDLE, OP_MREMAP_RESIZE, OP_UNMERGEABLE,
	       OP_EXIT };
static const char *const op_names[] = { "mmap", "fill", "mprotect", "mergeable", "ksm_merge",
					"fork", "mremap", "munmap", "migrate", "idle",
					"mremap_resize", "unmergeable", "exit" };
#define NR_OPS ((int)(sizeof(op_names) / sizeof(op_names[0])))

struct op {
	int kind;
	long a[5];
	char prot[8];
};

struct step {
	int index, proc;
	char kind[16];
	int first_op, nops;
};

struct region {
	char name[256];		/* percent-encoded, as in the program */
	long pages;
	unsigned long base;
	int file;		/* MAP_SHARED of a tmpfs file instead of anonymous memory */
};

struct reply {
	int status;		/* 0 ok, else failed */
	char msg[480];
	char err[24];		/* failed: errno name of the op (ENOMEM, ...), SIGSEGV, or none */
};

static struct op *ops;
static struct step *steps;
static struct region *regions;
static int nops, nsteps, nregions, nprocs, nnodes = 2;
static int *parent_of;
static long max_page_sharing = -1, pages_to_scan, ksm_timeout = 120, chain_prune_ms = -1;
static char scenario_name[128];

static const char *marker_path = "/sys/kernel/tracing/trace_marker";
static const char *ksm_dir = "/sys/kernel/mm/ksm";
static const char *file_dir;
static const char *idle_path = "/sys/kernel/mm/page_idle/bitmap";

static int (*cmd_pipe)[2];
static int my_id = -1;		/* -1: the controller */
static int marker_fd = -1;
static int pagemap_fd = -1, pagemap_owner = -1;
static void *lru_drain_page;	/* one page of our own, never touched: see lru_drain() */
static volatile int current_step;

/* --- errors ------------------------------------------------------------------------- */

static char errbuf[480];
static int fail_errno;		/* errno when fail() was called: the failed system call's */
static char step_err[24];	/* the failed step's errno name, for the error marker */

/* Record an error message for the current step; returns -1 for the caller to pass up. */
__attribute__((format(printf, 1, 2)))
static int fail(const char *fmt, ...)
{
	va_list ap;

	fail_errno = errno;
	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	return -1;
}

static const char *errname(int err)
{
	const char *n = strerrorname_np(err);

	return n ? n : "E?";
}

__attribute__((noreturn, format(printf, 1, 2)))
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("rmapwalk-replayer: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static int (*rep_pipe)[2];

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	char buf[200];
	int n;

	(void)uc;
	n = snprintf(buf, sizeof(buf),
		     "rmapwalk-replayer: error: step %d: process %d got signal %d at address %p "
		     "(page not mapped or not writable at this point of the scenario?)\n",
		     current_step, my_id, sig, si->si_addr);
	if (n > 0 && write(2, buf, (size_t)n) < 0)
		_exit(4);
	if (my_id >= 0 && rep_pipe && rep_pipe[my_id][1] >= 0) {
		/* the step's reply, so that the error marker names the signal */
		struct reply rep = { .status = 1 };

		snprintf(rep.msg, sizeof(rep.msg), "process %d died during step %d (signal %d, "
			 "see the message above)", my_id, current_step, sig);
		snprintf(rep.err, sizeof(rep.err), "%s", sig == SIGBUS ? "SIGBUS" : "SIGSEGV");
		if (write(rep_pipe[my_id][1], &rep, sizeof(rep)) < 0)
			_exit(4);
	}
	_exit(3);
}

/* --- the program --------------------------------------------------------------------- */

static void *grow(void *p, int n, int *cap, size_t size)
{
	if (n < *cap)
		return p;
	*cap = *cap ? *cap * 2 : 64;
	p = realloc(p, (size_t)*cap * size);
	if (!p)
		die("out of memory reading the program");
	return p;
}

static int op_kind(const char *word)
{
	for (int i = 0; i < NR_OPS; i++)
		if (!strcmp(word, op_names[i]))
			return i;
	return -1;
}

static void check_region(const char *path, int lineno, long rid)
{
	if (rid < 0 || rid >= nregions)
		die("%s:%d: region %ld is not declared", path, lineno, rid);
}

static void read_program(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL, word[32];
	size_t cap = 0;
	int lineno = 0, cap_ops = 0, cap_steps = 0, cap_regions = 0, version = 0, ended = 0;

	if (!f)
		die("cannot open program %s: %s", path, strerror(errno));
	while (getline(&line, &cap, f) >= 0) {
		int n = 0;

		lineno++;
		line[strcspn(line, "\n")] = 0;
		if (!line[0] || line[0] == '#')
			continue;
		if (ended)
			die("%s:%d: text after 'end'", path, lineno);
		if (sscanf(line, "%31s %n", word, &n) != 1)
			die("%s:%d: empty record", path, lineno);
		if (!version) {
			if (strcmp(word, "rmapwalk-program") || sscanf(line + n, "%d", &version) != 1 ||
			    version != 1)
				die("%s:%d: expected 'rmapwalk-program 1'", path, lineno);
			continue;
		}
		if (!strcmp(word, "scenario")) {
			if (sscanf(line + n, "%127s", scenario_name) != 1)
				die("%s:%d: expected 'scenario NAME'", path, lineno);
		} else if (!strcmp(word, "procs")) {
			if (sscanf(line + n, "%d", &nprocs) != 1 || nprocs < 1 || nprocs > 4096)
				die("%s:%d: expected 'procs P' with 1 <= P <= 4096", path, lineno);
			parent_of = calloc((size_t)nprocs, sizeof(int));
			if (!parent_of)
				die("out of memory");
			parent_of[0] = -1;
		} else if (!strcmp(word, "parent")) {
			int child, parent;

			if (!parent_of || sscanf(line + n, "%d %d", &child, &parent) != 2 ||
			    child < 1 || child >= nprocs || parent < 0 || parent >= child)
				die("%s:%d: expected 'parent ID PARENT' after 'procs', PARENT < ID",
				    path, lineno);
			parent_of[child] = parent;
		} else if (!strcmp(word, "nodes")) {
			if (sscanf(line + n, "%d", &nnodes) != 1 || nnodes < 2)
				die("%s:%d: expected 'nodes N' with N >= 2", path, lineno);
		} else if (!strcmp(word, "ksm")) {
			if (sscanf(line + n, "%ld %ld %ld %ld", &max_page_sharing, &pages_to_scan,
				   &ksm_timeout, &chain_prune_ms) != 4)
				die("%s:%d: expected 'ksm MAX_PAGE_SHARING PAGES_TO_SCAN TIMEOUT_S "
				    "CHAIN_PRUNE_MS'", path, lineno);
		} else if (!strcmp(word, "region")) {
			struct region r = { 0 };
			char backing[8];
			int rid;

			if (sscanf(line + n, "%d %255s %ld %lx %7s", &rid, r.name, &r.pages, &r.base,
				   backing) != 5 || rid != nregions || r.pages < 1 ||
			    (strcmp(backing, "anon") && strcmp(backing, "file")))
				die("%s:%d: expected 'region %d NAME PAGES BASE anon|file'", path,
				    lineno, nregions);
			r.file = !strcmp(backing, "file");
			regions = grow(regions, nregions, &cap_regions, sizeof(*regions));
			regions[nregions++] = r;
		} else if (!strcmp(word, "step")) {
			struct step s = { 0 };

			if (sscanf(line + n, "%d %d %15s", &s.index, &s.proc, s.kind) != 3 ||
			    s.proc < 0 || s.proc >= nprocs)
				die("%s:%d: expected 'step INDEX PROC KIND' with PROC < procs", path,
				    lineno);
			s.first_op = nops;
			steps = grow(steps, nsteps, &cap_steps, sizeof(*steps));
			steps[nsteps++] = s;
		} else if (!strcmp(word, "end")) {
			ended = 1;
		} else {
			struct op o = { .kind = op_kind(word) };
			int got;

			if (o.kind < 0)
				die("%s:%d: unknown record '%s'", path, lineno, word);
			if (!nsteps)
				die("%s:%d: op '%s' before the first 'step'", path, lineno, word);
			switch (o.kind) {
			case OP_MPROTECT:
				got = sscanf(line + n, "%ld %ld %ld %7s", &o.a[0], &o.a[1], &o.a[2],
					     o.prot) == 4;
				got = got && (!strcmp(o.prot, "r") || !strcmp(o.prot, "rw") ||
					      !strcmp(o.prot, "none"));
				break;
			case OP_MREMAP:
				/* 'mremap RID START PAGES TO_RID [TO_PAGE]' */
				got = sscanf(line + n, "%ld %ld %ld %ld %ld", &o.a[0], &o.a[1],
					     &o.a[2], &o.a[3], &o.a[4]);
				got = got == 4 || (got == 5 && o.a[4] >= 0);
				break;
			case OP_FILL:
			case OP_MREMAP_RESIZE:
				got = sscanf(line + n, "%ld %ld %ld %ld", &o.a[0], &o.a[1], &o.a[2],
					     &o.a[3]) == 4;
				break;
			case OP_EXIT:
				got = 1;
				break;
			case OP_MUNMAP:
				got = sscanf(line + n, "%ld %ld %ld", &o.a[0], &o.a[1], &o.a[2]) == 3;
				break;
			case OP_MERGEABLE:
			case OP_UNMERGEABLE:
			case OP_FORK:
			case OP_MIGRATE:
			case OP_IDLE:
				got = sscanf(line + n, "%ld %ld", &o.a[0], &o.a[1]) == 2;
				break;
			default:	/* mmap, ksm_merge */
				got = sscanf(line + n, "%ld", &o.a[0]) == 1;
				break;
			}
			if (!got)
				die("%s:%d: malformed '%s' op", path, lineno, word);
			if (o.kind != OP_KSM_MERGE && o.kind != OP_FORK && o.kind != OP_EXIT)
				check_region(path, lineno, o.a[0]);
			if (o.kind == OP_MREMAP)
				check_region(path, lineno, o.a[3]);
			if (o.kind == OP_FORK && (o.a[0] < 1 || o.a[0] + o.a[1] > nprocs))
				die("%s:%d: fork of processes %ld..%ld, but procs is %d", path, lineno,
				    o.a[0], o.a[0] + o.a[1] - 1, nprocs);
			ops = grow(ops, nops, &cap_ops, sizeof(*ops));
			ops[nops++] = o;
			steps[nsteps - 1].nops++;
		}
	}
	free(line);
	fclose(f);
	if (!version || !ended)
		die("%s: truncated program (no 'rmapwalk-program' header or no 'end')", path);
	if (!nprocs)
		die("%s: no 'procs' record", path);
}

/* --- small helpers --------------------------------------------------------------------- */

__attribute__((format(printf, 1, 2)))
static int marker(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';	/* the kernel keeps one trailing newline, adds none */
	if (write(marker_fd, buf, (size_t)n) != n)
		return fail("write %s: %s (%s)", marker_path, errname(errno), strerror(errno));
	return 0;
}

static int sysfs_write(const char *dir, const char *file, long value)
{
	char path[256], buf[32];
	int fd, n, ok;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	n = snprintf(buf, sizeof(buf), "%ld\n", value);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return fail("open %s: %s (%s)", path, errname(errno), strerror(errno));
	ok = write(fd, buf, (size_t)n) == n;
	if (!ok) {
		int err = errno;

		close(fd);
		return fail("write %ld to %s: %s (%s)", value, path, errname(err), strerror(err));
	}
	close(fd);
	return 0;
}

static int sysfs_read(const char *dir, const char *file, long *value)
{
	char path[256], buf[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return fail("open %s: %s (%s)", path, errname(errno), strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return fail("read %s: %s", path, n < 0 ? strerror(errno) : "empty");
	buf[n] = 0;
	*value = strtol(buf, NULL, 10);
	return 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *page_addr(long rid, long page)
{
	return (char *)(regions[rid].base + (unsigned long)page * PAGE_SIZE);
}

/* --- ops ----------------------------------------------------------------------------- */

static int do_mmap(long rid)
{
	struct region *r = &regions[rid];
	size_t len = (size_t)r->pages * PAGE_SIZE;
	int flags = MAP_FIXED_NOREPLACE, fd = -1;
	void *p;

	if (r->file) {
		char path[512];

		snprintf(path, sizeof(path), "%s/region-%ld-proc-%d", file_dir, rid, my_id);
		fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd < 0)
			return fail("open %s: %s (%s)", path, errname(errno), strerror(errno));
		if (ftruncate(fd, (off_t)len))
			return fail("ftruncate %s: %s", path, errname(errno));
		flags |= MAP_SHARED;
	} else {
		flags |= MAP_PRIVATE | MAP_ANONYMOUS;
	}
	p = mmap((void *)r->base, len, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (fd >= 0)
		close(fd);
	if (p == MAP_FAILED)
		return fail("mmap of %ld pages at %#lx: %s (%s)", r->pages, r->base, errname(errno),
			    strerror(errno));
	if (p != (void *)r->base)
		return fail("mmap placed the region at %p instead of %#lx", p, r->base);
	return 0;
}

static int do_fill(const struct op *o)
{
	for (long page = o->a[1]; page < o->a[1] + o->a[2]; page++) {
		uint64_t *p = (uint64_t *)page_addr(o->a[0], page);

		if (o->a[3] >= 0) {
			memset(p, (int)o->a[3], PAGE_SIZE);
		} else {
			/* unique: differs from every other page of this and every other fill */
			memset(p, 0x5a, PAGE_SIZE);
			p[0] = 0x726d617077616c6bULL;
			p[1] = (uint64_t)current_step;
			p[2] = (uint64_t)o->a[0];
			p[3] = (uint64_t)page;
			p[4] = (uint64_t)my_id;
		}
	}
	return 0;
}

static int do_mprotect(const struct op *o)
{
	int prot = !strcmp(o->prot, "r") ? PROT_READ :
		   !strcmp(o->prot, "rw") ? PROT_READ | PROT_WRITE : PROT_NONE;

	if (mprotect(page_addr(o->a[0], o->a[1]), (size_t)o->a[2] * PAGE_SIZE, prot))
		return fail("mprotect pages [%ld, %ld) of region %s prot=%s: %s (%s)", o->a[1],
			    o->a[1] + o->a[2], regions[o->a[0]].name, o->prot, errname(errno),
			    strerror(errno));
	return 0;
}

/* madvise(MADV_MERGEABLE or MADV_UNMERGEABLE) of the whole region */
static int do_madvise_ksm(const struct op *o, int advice, const char *what)
{
	struct region *r = &regions[o->a[0]];

	if (!madvise((void *)r->base, (size_t)r->pages * PAGE_SIZE, advice))
		return 0;
	/* mm/madvise.c: holes in the range give ENOMEM after the advice was applied */
	if (errno == ENOMEM && o->a[1])
		return 0;
	return fail("madvise(%s) of region %s: %s (%s)", what, r->name, errname(errno),
		    strerror(errno));
}

/*
 * One full scan per ksmd batch, and no scan we did not ask for.  ksmd (mm/ksm.c
 * ksm_scan_thread) runs a batch of pages_to_scan pages, which ends early at the end of a
 * full scan (ksm_do_scan returns when scan_get_next_rmap_item() does), then sleeps
 * sleep_millisecs, waking early only when sleep_millisecs is written.  With pages_to_scan
 * above a scan's size and a long sleep, each batch is exactly the rest of one full scan;
 * writing a new sleep_millisecs starts the next one.  With sleep_millisecs=0 ksmd would
 * start another scan at once, and run=0 waits for that batch (ksm_thread_mutex), so the
 * count of scans would depend on timing.
 */
#define KSM_PARK_MS 600000L
static long ksm_poke = KSM_PARK_MS;

static int ksm_next_scan(void)
{
	ksm_poke = ksm_poke == KSM_PARK_MS ? KSM_PARK_MS + 1 : KSM_PARK_MS;
	return sysfs_write(ksm_dir, "sleep_millisecs", ksm_poke);
}

static int do_ksm_merge(long full_scans)
{
	long start, cur, seen;
	double t0 = now(), poked;
	struct timespec settle = { 0, 20 * 1000 * 1000 };

	/*
	 * Poke first, then run=1: whichever wait ksmd is in (run=0's, or a long sleep left
	 * from an earlier step), exactly one batch starts.
	 */
	if (sysfs_read(ksm_dir, "full_scans", &start) || ksm_next_scan() ||
	    sysfs_write(ksm_dir, "run", 1))
		return -1;
	poked = now();
	cur = seen = start;
	while (cur < start + full_scans) {
		struct timespec ts = { 0, 2 * 1000 * 1000 };

		if (now() - t0 > (double)ksm_timeout) {
			sysfs_write(ksm_dir, "run", 0);
			errno = ETIMEDOUT;	/* the error marker's errno (docs/scenarios.md) */
			return fail("ksm_merge: full_scans grew by %ld of %ld in %ld s", cur - start,
				    full_scans, ksm_timeout);
		}
		nanosleep(&ts, NULL);
		if (sysfs_read(ksm_dir, "full_scans", &cur))
			return -1;
		if (cur != seen && cur < start + full_scans) {
			/* let ksmd read sleep_millisecs and go to sleep before the next poke */
			nanosleep(&settle, NULL);
			seen = cur;
			if (ksm_next_scan())
				return -1;
			poked = now();
		} else if (cur == seen && now() - poked > 5.0) {
			/* a poke that came too early is repeated; mid-batch it changes nothing */
			if (ksm_next_scan())
				return -1;
			poked = now();
		}
	}
	/* run=0 stops ksmd and keeps the merged pages (Documentation/admin-guide/mm/ksm.rst) */
	if (sysfs_write(ksm_dir, "run", 0))
		return -1;
	if (sysfs_read(ksm_dir, "full_scans", &cur))
		return -1;
	printf("rmapwalk-replayer: step %d: ksm full_scans %ld -> %ld in %.2f s\n", current_step,
	       start, cur, now() - t0);
	fflush(stdout);
	return 0;
}

static int do_mremap(const struct op *o)
{
	/* a new region's base, or (TO_PAGE) a page of an existing region: MREMAP_FIXED unmaps
	 * what is there first (mm/mremap.c mremap_to) */
	void *from = page_addr(o->a[0], o->a[1]), *to = page_addr(o->a[3], o->a[4]);
	size_t len = (size_t)o->a[2] * PAGE_SIZE;
	void *p = mremap(from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);

	if (p == MAP_FAILED)
		return fail("mremap pages [%ld, %ld) of region %s to %p: %s (%s)", o->a[1],
			    o->a[1] + o->a[2], regions[o->a[0]].name, to, errname(errno),
			    strerror(errno));
	return 0;
}

/* mremap without flags: shrink (unmap the tail) or grow in place, never move */
static int do_mremap_resize(const struct op *o)
{
	void *from = page_addr(o->a[0], o->a[1]);
	void *p = mremap(from, (size_t)o->a[2] * PAGE_SIZE, (size_t)o->a[3] * PAGE_SIZE, 0);

	if (p == MAP_FAILED)
		return fail("mremap pages [%ld, %ld) of region %s to %ld pages in place: %s (%s)",
			    o->a[1], o->a[1] + o->a[2], regions[o->a[0]].name, o->a[3],
			    errname(errno), strerror(errno));
	if (p != from) {
		errno = 0;
		return fail("mremap in place moved the range to %p", p);
	}
	return 0;
}

/*
 * The process exits (kernel/exit.c do_exit): exit_mm() tears the mm down before
 * exit_files() closes our end of the reply pipe, and nobody else holds it (our children
 * have exited: scenario.py), so the controller reading EOF knows the mm is gone.
 */
static int do_exit_op(void)
{
	fflush(stdout);
	fflush(stderr);
	_exit(0);
}

static int do_munmap(const struct op *o)
{
	if (munmap(page_addr(o->a[0], o->a[1]), (size_t)o->a[2] * PAGE_SIZE))
		return fail("munmap pages [%ld, %ld) of region %s: %s (%s)", o->a[1],
			    o->a[1] + o->a[2], regions[o->a[0]].name, errname(errno),
			    strerror(errno));
	return 0;
}

static long move_pages(void *addr, const int *node, int *status, int flags)
{
	void *pages[1] = { addr };

	return syscall(SYS_move_pages, 0, 1UL, pages, node, status, flags);
}

static int do_migrate(const struct op *o)
{
	void *addr = page_addr(o->a[0], o->a[1]);
	int before = -1, target, after = -1;
	long ret;

	if (marker("rmapwalk page step=%d kind=migrate region=%s page=%ld proc=%d", current_step,
		   regions[o->a[0]].name, o->a[1], my_id))
		return -1;
	/* nodes == NULL only reports the node: no migration, no rmap walk */
	if (move_pages(addr, NULL, &before, 0) < 0)
		return fail("move_pages (query) of page %ld of region %s: %s (%s)", o->a[1],
			    regions[o->a[0]].name, errname(errno), strerror(errno));
	if (before < 0)
		return marker("rmapwalk outcome step=%d kind=migrate region=%s page=%ld proc=%d "
			      "result=error errno=%s phase=query", current_step,
			      regions[o->a[0]].name, o->a[1], my_id, errname(-before));
	target = (before + 1) % nnodes;
	ret = move_pages(addr, &target, &after, MPOL_MF_MOVE_ALL);
	if (ret < 0)
		return fail("move_pages of page %ld of region %s to node %d: %s (%s)", o->a[1],
			    regions[o->a[0]].name, target, errname(errno), strerror(errno));
	if (ret > 0) {
		/*
		 * mm/migrate.c move_pages_and_store_status(): when migrate_pages() gave up (after
		 * its retries) the syscall returns the number of pages not migrated and leaves
		 * status unwritten, so ask where the page is now.
		 */
		if (move_pages(addr, NULL, &after, 0) < 0)
			return fail("move_pages (query after) of page %ld of region %s: %s",
				    o->a[1], regions[o->a[0]].name, errname(errno));
		return marker("rmapwalk outcome step=%d kind=migrate region=%s page=%ld proc=%d "
			      "result=not-migrated from=%d to=%d", current_step,
			      regions[o->a[0]].name, o->a[1], my_id, before, after);
	}
	if (after < 0)
		return marker("rmapwalk outcome step=%d kind=migrate region=%s page=%ld proc=%d "
			      "result=error errno=%s from=%d to=%d", current_step,
			      regions[o->a[0]].name, o->a[1], my_id, errname(-after), before,
			      target);
	return marker("rmapwalk outcome step=%d kind=migrate region=%s page=%ld proc=%d "
		      "result=%s from=%d to=%d", current_step, regions[o->a[0]].name, o->a[1],
		      my_id, after == target ? "moved" : "stayed", before, after);
}

/*
 * A new folio waits in this CPU's LRU batch (mm/swap.c folio_add_lru, 31 folios) until the
 * batch fills up or is drained, and until then page_idle does not walk it (mm/page_idle.c
 * page_idle_get_folio: !folio_test_lru).  When the batch fills up depends on our own faults
 * (start-up, copy-on-write after fork), which differ from run to run, so drain it before each
 * page_idle write: madvise(MADV_COLD) of a page we never touched calls lru_add_drain() and
 * nothing else (mm/madvise.c madvise_cold).  The guest has one CPU, so that is every batch.
 */
static int lru_drain(void)
{
	if (madvise(lru_drain_page, PAGE_SIZE, MADV_COLD))
		return fail("madvise(MADV_COLD) to drain the LRU batch: %s (%s)", errname(errno),
			    strerror(errno));
	return 0;
}

static int do_idle(const struct op *o)
{
	unsigned long addr = (unsigned long)page_addr(o->a[0], o->a[1]);
	uint64_t entry, pfn, bits;
	int fd;

	if (marker("rmapwalk page step=%d kind=idle region=%s page=%ld proc=%d", current_step,
		   regions[o->a[0]].name, o->a[1], my_id))
		return -1;
	if (pagemap_owner != my_id) {	/* /proc/self is the opener, so reopen after fork */
		if (pagemap_fd >= 0)
			close(pagemap_fd);
		pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
		if (pagemap_fd < 0)
			return fail("open /proc/self/pagemap: %s", errname(errno));
		pagemap_owner = my_id;
	}
	if (pread(pagemap_fd, &entry, 8, (off_t)(addr / PAGE_SIZE * 8)) != 8)
		return fail("read /proc/self/pagemap: %s", errname(errno));
	if (!(entry >> 63 & 1))
		return marker("rmapwalk outcome step=%d kind=idle region=%s page=%ld proc=%d "
			      "result=error errno=not-present", current_step,
			      regions[o->a[0]].name, o->a[1], my_id);
	pfn = entry & ((1ULL << 55) - 1);	/* Documentation/admin-guide/mm/pagemap.rst */
	bits = 1ULL << (pfn % 64);
	if (lru_drain())
		return -1;
	fd = open(idle_path, O_WRONLY);
	if (fd < 0)
		return fail("open %s: %s (%s)", idle_path, errname(errno), strerror(errno));
	/*
	 * mm/page_idle.c page_idle_bitmap_write() returns the bytes of whole 64-page chunks it
	 * went through: for the chunk that holds max_pfn that is 0, although it did walk the
	 * pages below max_pfn (ours is one, it is present).  Only a negative return is an error;
	 * errno means nothing after a short write.
	 */
	if (pwrite(fd, &bits, 8, (off_t)(pfn / 64 * 8)) < 0) {
		int err = errno;

		close(fd);
		return marker("rmapwalk outcome step=%d kind=idle region=%s page=%ld proc=%d "
			      "result=error errno=%s pfn=%#llx", current_step,
			      regions[o->a[0]].name, o->a[1], my_id, errname(err),
			      (unsigned long long)pfn);
	}
	close(fd);
	return marker("rmapwalk outcome step=%d kind=idle region=%s page=%ld proc=%d result=ok "
		      "pfn=%#llx", current_step, regions[o->a[0]].name, o->a[1], my_id,
		      (unsigned long long)pfn);
}

/* --- processes ----------------------------------------------------------------------- */

static int in_subtree(int proc, int root)
{
	for (; proc >= 0; proc = parent_of[proc])
		if (proc == root)
			return 1;
	return 0;
}

/* Keep only the pipe ends of @id's own subtree (itself and the children it will fork), so
 * that a dying process closes the last write end of its reply pipe and the controller reads
 * EOF instead of hanging. */
static void close_ends(int keep_subtree_of, int drop_subtree_of)
{
	for (int j = 0; j < nprocs; j++) {
		int drop = keep_subtree_of >= 0 ? !in_subtree(j, keep_subtree_of)
						 : in_subtree(j, drop_subtree_of);

		if (!drop)
			continue;
		if (rep_pipe[j][1] >= 0)
			close(rep_pipe[j][1]);
		if (cmd_pipe[j][0] >= 0)
			close(cmd_pipe[j][0]);
		rep_pipe[j][1] = cmd_pipe[j][0] = -1;
	}
}

static void become(int id)
{
	my_id = id;
	close_ends(id, -1);
}

static int process_loop(int id);

static int do_fork(const struct op *o)
{
	for (int child = (int)o->a[0]; child < o->a[0] + o->a[1]; child++) {
		pid_t pid = fork();

		if (pid < 0)
			return fail("fork of process %d: %s (%s)", child, errname(errno),
				    strerror(errno));
		if (pid == 0) {
			become(child);
			_exit(process_loop(child));
		}
		close_ends(-1, child);	/* the child's subtree is the child's now */
	}
	return 0;
}

static int run_op(const struct op *o)
{
	switch (o->kind) {
	case OP_MMAP: return do_mmap(o->a[0]);
	case OP_FILL: return do_fill(o);
	case OP_MPROTECT: return do_mprotect(o);
	case OP_MERGEABLE: return do_madvise_ksm(o, MADV_MERGEABLE, "MADV_MERGEABLE");
	case OP_KSM_MERGE: return do_ksm_merge(o->a[0]);
	case OP_FORK: return do_fork(o);
	case OP_MREMAP: return do_mremap(o);
	case OP_MUNMAP: return do_munmap(o);
	case OP_MIGRATE: return do_migrate(o);
	case OP_IDLE: return do_idle(o);
	case OP_MREMAP_RESIZE: return do_mremap_resize(o);
	case OP_UNMERGEABLE: return do_madvise_ksm(o, MADV_UNMERGEABLE, "MADV_UNMERGEABLE");
	case OP_EXIT: return do_exit_op();
	}
	return fail("unknown op %d", o->kind);
}

static int run_step(int s)
{
	current_step = steps[s].index;
	for (int i = steps[s].first_op; i < steps[s].first_op + steps[s].nops; i++) {
		errno = 0;
		if (run_op(&ops[i])) {
			char msg[sizeof(errbuf)];

			snprintf(step_err, sizeof(step_err), "%s",
				 fail_errno ? errname(fail_errno) : "none");
			snprintf(msg, sizeof(msg), "%s", errbuf);
			fail("step %d (%s), process %d, op %s: %s", steps[s].index, steps[s].kind,
			     my_id, op_names[ops[i].kind], msg);
			return -1;
		}
	}
	return 0;
}

static int process_loop(int id)
{
	int s;

	for (;;) {
		struct reply rep = { 0 };
		ssize_t n = read(cmd_pipe[id][0], &s, sizeof(s));

		if (n != sizeof(s))
			return 5;	/* the controller went away */
		if (s < 0) {	/* exit: children were told first, reap them */
			while (wait(NULL) > 0)
				;
			if (write(rep_pipe[id][1], &rep, sizeof(rep)) < 0)
				return 5;
			return 0;
		}
		if (run_step(s)) {
			rep.status = 1;
			snprintf(rep.msg, sizeof(rep.msg), "%s", errbuf);
			snprintf(rep.err, sizeof(rep.err), "%s", step_err);
		}
		if (write(rep_pipe[id][1], &rep, sizeof(rep)) != sizeof(rep))
			return 5;
		fflush(stdout);
	}
}

/* --- the controller ------------------------------------------------------------------ */

static int ask(int id, int s, struct reply *rep)
{
	ssize_t n;

	if (write(cmd_pipe[id][1], &s, sizeof(s)) != sizeof(s))
		return fail("process %d is gone (write to its command pipe: %s)", id,
			    strerror(errno));
	n = read(rep_pipe[id][0], rep, sizeof(*rep));
	if (n != sizeof(*rep)) {
		snprintf(step_err, sizeof(step_err), "died");
		return fail("process %d died during step %d (see the message above)", id,
			    s >= 0 ? steps[s].index : -1);
	}
	if (rep->status) {
		snprintf(step_err, sizeof(step_err), "%s", rep->err[0] ? rep->err : "none");
		return fail("%s", rep->msg);
	}
	return 0;
}

/* An exit step: the process exits without a reply; EOF on its reply pipe means it is gone. */
static int ask_exit(int id, int s)
{
	struct reply rep;
	ssize_t n;

	if (write(cmd_pipe[id][1], &s, sizeof(s)) != sizeof(s))
		return fail("process %d is gone (write to its command pipe: %s)", id,
			    strerror(errno));
	n = read(rep_pipe[id][0], &rep, sizeof(rep));
	if (n == 0)
		return 0;
	snprintf(step_err, sizeof(step_err), "%s", n == sizeof(rep) && rep.err[0] ? rep.err : "none");
	return fail("process %d did not exit at step %d%s%s", id, steps[s].index,
		    n == sizeof(rep) ? ": " : "", n == sizeof(rep) ? rep.msg : "");
}

static int controller(void)
{
	struct reply rep;
	pid_t pid0;
	char *gone = calloc((size_t)nprocs, 1);	/* processes that exited (exit steps) */

	if (!gone)
		return fail("out of memory");

	if (max_page_sharing >= 0) {
		/* before anything merges: the kernel refuses a change while KSM pages exist */
		if (sysfs_write(ksm_dir, "run", 0) ||
		    sysfs_write(ksm_dir, "max_page_sharing", max_page_sharing) ||
		    sysfs_write(ksm_dir, "sleep_millisecs", KSM_PARK_MS) ||
		    sysfs_write(ksm_dir, "pages_to_scan", pages_to_scan) ||
		    /* mm/ksm.c stable_node_dup(): prune a chain at every search (0) or never */
		    sysfs_write(ksm_dir, "stable_node_chains_prune_millisecs", chain_prune_ms))
			return -1;
	}
	pid0 = fork();
	if (pid0 < 0)
		return fail("fork of process 0: %s", strerror(errno));
	if (pid0 == 0) {
		become(0);
		_exit(process_loop(0));
	}
	for (int j = 0; j < nprocs; j++) {
		close(rep_pipe[j][1]);
		close(cmd_pipe[j][0]);
	}
	for (int s = 0; s < nsteps; s++) {
		struct step *st = &steps[s];
		double t0 = now();
		int err;

		current_step = st->index;
		if (marker("rmapwalk step step=%d kind=%s proc=%d begin", st->index, st->kind,
			   st->proc))
			return -1;
		if (!strcmp(st->kind, "ksm_merge")) {
			err = run_step(s);	/* global: sysfs, no scenario memory */
		} else if (!strcmp(st->kind, "exit")) {
			err = ask_exit(st->proc, s);
			gone[st->proc] = 1;
		} else {
			err = ask(st->proc, s, &rep);
		}
		if (err)
			return -1;
		if (marker("rmapwalk step step=%d kind=%s proc=%d end", st->index, st->kind,
			   st->proc))
			return -1;
		printf("rmapwalk-replayer: step %d %s proc=%d: %d ops in %.3f s\n", st->index,
		       st->kind, st->proc, st->nops, now() - t0);
		fflush(stdout);
	}
	for (int id = nprocs - 1; id >= 0; id--)
		if (!gone[id] && ask(id, -1, &rep))
			return -1;
	waitpid(pid0, NULL, 0);
	return marker("rmapwalk done scenario=%s steps=%d", scenario_name, nsteps);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_sigaction = on_fault, .sa_flags = SA_SIGINFO };
	int opt, mount_tmpfs = 1, own_group;

	while ((opt = getopt(argc, argv, "m:k:f:i:")) != -1) {
		switch (opt) {
		case 'm': marker_path = optarg; break;
		case 'k': ksm_dir = optarg; break;
		case 'f': file_dir = optarg; mount_tmpfs = 0; break;
		case 'i': idle_path = optarg; break;
		default:
			die("usage: %s [-m TRACE_MARKER] [-k KSM_DIR] [-f FILE_DIR] [-i IDLE_BITMAP] "
			    "PROGRAM", argv[0]);
		}
	}
	if (optind != argc - 1)
		die("usage: %s [-m TRACE_MARKER] [-k KSM_DIR] [-f FILE_DIR] [-i IDLE_BITMAP] PROGRAM",
		    argv[0]);
	read_program(argv[optind]);
	lru_drain_page = mmap(NULL, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (lru_drain_page == MAP_FAILED)
		die("mmap of the LRU drain page: %s", strerror(errno));
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	own_group = setpgid(0, 0) == 0;	/* so that an error can end every process */
	marker_fd = open(marker_path, O_WRONLY | O_APPEND);
	if (marker_fd < 0)
		die("open %s: %s", marker_path, strerror(errno));
	if (!file_dir)
		file_dir = "/run/rmapwalk";
	for (int r = 0; r < nregions; r++) {
		if (regions[r].file && mount_tmpfs) {
			mkdir(file_dir, 0700);
			if (mount("tmpfs", file_dir, "tmpfs", 0, "size=90%") && errno != EBUSY)
				die("mount tmpfs on %s: %s", file_dir, strerror(errno));
			break;
		}
	}
	cmd_pipe = calloc((size_t)nprocs, sizeof(*cmd_pipe));
	rep_pipe = calloc((size_t)nprocs, sizeof(*rep_pipe));
	if (!cmd_pipe || !rep_pipe)
		die("out of memory");
	for (int j = 0; j < nprocs; j++)
		if (pipe(cmd_pipe[j]) || pipe(rep_pipe[j]))
			die("pipe: %s (procs %d)", strerror(errno), nprocs);
	if (controller()) {
		fprintf(stderr, "rmapwalk-replayer: error: %s\n", errbuf);
		/* trace.py: the step that failed and its errno (docs/scenarios.md) */
		dprintf(marker_fd, "rmapwalk error step=%d errno=%s\n", current_step,
			step_err[0] ? step_err : "none");
		signal(SIGTERM, SIG_IGN);
		if (own_group)
			kill(0, SIGTERM);
		while (wait(NULL) > 0)
			;
		return 1;
	}
	printf("rmapwalk-replayer: done: %d steps, %d processes\n", nsteps, nprocs);
	return 0;
}
