/* SPDX-License-Identifier: MIT */
/*
 * gmvm's control socket (`gmvm run --control PATH`, docs/CONTROL.md): its
 * commands over the running VM, and the socket's life in a run.
 *
 * The socket is created early in vm_run(), before KVM is touched, so that
 * a path that cannot be used is status 125 on any host; it is served from
 * the moment the vCPUs start until all of them have left their loops,
 * then closed and removed, before the final audit.  A client that
 * connects while the VM is being set up gets its reply once the vCPUs run.
 *
 * The commands run on the server's thread (server.c), one at a time, and
 * struct control belongs to it (the main thread touches it only before
 * the thread starts and after it is joined).  migrate is a job: it runs
 * on the server's worker thread while the server answers every other
 * request "busy", so it too has struct control to itself.  Pauses are bounded
 * (PAUSE_TIMEOUT_MS): a vCPU stuck in an exit handler makes a pause fail,
 * and the VM runs on, rather than holding the server forever.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../gmvm.h"
#include "server.h"
#include "../migrate/migrate.h"

#define PAUSE_TIMEOUT_MS 10000

struct control {
	struct ctl_server *srv;
	bool paused;		/* by a pause request, until a resume */
};

static void cmd_stats(void *ctx, const struct ctl_json_object *req,
		      struct ctl_reply *r)
{
	struct vm *vm = ctx;
	bool paused = vm->control->paused;
	char *json = NULL;
	size_t len = 0;
	FILE *f;

	/* The vCPUs' counters are read while none of them runs. */
	if (!paused && vm_pause(vm, PAUSE_TIMEOUT_MS)) {
		ctl_reply_error(r, "stats: the vCPUs did not stop within %d s to be counted; the VM runs on",
				PAUSE_TIMEOUT_MS / 1000);
		return;
	}
	f = open_memstream(&json, &len);
	if (f) {
		stats_write(vm, f, true);
		if (fclose(f)) {
			free(json);
			json = NULL;
		}
	}
	if (!paused)
		vm_resume(vm);
	if (!json) {
		ctl_reply_error(r, "stats: out of memory");
		return;
	}
	while (len && json[len - 1] == '\n')
		len--;
	ctl_reply_ok(r);
	ctl_reply_raw(r, "stats", json, len);
	free(json);
}

static void cmd_pause(void *ctx, const struct ctl_json_object *req,
		      struct ctl_reply *r)
{
	struct vm *vm = ctx;

	if (vm_stopping(vm)) {
		ctl_reply_error(r, "pause: the VM is stopping");
		return;
	}
	if (vm_pause(vm, PAUSE_TIMEOUT_MS)) {
		ctl_reply_error(r, "pause: not every vCPU stopped within %d s; the VM runs on",
				PAUSE_TIMEOUT_MS / 1000);
		return;
	}
	if (vm_stopping(vm)) {
		ctl_reply_error(r, "pause: the VM is stopping");
		return;
	}
	vm->control->paused = true;
	ctl_reply_ok(r);
	ctl_reply_bool(r, "paused", true);
}

static void cmd_resume(void *ctx, const struct ctl_json_object *req,
		       struct ctl_reply *r)
{
	struct vm *vm = ctx;

	if (vm->control->paused) {
		vm_resume(vm);
		vm->control->paused = false;
	}
	ctl_reply_ok(r);
	ctl_reply_bool(r, "paused", false);
}

static void cmd_quit(void *ctx, const struct ctl_json_object *req,
		     struct ctl_reply *r)
{
	vm_quit(ctx);
	ctl_reply_ok(r);
	ctl_reply_bool(r, "stopping", true);
}

/* @why with every @path in it replaced by @clip (at most @len bytes). */
static void clip_path(char *why, size_t len, const char *path,
		      const char *clip)
{
	char out[512];
	size_t o = 0, plen = strlen(path), clen = strlen(clip);
	const char *p = why, *hit;

	if (!plen)
		return;		/* "" is found everywhere: nothing to cut */
	while ((hit = strstr(p, path)) && o + (size_t)(hit - p) + clen <
					  sizeof(out)) {
		memcpy(out + o, p, (size_t)(hit - p));
		o += (size_t)(hit - p);
		memcpy(out + o, clip, clen);
		o += clen;
		p = hit + plen;
	}
	snprintf(out + o, sizeof(out) - o, "%s", p);
	snprintf(why, len, "%s", out);
}

/*
 * The whole VM into a new file (docs/SNAPSHOT.md), with every vCPU paused
 * for it (as pause does), then resumed unless the VM was paused before;
 * with stop, the VM is then stopped as quit stops it (status 143).
 */
static void cmd_snapshot(void *ctx, const struct ctl_json_object *req,
			 struct ctl_reply *r)
{
	const struct ctl_json_member *p = ctl_json_get(req, "path");
	const struct ctl_json_member *st = ctl_json_get(req, "stop");
	struct vm *vm = ctx;
	bool paused = vm->control->paused, stop = st && st->b;
	char why[512], clip[48];
	uint64_t bytes = 0;
	int ret;

