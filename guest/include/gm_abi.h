/* SPDX-License-Identifier: MIT */
/*
 * The gmvm guest ABI, version 1, as seen from the guest: the shared
 * definitions of include/gmvm/abi.h (which gmvm uses too) plus the size
 * helpers guest code likes.  Nothing else about gmvm may be relied upon.
 */
#ifndef GUEST_GM_ABI_H
#define GUEST_GM_ABI_H

#include <stddef.h>
#include <stdint.h>

#define PAGE_SHIFT	12
#define PAGE_SIZE	(1ULL << PAGE_SHIFT)
#define SZ_4K		0x1000ULL
#define SZ_64K		0x10000ULL
#define SZ_1M		0x100000ULL
#define SZ_2M		0x200000ULL
#define SZ_16M		0x1000000ULL
#define SZ_1G		0x40000000ULL

#include "gmvm/abi.h"

#endif /* GUEST_GM_ABI_H */
