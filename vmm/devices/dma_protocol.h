/* SPDX-License-Identifier: MIT */
/*
 * The wire protocol of the out-of-process DMA test device
 * (--dmatest=external), between gmvm's side (dma_remote.h) and the device
 * process (dma_process.c, `gmvm dma-device`).  Self-contained: a test
 * client speaks it with only include/ and this header.
 *
 * Transport: one AF_UNIX SOCK_SEQPACKET socketpair.  The device process
 * holds only its end (as fd DMADEV_FD) and stdin/stdout/stderr: no
 * guest_memfd, no /dev/kvm, no VM fd.  Every message is one struct
 * dmadev_msg and gets exactly one struct dmadev_ack with the same type and
 * seq, in order; gmvm sends the next message only after the ack (10 s at
 * most, then the device is killed).
 *
 *   HELLO  a = the top of guest RAM (the end of its highest region; at
 *          most GMVM_MAX_RAM_TOP), b = the file offset of IOVA 0 (page
 *          aligned), with the shared backing's fd (SCM_RIGHTS); the
 *          device reserves a bytes PROT_NONE and answers v0 = the
 *          reservation's address (IOVA x is mapped at v0 + x, from file
 *          offset b + x; a hole between regions is never mapped)
 *   MAP    a = iova, b = len: mmap the backing at [iova, iova + len)
 *   UNMAP  a = iova, b = len, flags: put the PROT_NONE placeholder back
 *   CUT    a = m_iova, b = m_len, c = iova, d = len, flags: placeholder
 *          over [iova, iova + len), inside the mapping [m_iova, +m_len)
 *   MERGE  a = iova, b = len: one mmap over the tiling mappings
 *   DMA    flags = CMD (FILL, CHECKSUM, PIN, UNPIN), a = addr, b = len,
 *          c = pattern; v0 = STATUS, v1 = RESULT
 *   STATE  v0 = mappings, v1 = pins
 *   BYE    the device answers, unmaps everything and exits 0
 *
 * err is 0 or -errno: -EINVAL a request a correct mapper never makes (the
 * device's table is a strict swiommu), -EAGAIN an UNMAP/CUT without
 * GMEM_DISCARD_FORCED of a pinned range (v0 = its first pinned page), -EBADMSG/-EPROTO a malformed or
 * out-of-order message, or the -errno of a failed mmap.  The device
 * validates everything it receives and answers a bad message with an
 * error, never by crashing.
 */
#ifndef GMVM_DMA_PROTOCOL_H
#define GMVM_DMA_PROTOCOL_H

#include <stdint.h>

#include <gmem/gmem.h>

#include "gmvm/abi.h"

#define DMADEV_FD 3			/* the device's socket */
#define DMADEV_ACK_TIMEOUT_MS 10000	/* then gmvm kills the device */

enum dmadev_type {
	DMADEV_HELLO = 1,
	DMADEV_MAP = 2,
	DMADEV_UNMAP = 3,
	DMADEV_CUT = 4,
	DMADEV_MERGE = 5,
	DMADEV_DMA = 6,
	DMADEV_STATE = 7,
	DMADEV_BYE = 8,
};

struct dmadev_msg {
	uint32_t type;
	uint32_t flags;
	uint64_t seq;
	uint64_t a, b, c, d;
};

struct dmadev_ack {
	uint32_t type;
	int32_t err;
	uint64_t seq;
	uint64_t v0, v1;
};

_Static_assert(sizeof(struct dmadev_msg) == 48, "dmadev_msg");
_Static_assert(sizeof(struct dmadev_ack) == 32, "dmadev_ack");

#endif /* GMVM_DMA_PROTOCOL_H */
