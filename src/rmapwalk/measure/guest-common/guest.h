/*
 * What the static guest programs share (the launcher, conditions and paths; built by
 * rmapwalk.measure.initramfs.build_static through guest.mk, and part of the sha256 that
 * names each cached binary, rmapwalk.measure.guestrun.source_key): the fatal error, the
 * monotonic clock, trace markers, reading sysfs and /proc/vmstat numbers, and the parameter
 * file PARAMS.txt the drivers write (load_params).
 *
 * A program defines, after including this file, how its errors look:
 *
 *   static const struct guest_errors GUEST_ERRORS = { .prefix = "rmapwalk-launcher: error: ",
 *                                                     .to_stderr = 1 };
 *
 * die() prints the prefix, the optional context (paths: "[proc N] "), the message and a
 * newline, flushes, calls the optional before_exit (paths: counts the error in the fork
 * tree's shared control block) and exits with status 2.  The drivers read these lines on the
 * console ("rmapwalk-replayer: error: ..." is what they quote in a failed run's reason).
 *
 * The replayer does not include this: its steps report errors upwards (fail() returns -1 and
 * the step's error marker names it) instead of dying, and its marker appends the newline.
 */
#ifndef RMAPWALK_GUEST_H
#define RMAPWALK_GUEST_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TRACE_MARKER "/sys/kernel/tracing/trace_marker"

struct guest_errors {
	const char *prefix;		/* what every error line starts with */
	int to_stderr;			/* 0: stdout, the console the driver reads */
	void (*context)(FILE *out);	/* prints after the prefix, or NULL */
	void (*before_exit)(void);	/* after the line is out, or NULL */
};

/* defined by the program (a tentative definition here: C11 6.9.2) */
static const struct guest_errors GUEST_ERRORS;

__attribute__((noreturn))
static void die(const char *fmt, ...)
{
	FILE *out = GUEST_ERRORS.to_stderr ? stderr : stdout;
	va_list ap;

	fputs(GUEST_ERRORS.prefix, out);
	if (GUEST_ERRORS.context)
		GUEST_ERRORS.context(out);
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputc('\n', out);
	fflush(out);
	if (GUEST_ERRORS.before_exit)
		GUEST_ERRORS.before_exit();
	exit(2);
}

static inline double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* one trace_marker write (the caller ends the line with '\n') */
static inline void marker(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int fd, n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fd = open(TRACE_MARKER, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		die("open %s: %s", TRACE_MARKER, strerror(errno));
	if (write(fd, buf, (size_t)n) != n)
		die("write %s: %s", TRACE_MARKER, strerror(errno));
	close(fd);
}

/* the number at the start of a sysfs or procfs file */
static inline long read_long(const char *path)
{
	char buf[64];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		die("read %s: %s", path, n < 0 ? strerror(errno) : "empty");
	buf[n] = 0;
	return strtol(buf, NULL, 10);
}

/* /proc/vmstat counter `name` (0 if absent) */
static inline long vmstat(const char *name)
{
	char line[256];
	size_t len = strlen(name);
	long v = 0;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, len) && line[len] == ' ') {
			v = strtol(line + len + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* one integer parameter of PARAMS.txt and its allowed range */
struct param {
	const char *key;
	long *v;
	long min, max;
};

/*
 * Read PARAMS.txt (key=value lines written by the driver; '#' and empty lines skipped): every
 * key of `keys` once as an integer (strtol, base 0) in [min, max]; `text_key`, unless NULL, as
 * text handed to on_text(path, value) without its newline.  An unknown key, a value out of
 * range, a line that is not key=value or a missing key is fatal (die).
 */
static inline void load_params(const char *path, const struct param *keys, size_t nkeys,
			       const char *text_key, void (*on_text)(const char *, const char *))
{
	char line[256];
	size_t i, seen = 0;
	int have_text = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		die("open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *eq = strchr(line, '='), *end;
		long v;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (!eq)
			die("%s: expected key=value, got '%s'", path, line);
		*eq = 0;
		eq[strcspn(eq + 1, "\n") + 1] = 0;
		if (text_key && !strcmp(line, text_key)) {
			on_text(path, eq + 1);
			have_text = 1;
			continue;
		}
		errno = 0;
		v = strtol(eq + 1, &end, 0);
		if (errno || *end)
			die("%s: %s: not an integer", path, line);
		for (i = 0; i < nkeys; i++)
			if (!strcmp(line, keys[i].key))
				break;
		if (i == nkeys)
			die("%s: unknown key '%s'", path, line);
		if (v < keys[i].min || v > keys[i].max)
			die("%s: %s=%ld out of [%ld, %ld]", path, line, v, keys[i].min, keys[i].max);
		*keys[i].v = v;
		seen |= 1UL << i;
	}
	fclose(f);
	if (text_key && !have_text)
		die("%s: missing key '%s'", path, text_key);
	for (i = 0; i < nkeys; i++)
		if (!(seen & (1UL << i)))
			die("%s: missing key '%s'", path, keys[i].key);
}

#endif
