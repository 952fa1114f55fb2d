/* SPDX-License-Identifier: MIT */
/*
 * Transitional: the DMA device's wire protocol is dma_protocol.h.  This
 * name stays only until tests/test_dmadev.sh includes dma_protocol.h;
 * nothing in vmm/ or fuzz/ includes it.
 */
#include "dma_protocol.h"
