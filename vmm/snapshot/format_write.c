/* SPDX-License-Identifier: MIT */
/*
 * The snapshot file's checked, buffered writer, and the PATH.tmp + rename
 * that makes a file appear whole or not at all.  The files it builds keep
 * the invariants stated in format_read.c (which the reader checks): the
 * header and each section header are written as placeholders and
 * completed with positioned writes once their lengths and checksums are
 * known, and every write is checked (a short or failed write is -errno,
 * and stays so).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "format.h"

/* ---- writer ------------------------------------------------------------- */

int snap_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len) {
		n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;	/* never: but no endless loop */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int w_write_at(struct snap_writer *w, const void *buf, size_t len,
		      uint64_t off)
{
	int err;

	if (w->err)
		return w->err;
	if (w->io && w->io->write_at)
		err = w->io->write_at(w->io->data, w->fd, buf, len, off);
	else
		err = snap_pwrite_all(w->fd, buf, len, off);
	if (err) {
		w->err = err;
		snap_err(w->msg, err, "writing %zu bytes at offset %llu: %s",
			 len, (unsigned long long)off, strerror(-err));
	}
	return err;
}

static int w_flush(struct snap_writer *w)
{
	int err;

	if (!w->used)
		return w->err;
	err = w_write_at(w, w->buf, w->used, w->off);
	if (err)
		return err;
	w->off += w->used;
	w->used = 0;
	return 0;
}

int snap_writer_init(struct snap_writer *w, int fd, const struct snap_io *io,
		     struct snap_msg *msg)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->io = io;
	w->msg = msg;
	w->buf = malloc(SNAP_WRITER_BUF);
	if (!w->buf) {
		w->err = -ENOMEM;
		return snap_err(msg, -ENOMEM, "no memory for a write buffer");
	}
	/* The header's place: snap_writer_finish() fills it in. */
	memset(w->buf, 0, SNAP_HEADER_SIZE);
	w->used = SNAP_HEADER_SIZE;
	return 0;
}

void snap_writer_free(struct snap_writer *w)
{
	free(w->buf);
	w->buf = NULL;
}

static int w_bug(struct snap_writer *w, const char *what)
{
	/* A caller's mistake, not the file's: stop the file here. */
	if (!w->err) {
		w->err = -EINVAL;
		snap_err(w->msg, -EINVAL, "snapshot writer misused: %s", what);
	}
	return w->err;
}

int snap_writer_begin(struct snap_writer *w, uint32_t type, uint32_t flags)
{
	if (w->err)
		return w->err;
	if (w->in_section)
		return w_bug(w, "section begun inside a section");
	if (SNAP_WRITER_BUF - w->used < SNAP_SEC_HEADER_SIZE && w_flush(w))
		return w->err;
	w->in_section = true;
	w->sec_off = w->off + w->used;
	w->sec_type = type;
	w->sec_flags = flags;
	w->sec_len = 0;
	w->crc = 0;
	memset(w->buf + w->used, 0, SNAP_SEC_HEADER_SIZE);
	w->used += SNAP_SEC_HEADER_SIZE;
	return 0;
}

int snap_writer_put(struct snap_writer *w, const void *p, size_t len)
{
	const uint8_t *src = p;
	size_t n;

	if (w->err)
		return w->err;
	if (!w->in_section)
		return w_bug(w, "payload outside a section");
	while (len) {
		if (w->used == SNAP_WRITER_BUF && w_flush(w))
			return w->err;
		n = SNAP_WRITER_BUF - w->used;
		if (n > len)
			n = len;
		memcpy(w->buf + w->used, src, n);
		w->crc = crc32c(w->crc, src, n);
		w->used += n;
		w->sec_len += n;
		src += n;
		len -= n;
	}
	return 0;
}

void *snap_writer_space(struct snap_writer *w, size_t len)
{
	if (w->err)
		return NULL;
	if (!w->in_section || len > SNAP_WRITER_BUF) {
		w_bug(w, "space outside a section or over the buffer");
		return NULL;
	}
	if (SNAP_WRITER_BUF - w->used < len && w_flush(w))
		return NULL;
	return w->buf + w->used;
}

int snap_writer_commit(struct snap_writer *w, size_t len)
{
	if (w->err)
		return w->err;
	if (!w->in_section || len > SNAP_WRITER_BUF - w->used)
		return w_bug(w, "commit of more than the space given");
	w->crc = crc32c(w->crc, w->buf + w->used, len);
	w->used += len;
	w->sec_len += len;
	return 0;
}

int snap_writer_end(struct snap_writer *w)
{
	uint8_t h[SNAP_SEC_HEADER_SIZE];

	if (w->err)
		return w->err;
	if (!w->in_section)
		return w_bug(w, "section ended twice");
	snap_put_le32(h, w->sec_type);
	snap_put_le32(h + 4, w->sec_flags);
	snap_put_le64(h + 8, w->sec_len);
	snap_put_le32(h + 16, snap_sec_crc(w->sec_type, w->sec_flags,
					   w->sec_len, w->crc));
	snap_put_le32(h + 20, 0);
	w->in_section = false;
	/* Still buffered: complete it in place; else where it was written. */
	if (w->sec_off >= w->off) {
		memcpy(w->buf + (w->sec_off - w->off), h, sizeof(h));
		return 0;
	}
	return w_write_at(w, h, sizeof(h), w->sec_off);
}

