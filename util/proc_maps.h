/* SPDX-License-Identifier: MIT */
/*
 * util/proc_maps.h - the one /proc/PID/maps parser (internal helper layer).
 *
 * Used where the project checks reality rather than its own bookkeeping:
 * libgmem's audit (its own views' protections) and gmvm's DMA device
 * (where the device process really maps the shared backing).
 *
 * Reads with read(2) into one buffer (no stdio: usable from a signal-free
 * but allocation-aware context, and it never mixes a half line from one
 * read with the next), hands each complete line to the callback parsed,
 * and stops at the first non-zero callback return, which it returns.
 * A line it cannot parse is -EIO: the kernel's format is fixed, so a line
 * that does not match it is a bug or not a maps file.
 */
#ifndef GMVM_UTIL_PROC_MAPS_H
#define GMVM_UTIL_PROC_MAPS_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

struct proc_map {
	uint64_t start, end;	/* [start, end) in the process's space */
	char perms[5];		/* "rw-s", NUL-terminated */
	uint64_t offset;	/* file offset of start */
	uint64_t major, minor;	/* device of the mapped file */
	uint64_t inode;		/* 0 for anonymous memory */
};

/* Longest maps line we accept (the path may be up to PATH_MAX). */
#define PROC_MAPS_BUF (64 * 1024)

static inline const char *proc_maps_num(const char *p, const char *e,
					unsigned int base, uint64_t *out)
{
	const char *s = p;
	uint64_t v = 0;

	if (!p)
		return NULL;
	for (; p < e; p++) {
		unsigned int d;

		if (*p >= '0' && *p <= '9')
			d = (unsigned int)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned int)(*p - 'a' + 10);
		else
			break;
		v = v * base + d;
	}
	*out = v;
	return p > s ? p : NULL;
}

static inline const char *proc_maps_char(const char *p, const char *e,
					 char ch)
{
	return p && p < e && *p == ch ? p + 1 : NULL;
}

/* One line, [p, e) without the newline: 0 or -EIO. */
static inline int proc_maps_parse_line(const char *p, const char *e,
				       struct proc_map *m)
{
	const char *perms;

	p = proc_maps_num(p, e, 16, &m->start);
	p = proc_maps_num(proc_maps_char(p, e, '-'), e, 16, &m->end);
	perms = proc_maps_char(p, e, ' ');
	if (!perms || e - perms < 5)
		return -EIO;
	memcpy(m->perms, perms, 4);
	m->perms[4] = '\0';
	p = proc_maps_num(proc_maps_char(perms + 4, e, ' '), e, 16, &m->offset);
	p = proc_maps_num(proc_maps_char(p, e, ' '), e, 16, &m->major);
	p = proc_maps_num(proc_maps_char(p, e, ':'), e, 16, &m->minor);
	p = proc_maps_num(proc_maps_char(p, e, ' '), e, 10, &m->inode);
	return p ? 0 : -EIO;
}

/*
 * Call @fn for every mapping of process @pid (0: this process), in address
 * order.  Returns 0, @fn's first non-zero return, or -errno.
 */
static inline int proc_maps_for_each(pid_t pid,
				     int (*fn)(const struct proc_map *m,
					       void *arg),
				     void *arg)
{
	size_t have = 0, pos;
	char path[64], *buf;
	int fd, ret = 0;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/maps");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(PROC_MAPS_BUF);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t n = read(fd, buf + have, PROC_MAPS_BUF - have);
		char *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		have += (size_t)n;
		/* Whole lines; at EOF a last line without a newline too. */
		for (pos = 0; !ret && pos < have;
		     pos = (size_t)(nl - buf) + 1) {
			struct proc_map m;

			nl = memchr(buf + pos, '\n', have - pos);
			if (!nl && n)
				break;
			if (!nl)
				nl = buf + have;
			ret = proc_maps_parse_line(buf + pos, nl, &m);
			if (!ret)
				ret = fn(&m, arg);
		}
		if (ret || !n)
			break;
		if (pos == 0 && have == PROC_MAPS_BUF) {
			ret = -EIO;	/* a line longer than the buffer */
			break;
		}
		memmove(buf, buf + pos, have - pos);
		have -= pos;
	}
	free(buf);
	close(fd);
	return ret;
}

#endif
