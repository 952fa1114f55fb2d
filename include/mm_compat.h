/* SPDX-License-Identifier: MIT */
/*
 * The userfaultfd and pagemap UAPI that Debian 12's Linux 6.1 headers
 * lack, for dirty tracking during live migration (vmm/migrate/).
 *
 * Every value is part of the stable kernel ABI; each definition is
 * guarded so that newer system headers win, and nothing here is assumed
 * to be supported: the tracker probes with UFFDIO_API and PAGEMAP_SCAN.
 *  - UFFD_FEATURE_WP_UNPOPULATED (Linux 6.4) and UFFD_FEATURE_WP_ASYNC
 *    (Linux 6.7): include/uapi/linux/userfaultfd.h;
 *  - PAGEMAP_SCAN, struct pm_scan_arg, struct page_region, PAGE_IS_* and
 *    PM_SCAN_* (Linux 6.7): include/uapi/linux/fs.h, described in
 *    Documentation/admin-guide/mm/pagemap.rst.
 */
#ifndef GMEM_MM_COMPAT_H
#define GMEM_MM_COMPAT_H

#include <linux/fs.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED	(1 << 0)
#define PAGE_IS_WRITTEN		(1 << 1)
#define PAGE_IS_FILE		(1 << 2)
#define PAGE_IS_PRESENT		(1 << 3)
#define PAGE_IS_SWAPPED		(1 << 4)
#define PAGE_IS_PFNZERO		(1 << 5)
#define PAGE_IS_HUGE		(1 << 6)
#define PAGE_IS_SOFT_DIRTY	(1 << 7)

struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

#define PM_SCAN_WP_MATCHING	(1 << 0)
#define PM_SCAN_CHECK_WPASYNC	(1 << 1)

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

#endif
