/* SPDX-License-Identifier: MIT */
/*
 * What keeps libgmem 2's ABI extensible: gmem_version(), and the copy of
 * the size-first structs (struct gmem_config, gmem_region_config,
 * gmem_stats, ...) in from and out to the caller.
 *
 * Every such struct starts with a uint32_t size, the caller's
 * sizeof().  In: an older caller's struct is read as far as it goes (the
 * rest reads as zero), a newer caller's is accepted only if every byte
 * this library does not know is zero.  Out: min(the caller's size, ours)
 * bytes are written, the caller's size is kept, and the bytes of a newer
 * caller's struct past ours are zeroed.
 */
#include <string.h>

#include "internal.h"

unsigned int gmem_version(void)
{
	return GMEM_VERSION;
}

int gmem_copy_in(void *dst, size_t dst_size, const void *src, size_t min_size)
{
	uint32_t size;
	size_t i;

	if (!src)
		return -EINVAL;
	memcpy(&size, src, sizeof(size));
	if (size < min_size)
		return -EINVAL;
	/* Bytes we do not know must be zero: a newer caller asking for
	 * something this library cannot do must not be silently ignored. */
	for (i = dst_size; i < size; i++)
		if (((const uint8_t *)src)[i])
			return -E2BIG;
	memset(dst, 0, dst_size);
	memcpy(dst, src, size < dst_size ? size : dst_size);
	size = (uint32_t)dst_size;	/* our copy is of our own size */
	memcpy(dst, &size, sizeof(size));
	return 0;
}

int gmem_copy_out(void *dst, const void *src, size_t src_size)
{
	uint32_t size;

	if (!dst)
		return -EINVAL;
	memcpy(&size, dst, sizeof(size));
	if (size < sizeof(uint32_t))
		return -EINVAL;
	if (size > src_size) {
		memset((uint8_t *)dst + src_size, 0, size - src_size);
		size = (uint32_t)src_size;
	}
	memcpy((uint8_t *)dst + sizeof(uint32_t),
	       (const uint8_t *)src + sizeof(uint32_t),
	       size - sizeof(uint32_t));
	return 0;
}
