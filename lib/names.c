/* SPDX-License-Identifier: MIT */
/*
 * The names of libgmem's enums, for messages and logs: backend, layout,
 * page state, mode and invalidation reason.  Each returns a static string,
 * "unknown" or "invalid" for a value outside the enum (never NULL).
 */
#include "gmem/gmem.h"

const char *gmem_backend_name(enum gmem_backend backend)
{
	switch (backend) {
	case GMEM_BACKEND_AUTO:
		return "auto";
	case GMEM_BACKEND_EMULATED:
		return "emulated (two gated views)";
	case GMEM_BACKEND_VM_ATTRIBUTES:
		return "native (VM memory attributes)";
	case GMEM_BACKEND_GMEM_IN_PLACE:
		return "native (guest_memfd in-place conversion)";
	}
	return "unknown";
}

const char *gmem_layout_name(enum gmem_layout layout)
{
	switch (layout) {
	case GMEM_LAYOUT_AUTO:
		return "auto";
	case GMEM_LAYOUT_GMEM_SLOT:
		return "guest_memfd slot gated through userspace_addr";
	case GMEM_LAYOUT_PLAIN_SLOT:
		return "plain slot over an mmap of the guest_memfd";
	}
	return "unknown";
}

const char *gmem_state_name(enum gmem_state state)
{
	return state == GMEM_PRIVATE ? "private" :
	       state == GMEM_SHARED ? "shared" : "invalid";
}

const char *gmem_mode_name(enum gmem_mode mode)
{
	return mode == GMEM_MODE_DISCARD ? "discard" :
	       mode == GMEM_MODE_IN_PLACE ? "in-place" : "invalid";
}

const char *gmem_inval_reason_name(enum gmem_inval_reason reason)
{
	switch (reason) {
	case GMEM_INVAL_CONVERT:
		return "convert";
	case GMEM_INVAL_PUNCH:
		return "punch";
	case GMEM_INVAL_RELEASE:
		return "release";
	}
	return "invalid";
}