	ctl_json_clip(p->str, 40, clip, sizeof(clip));
	if (vm_stopping(vm)) {
		ctl_reply_error(r, "snapshot: the VM is stopping");
		return;
	}
	if (!paused && vm_pause(vm, PAUSE_TIMEOUT_MS)) {
		ctl_reply_error(r, "snapshot: not every vCPU stopped within %d s; the VM runs on",
				PAUSE_TIMEOUT_MS / 1000);
		return;
	}
	/* A stop that came meanwhile ended the pause: its vCPUs may run. */
	if (vm_stopping(vm)) {
		ret = -ECANCELED;
		snprintf(why, sizeof(why), "the VM is stopping");
	} else {
		ret = vm_snapshot_save(vm, p->str, &bytes, why, sizeof(why));
	}
	if (!ret && stop)
		vm_quit_snapshot(vm);
	else if (!paused)
		vm_resume(vm);
	if (ret) {
		clip_path(why, sizeof(why), p->str, clip);
		/* Only a failed sync of its directory leaves the file. */
		ctl_reply_error(r, "snapshot: %s; %s", why, bytes ?
				"the file was written but may not survive a crash" :
				"nothing was written");
		return;
	}
	ctl_reply_ok(r);
	ctl_reply_string(r, "path", p->str);
	snprintf(why, sizeof(why), "%llu", (unsigned long long)bytes);
	ctl_reply_raw(r, "bytes", why, strlen(why));
	ctl_reply_bool(r, "stopping", stop);
}

/* A duration in ms as a JSON number. */
static void reply_ms(struct ctl_reply *r, const char *key, double s)
{
	char num[32];

	snprintf(num, sizeof(num), "%.3f", s * 1000);
	ctl_reply_raw(r, key, num, strlen(num));
}

static void reply_u64(struct ctl_reply *r, const char *key, uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	ctl_reply_raw(r, key, num, strlen(num));
}

/*
 * The VM to another gmvm (docs/MIGRATION.md), as a job on the server's
 * worker thread: meanwhile other clients are told "busy" (server.c).  Success: the reply says moved,
 * and the VM stops with status 0.  Failure: the reply and one line on
 * stderr say why; the VM runs on (or stays paused, if it was).
 */
static void cmd_migrate(void *ctx, const struct ctl_json_object *req,
			struct ctl_reply *r)
{
	const struct ctl_json_member *u = ctl_json_get(req, "uri");
	struct vm *vm = ctx;
	bool paused = vm->control->paused;
	struct mig_stats st;
	char why[512], clip[48];
	int ret;

	ctl_json_clip(u->str, 40, clip, sizeof(clip));
	if (vm_stopping(vm)) {
		ctl_reply_error(r, "migrate: the VM is stopping");
		return;
	}
	memset(&st, 0, sizeof(st));
	ret = vm_migrate(vm, u->str, paused, &st, why, sizeof(why));
	if (ret && vm_stopping(vm)) {
		/* A stop (quit, a signal, the guest's exit) ended it: the VM
		 * does not run on, whatever the reason says. */
		clip_path(why, sizeof(why), u->str, clip);
		if (strstr(why, "the VM is stopping"))
			ctl_reply_error(r, "migrate: %s", why);
		else
			ctl_reply_error(r, "migrate: %s; the VM is stopping",
					why);
		gmvm_err("migration to %s abandoned: %s", clip, why);
		return;
	}
	if (ret) {
		clip_path(why, sizeof(why), u->str, clip);
		ctl_reply_error(r, "migrate: %s; the VM runs on%s", why,
				paused ? " (paused)" : "");
		gmvm_err("migration to %s failed: %s; the VM runs on", clip,
			 why);
		return;
	}
	vm_quit_moved(vm, clip);
	ctl_reply_ok(r);
	ctl_reply_bool(r, "moved", true);
	ctl_reply_string(r, "uri", u->str);
	ctl_reply_string(r, "tracker", st.tracker ? st.tracker : "");
	reply_u64(r, "bytes", st.bytes);
	reply_u64(r, "rounds", st.rounds);
	reply_ms(r, "downtime_ms", st.downtime_s);
	reply_ms(r, "total_ms", st.total_s);
}

static const struct ctl_command commands[] = {
	{ "stats", { { NULL } }, cmd_stats },
	{ "pause", { { NULL } }, cmd_pause },
	{ "resume", { { NULL } }, cmd_resume },
	{ "quit", { { NULL } }, cmd_quit },
	{ "snapshot", { { "path", CTL_JSON_STRING, true },
			{ "stop", CTL_JSON_BOOL, false } }, cmd_snapshot },
	/* A job (server.h): others are told "busy" while it runs. */
	{ "migrate", { { "uri", CTL_JSON_STRING, true } }, cmd_migrate, true },
};

int control_open(struct vm *vm)
{
	struct ctl_server_config cfg = {
		.path = vm->cfg->control_path,
		.cmds = commands,
		.nr_cmds = ARRAY_SIZE(commands),
		.ctx = vm,
		.owner = geteuid(),
	};
	struct control *c;
	char why[256];
	int ret;

	if (!cfg.path)
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c) {
		gmvm_err("--control %s: out of memory", cfg.path);
		return -ENOMEM;
	}
	ret = ctl_server_open(&cfg, &c->srv, why, sizeof(why));
	if (ret) {
		if (cfg.path[0])
			gmvm_err("--control %s: %s", cfg.path, why);
		else
			gmvm_err("--control: %s", why);
		free(c);
		return ret;
	}
	vm->control = c;
	return 0;
}

void control_start(struct vm *vm)
{
	int ret;

	if (!vm->control)
		return;
	ret = ctl_server_start(vm->control->srv);
	if (ret)
		vm_stop(vm, GM_EXIT_HOST_ERROR,
			"--control %s: starting its thread: %s",
			vm->cfg->control_path, strerror(-ret));
}

void control_close(struct vm *vm)
{
	if (!vm->control)
		return;
	ctl_server_close(vm->control->srv);
	free(vm->control);
	vm->control = NULL;
}