int64_t snap_writer_finish(struct snap_writer *w)
{
	uint8_t h[SNAP_HEADER_SIZE];
	uint64_t total;

	if (w->err)
		return w->err;
	if (w->in_section)
		return w_bug(w, "finished inside a section");
	if (snap_writer_begin(w, SNAP_SEC_END, 0) || snap_writer_end(w))
		return w->err;
	total = w->off + w->used;
	memcpy(h, SNAP_MAGIC, SNAP_MAGIC_LEN);
	snap_put_le32(h + 8, SNAP_VERSION);
	snap_put_le32(h + 12, 0);
	snap_put_le64(h + 16, total);
	snap_put_le32(h + 24, 0);
	snap_put_le32(h + 28, crc32c(0, h, 28));
	if (w->off == 0)
		memcpy(w->buf, h, sizeof(h));
	else if (w_write_at(w, h, sizeof(h), 0))
		return w->err;
	if (w_flush(w))
		return w->err;
	return (int64_t)total;
}

/* ---- files -------------------------------------------------------------- */

int snap_file_create(struct snap_file *f, const char *path,
		     struct snap_msg *msg)
{
	size_t n = strlen(path);

	f->fd = -1;
	f->no_replace = false;
	f->path = strdup(path);
	f->tmp = malloc(n + sizeof(".tmp"));
	if (!f->path || !f->tmp) {
		free(f->path);
		free(f->tmp);
		f->path = f->tmp = NULL;
		return snap_err(msg, -ENOMEM, "no memory");
	}
	memcpy(f->tmp, path, n);
	memcpy(f->tmp + n, ".tmp", sizeof(".tmp"));
	/* O_TRUNC, not O_EXCL: a PATH.tmp left by a crash is ours to
	 * replace.  O_NOFOLLOW: never write through a planted symlink. */
	f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
			     O_NOFOLLOW, 0600);
	if (f->fd < 0) {
		int err = -errno;

		free(f->path);
		free(f->tmp);
		f->path = f->tmp = NULL;
		return snap_err(msg, err, "%s.tmp: %s", path, strerror(-err));
	}
	return 0;
}

void snap_file_abort(struct snap_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->tmp)
		unlink(f->tmp);
	free(f->path);
	free(f->tmp);
	f->fd = -1;
	f->path = f->tmp = NULL;
}

/* Make the rename itself durable: sync the directory holding PATH. */
static int sync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd, err = 0;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0 && errno != EINVAL)	/* EINVAL: cannot sync */
		err = -errno;
	close(fd);
	return err;
}

/* PATH.tmp to PATH; -1 and errno on failure, PATH.tmp then still there. */
static int rename_into_place(struct snap_file *f)
{
	struct stat st;

	if (!f->no_replace)
		return rename(f->tmp, f->path);
	if (!renameat2(AT_FDCWD, f->tmp, AT_FDCWD, f->path, RENAME_NOREPLACE))
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* No RENAME_NOREPLACE here: link() fails on an existing PATH just
	 * the same; then the second name goes (if that fails, PATH is
	 * still whole: only PATH.tmp is left over). */
	if (!link(f->tmp, f->path)) {
		(void)unlink(f->tmp);
		return 0;
	}
	if (errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS)
		return -1;
	/* Nor hard links (vfat, some FUSE): a fresh look, then rename().
	 * Only here can a PATH made in between these two calls be
	 * replaced. */
	if (!lstat(f->path, &st)) {
		errno = EEXIST;
		return -1;
	}
	return errno == ENOENT ? rename(f->tmp, f->path) : -1;
}

int snap_file_commit(struct snap_file *f, struct snap_msg *msg)
{
	int err = 0;

	/* Data first, then the name: PATH never names a partial file. */
	if (fsync(f->fd) < 0)
		err = snap_err(msg, -errno, "%s: fsync: %s", f->tmp,
			       strerror(errno));
	if (close(f->fd) < 0 && !err)
		err = snap_err(msg, -errno, "%s: close: %s", f->tmp,
			       strerror(errno));
	f->fd = -1;
	if (!err && rename_into_place(f) < 0)
		err = snap_err(msg, -errno, "rename %s to %s: %s", f->tmp,
			       f->path, strerror(errno));
	if (err) {
		snap_file_abort(f);
		return err;
	}
	err = sync_dir_of(f->path);
	if (err)
		snap_err(msg, err, "%s: syncing its directory: %s", f->path,
			 strerror(-err));
	free(f->path);
	free(f->tmp);
	f->path = f->tmp = NULL;
	return err;
}
