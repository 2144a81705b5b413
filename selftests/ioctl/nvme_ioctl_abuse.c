// SPDX-License-Identifier: GPL-2.0
/*
 * Malformed NVMe passthrough ioctls against one device node: a controller character device
 * (/dev/nvmeX, /dev/onvmeX), a namespace block device (/dev/nvmeXnY, /dev/onvmeXnY) or a
 * namespace's generic character device (/dev/ngXnY, /dev/ongXnY), which takes the ioctls of
 * the namespace's block device (it is told from a controller node by NVME_IOCTL_ID).
 *
 *   NVME_NODE=/dev/onvme0n1 ./nvme_ioctl_abuse
 *
 * Every expected value is what the in-tree C nvme driver (Linux 7.3, drivers/nvme/host/ioctl.c)
 * returns against QEMU's emulated controller, measured in the test VM: 0, -errno, or a positive
 * NVMe status (Status Field with DNR, as the C driver returns it). A driver meant to behave like
 * the C driver must give exactly the same. Where the C driver answers differently on a
 * controller node and on a namespace node, or with one namespace and with several (the
 * deprecated NVME_IOCTL_IO_CMD on the controller node), the expectation says so.
 *
 * orion_nvme differs from the C driver on purpose in a few cases (NVME_DRIVER=orion_nvme selects
 * its expectations there; each is marked DELIBERATE with the reason): it refuses what the C
 * driver silently accepts or loses (nonzero reserved fields, absurd timeouts, a data buffer it
 * cannot write back, lengths beyond its transfer limit) and vendor-specific opcodes not listed
 * in its module parameters.
 *
 * Each case prints "# case KIND NAME: RESULT", so a run is also the measured table.
 * The unprivileged cases need the node to be mode 0666 (the runner script does that).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/nvme_ioctl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kselftest_harness.h"

/* NVMe opcodes and values used below (NVMe Base 2.0 §5, NVM Command Set 1.0 §3). */
#define ADM_GET_LOG_PAGE 0x02
#define ADM_IDENTIFY 0x06
#define ADM_SET_FEATURES 0x09
#define IO_FLUSH 0x00
#define IO_WRITE 0x01
#define IO_READ 0x02
#define CNS_NS 0x00
#define CNS_CTRL 0x01
#define CNS_ACTIVE_NSIDS 0x02
#define FID_TEMP_THRESH 0x04
#define FID_NUM_QUEUES 0x07
#define FID_APST 0x0c
#define FID_TIMESTAMP 0x0e
#define FID_KATO 0x0f
#define LID_SMART 0x02

/* QEMU's completion statuses as the C driver returns them (SCT/SC with DNR, bit 14). */
#define ST_INVALID_OPCODE 0x4001
#define ST_INVALID_FIELD 0x4002
#define ST_INVALID_NS 0x400b

/* Larger than any controller's transfer limit the C driver accepts (it caps at 8 MiB). */
#define HUGE_LEN (16u << 20)

FIXTURE(node)
{
	const char *path;
	int fd;
	int is_ns;          /* namespace node (block device or generic node); else controller */
	int is_generic;     /* the namespace's generic character device */
	const char *kind;   /* "ctrl", "ns" or "ng" */
	unsigned int nsid;  /* the node's namespace, or the controller's first active one */
	int nns;            /* active namespaces on the controller */
	unsigned int lbs;
	uint64_t last_lba;
	void *buf;          /* 4 KiB, page aligned, then a PROT_NONE page */
	void *gone;         /* a page that was unmapped */
};

/* NVME_DRIVER=orion_nvme: the node belongs to orion_nvme. */
static int orion;

/* DELIBERATE(c, o): the C driver's answer, or orion_nvme's where it differs on purpose. */
#define DELIBERATE(c, o) (orion ? (o) : (c))

/* ioctl returning 0, a positive NVMe status, or -errno. */
static int xioctl(int fd, unsigned long req, void *arg)
{
	int r = ioctl(fd, req, arg);

	return r < 0 ? -errno : r;
}

static const char *fmt(int r, char *s, size_t n)
{
	if (r < 0)
		snprintf(s, n, "-%s", strerrorname_np(-r) ?: "?");
	else if (r == 0)
		snprintf(s, n, "0");
	else
		snprintf(s, n, "status 0x%x", r);
	return s;
}

/* CASE(name, want, got): one measured case, printed, and compared with the C driver's. */
#define CASE(name, want, got) do {                                                       \
	int _w = (want), _g = (got);                                                     \
	char _a[48], _b[48];                                                             \
	fprintf(stderr, "# case %s %s: %s\n", self->kind, name, fmt(_g, _a, sizeof(_a))); \
	EXPECT_EQ(_w, _g) TH_LOG("case %s: got %s, want %s", name, fmt(_g, _a, sizeof(_a)), \
				 fmt(_w, _b, sizeof(_b)));                                \
} while (0)

static struct nvme_admin_cmd identify(unsigned int cns, unsigned int nsid, void *buf)
{
	struct nvme_admin_cmd c = {
		.opcode = ADM_IDENTIFY, .nsid = nsid, .addr = (uintptr_t)buf,
		.data_len = 4096, .cdw10 = cns,
	};
	return c;
}

/* A one-block I/O command on the fixture's namespace: the last LBA, away from any label. */
static struct nvme_passthru_cmd io_cmd(FIXTURE_DATA(node) *self, unsigned char opcode)
{
	struct nvme_passthru_cmd c = {
		.opcode = opcode, .nsid = self->nsid, .addr = (uintptr_t)self->buf,
		.data_len = self->lbs, .cdw10 = (uint32_t)self->last_lba,
		.cdw11 = (uint32_t)(self->last_lba >> 32), .cdw12 = 0,
	};
	if (opcode == IO_FLUSH) {
		c.addr = 0;
		c.data_len = 0;
		c.cdw10 = c.cdw11 = 0;
	}
	return c;
}

static struct nvme_user_io submit_io(FIXTURE_DATA(node) *self, unsigned char opcode)
{
	struct nvme_user_io io = {
		.opcode = opcode, .nblocks = 0, .addr = (uintptr_t)self->buf,
		.slba = self->last_lba,
	};
	return io;
}

FIXTURE_SETUP(node)
{
	struct stat st;
	uint32_t *list;
	struct nvme_admin_cmd c;
	int i;

	orion = getenv("NVME_DRIVER") && !strcmp(getenv("NVME_DRIVER"), "orion_nvme");
	self->path = getenv("NVME_NODE");
	if (!self->path)
		SKIP(return, "NVME_NODE is not set (a controller or namespace node)");
	self->fd = open(self->path, O_RDWR);
	ASSERT_LE(0, self->fd) TH_LOG("open %s: %s", self->path, strerror(errno));
	ASSERT_EQ(0, fstat(self->fd, &st));
	self->is_ns = S_ISBLK(st.st_mode);
	ASSERT_TRUE(self->is_ns || S_ISCHR(st.st_mode));
	/* A character device with a namespace ID is a generic node. */
	if (!self->is_ns && ioctl(self->fd, NVME_IOCTL_ID) > 0)
		self->is_ns = self->is_generic = 1;
	self->kind = self->is_generic ? "ng" : self->is_ns ? "ns" : "ctrl";
	/* The buffer is followed by an inaccessible guard page, so a length running past it
	 * always meets the same fault, whatever else the process has mapped. */
	self->buf = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
	ASSERT_EQ(0, mprotect((char *)self->buf + 4096, 4096, PROT_NONE));
	self->gone = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->gone);
	ASSERT_EQ(0, munmap(self->gone, 4096));

	/* The active namespaces, through the node itself (both node types take admin commands). */
	c = identify(CNS_ACTIVE_NSIDS, 0, self->buf);
	ASSERT_EQ(0, xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c));
	list = self->buf;
	for (self->nns = 0; self->nns < 1024 && list[self->nns]; self->nns++)
		;
	ASSERT_LT(0, self->nns);
	self->nsid = list[0];
	if (self->is_ns) {
		int id = ioctl(self->fd, NVME_IOCTL_ID);

		ASSERT_LT(0, id);
		self->nsid = id;
	}
	if (self->is_ns && !self->is_generic) {
		uint64_t bytes;

		ASSERT_EQ(0, ioctl(self->fd, BLKSSZGET, &i));
		self->lbs = i;
		ASSERT_EQ(0, ioctl(self->fd, BLKGETSIZE64, &bytes));
		self->last_lba = bytes / self->lbs - 1;
	} else {
		/* Identify Namespace: FLBAS (byte 26) selects the LBA format (byte 128 + 4n, LBADS
		 * in its byte 2) and NSZE (bytes 0-7) gives the size. */
		unsigned char *id = self->buf;

		c = identify(CNS_NS, self->nsid, self->buf);
		ASSERT_EQ(0, xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c));
		self->lbs = 1u << id[128 + 4 * (id[26] & 0xf) + 2];
		self->last_lba = *(uint64_t *)id - 1;
	}
	ASSERT_LE(512u, self->lbs);
	ASSERT_GE(4096u, self->lbs);
}

FIXTURE_TEARDOWN(node)
{
	if (self->fd >= 0)
		close(self->fd);
}

TEST_F(node, ioctl_numbers)
{
	CASE("NVME_IOCTL_ID (a positive result is the NSID)", self->is_ns ? (int)self->nsid : -ENOTTY,
	     xioctl(self->fd, NVME_IOCTL_ID, NULL));
	CASE("unknown ioctl _IO('N', 0x7f)", -ENOTTY, xioctl(self->fd, _IO('N', 0x7f), NULL));
	CASE("admin ioctl number with a wrong size", -ENOTTY,
	     xioctl(self->fd, _IOWR('N', 0x41, char[3]), self->buf));
	CASE("NVME_IOCTL_SUBMIT_IO on the node", self->is_ns ? 0 : -ENOTTY, ({
		struct nvme_user_io io = submit_io(self, IO_READ);
		xioctl(self->fd, NVME_IOCTL_SUBMIT_IO, &io); }));
	CASE("NVME_IOCTL_IO64_CMD on the node", self->is_ns ? 0 : -ENOTTY, ({
		struct nvme_passthru_cmd c = io_cmd(self, IO_READ);
		struct nvme_passthru_cmd64 c64 = {
			.opcode = c.opcode, .nsid = c.nsid, .addr = c.addr, .data_len = c.data_len,
			.cdw10 = c.cdw10, .cdw11 = c.cdw11 };
		xioctl(self->fd, NVME_IOCTL_IO64_CMD, &c64); }));
	/* The deprecated I/O passthrough on the controller node needs exactly one namespace. */
	CASE("NVME_IOCTL_IO_CMD read on the node",
	     self->is_ns || self->nns == 1 ? 0 : -EINVAL, ({
		struct nvme_passthru_cmd c = io_cmd(self, IO_READ);
		xioctl(self->fd, NVME_IOCTL_IO_CMD, &c); }));
}

TEST_F(node, unmapped_arguments)
{
	CASE("ADMIN_CMD arg (void *)1", -EFAULT, xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, (void *)1));
	CASE("ADMIN_CMD arg unmapped page", -EFAULT,
	     xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, self->gone));
	CASE("ADMIN64_CMD arg (void *)1", -EFAULT,
	     xioctl(self->fd, NVME_IOCTL_ADMIN64_CMD, (void *)1));
	CASE("ADMIN64_CMD arg unmapped page", -EFAULT,
	     xioctl(self->fd, NVME_IOCTL_ADMIN64_CMD, self->gone));
	CASE("ADMIN_CMD arg kernel address", -EFAULT,
	     xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, (void *)0xffffffff81000000ul));
	CASE("IO_CMD arg unmapped page",
	     self->is_ns || self->nns == 1 ? -EFAULT : -EINVAL,
	     xioctl(self->fd, NVME_IOCTL_IO_CMD, self->gone));
	CASE("IO64_CMD arg unmapped page", self->is_ns ? -EFAULT : -ENOTTY,
	     xioctl(self->fd, NVME_IOCTL_IO64_CMD, self->gone));
	CASE("SUBMIT_IO arg unmapped page", self->is_ns ? -EFAULT : -ENOTTY,
	     xioctl(self->fd, NVME_IOCTL_SUBMIT_IO, self->gone));
	CASE("Identify data addr unmapped page", -EFAULT, ({
		struct nvme_admin_cmd c = identify(CNS_CTRL, 0, self->gone);
		xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
	/* Unaligned: the C driver bounces through a kernel buffer and ignores the failed copy
	 * back to the user, so the command itself succeeds. DELIBERATE: orion_nvme reports that
	 * the data could not be delivered. */
	CASE("Identify data addr (void *)1", DELIBERATE(0, -EFAULT), ({
		struct nvme_admin_cmd c = identify(CNS_CTRL, 0, (void *)1);
		xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
	CASE("Identify data addr kernel address", -EFAULT, ({
		struct nvme_admin_cmd c = identify(CNS_CTRL, 0, (void *)0xffffffff81000000ul);
		xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
	if (self->is_ns) {
		CASE("IO read data addr unmapped page", -EFAULT, ({
			struct nvme_passthru_cmd c = io_cmd(self, IO_READ);
			c.addr = (uintptr_t)self->gone;
			xioctl(self->fd, NVME_IOCTL_IO_CMD, &c); }));
		CASE("SUBMIT_IO read data addr unmapped page", -EFAULT, ({
			struct nvme_user_io io = submit_io(self, IO_READ);
			io.addr = (uintptr_t)self->gone;
			xioctl(self->fd, NVME_IOCTL_SUBMIT_IO, &io); }));
	}
}

TEST_F(node, bad_lengths)
{
	void *big = mmap(NULL, HUGE_LEN, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	ASSERT_NE(MAP_FAILED, big);
	CASE("Identify data_len 16 MiB (over any MDTS)", -EINVAL, ({
		struct nvme_admin_cmd c = identify(CNS_CTRL, 0, big);
		c.data_len = HUGE_LEN;
		xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
	/* DELIBERATE: orion_nvme checks the length against its transfer limit before it touches
	 * the buffer, so any over-long length is EINVAL. */
	CASE("Identify data_len 0xffffffff on a 4 KiB buffer + guard page", DELIBERATE(-EFAULT, -EINVAL), ({
		struct nvme_admin_cmd c = identify(CNS_CTRL, 0, self->buf);
		c.data_len = 0xffffffff;
		xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
	/* addr 0 with a length: the C driver maps nothing and sends the command without a data
	 * pointer. Host to controller only (the device reads guest page 0, writes nothing). */
	CASE("Set Features Timestamp data_len 8 addr 0", 0, ({
		struct nvme_admin_cmd c = {
			.opcode = ADM_SET_FEATURES, .cdw10 = FID_TIMESTAMP, .data_len = 8 };
		xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
	CASE("Identify metadata_len 64 without a metadata pointer", 0, ({
		struct nvme_admin_cmd c = identify(CNS_CTRL, 0, self->buf);
		c.metadata_len = 64;
		xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
	CASE("Identify metadata pointer with metadata_len 0", 0, ({
		struct nvme_admin_cmd c = identify(CNS_CTRL, 0, self->buf);
		c.metadata = (uintptr_t)big;
		xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
	CASE("Identify metadata pointer and length (no integrity)", -EINVAL, ({
		struct nvme_admin_cmd c = identify(CNS_CTRL, 0, self->buf);
		c.metadata = (uintptr_t)big;
		c.metadata_len = 64;
		xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
	if (self->is_ns) {
		CASE("IO read data_len 16 MiB", -EINVAL, ({
			struct nvme_passthru_cmd c = io_cmd(self, IO_READ);
			c.addr = (uintptr_t)big;
			c.data_len = HUGE_LEN;
			c.cdw10 = c.cdw11 = 0;
			c.cdw12 = HUGE_LEN / self->lbs - 1;
			xioctl(self->fd, NVME_IOCTL_IO_CMD, &c); }));
		CASE("IO write data_len lbs addr 0 (device reads page 0)", 0, ({
			struct nvme_passthru_cmd c = io_cmd(self, IO_WRITE);
			c.addr = 0;
			xioctl(self->fd, NVME_IOCTL_IO_CMD, &c); }));
		CASE("IO read metadata pointer and length (no integrity)", -EINVAL, ({
			struct nvme_passthru_cmd c = io_cmd(self, IO_READ);
			c.metadata = (uintptr_t)big;
			c.metadata_len = 8;
			xioctl(self->fd, NVME_IOCTL_IO_CMD, &c); }));
		/* DELIBERATE: as above, the length is over the transfer limit. */
		CASE("SUBMIT_IO read nblocks 65535 into 4 KiB + guard page", DELIBERATE(-EFAULT, -EINVAL), ({
			struct nvme_user_io io = submit_io(self, IO_READ);
			io.slba = 0;
			io.nblocks = 0xffff;
			xioctl(self->fd, NVME_IOCTL_SUBMIT_IO, &io); }));
	}
	munmap(big, HUGE_LEN);
}

TEST_F(node, nsids)
{
	CASE("Identify Namespace nsid 0xffffffff", ST_INVALID_NS, ({
		struct nvme_admin_cmd c = identify(CNS_NS, 0xffffffff, self->buf);
		xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
	CASE("Identify Namespace nsid 0xfffffffe", ST_INVALID_NS, ({
		struct nvme_admin_cmd c = identify(CNS_NS, 0xfffffffe, self->buf);
		xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
	/* I/O passthrough checks the NSID against the node's (on the controller node: its only
	 * namespace's) before anything else. */
	CASE("IO read nsid 0xffffffff", -EINVAL, ({
		struct nvme_passthru_cmd c = io_cmd(self, IO_READ);
		c.nsid = 0xffffffff;
		xioctl(self->fd, NVME_IOCTL_IO_CMD, &c); }));
	CASE("IO read nsid 0xfffffffe", -EINVAL, ({
		struct nvme_passthru_cmd c = io_cmd(self, IO_READ);
		c.nsid = 0xfffffffe;
		xioctl(self->fd, NVME_IOCTL_IO_CMD, &c); }));
	CASE("IO read nsid 0", -EINVAL, ({
		struct nvme_passthru_cmd c = io_cmd(self, IO_READ);
		c.nsid = 0;
		xioctl(self->fd, NVME_IOCTL_IO_CMD, &c); }));
	if (self->is_ns)
		CASE("IO64 read nsid 0xfffffffe", -EINVAL, ({
			struct nvme_passthru_cmd64 c = {
				.opcode = IO_READ, .nsid = 0xfffffffe, .addr = (uintptr_t)self->buf,
				.data_len = self->lbs };
			xioctl(self->fd, NVME_IOCTL_IO64_CMD, &c); }));
}

TEST_F(node, reserved_fields)
{
	CASE("Identify flags 0x1", -EINVAL, ({
		struct nvme_admin_cmd c = identify(CNS_CTRL, 0, self->buf);
		c.flags = 1;
		xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
	CASE("Identify flags 0x80", -EINVAL, ({
		struct nvme_admin_cmd c = identify(CNS_CTRL, 0, self->buf);
		c.flags = 0x80;
		xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
	/* DELIBERATE: reserved fields must be zero; orion_nvme refuses what the C driver ignores. */
	CASE("Identify rsvd1 0xffff (ignored by C)", DELIBERATE(0, -EINVAL), ({
		struct nvme_admin_cmd c = identify(CNS_CTRL, 0, self->buf);
		c.rsvd1 = 0xffff;
		xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
	CASE("ADMIN64 Identify flags 0x1", -EINVAL, ({
		struct nvme_passthru_cmd64 c = {
			.opcode = ADM_IDENTIFY, .flags = 1, .addr = (uintptr_t)self->buf,
			.data_len = 4096, .cdw10 = CNS_CTRL };
		xioctl(self->fd, NVME_IOCTL_ADMIN64_CMD, &c); }));
	CASE("ADMIN64 Identify rsvd1 and rsvd2 set (ignored by C)", DELIBERATE(0, -EINVAL), ({
		struct nvme_passthru_cmd64 c = {
			.opcode = ADM_IDENTIFY, .rsvd1 = 0xffff, .addr = (uintptr_t)self->buf,
			.data_len = 4096, .cdw10 = CNS_CTRL, .rsvd2 = 0xffffffff };
		xioctl(self->fd, NVME_IOCTL_ADMIN64_CMD, &c); }));
	if (self->is_ns) {
		CASE("IO read flags 0x1", -EINVAL, ({
			struct nvme_passthru_cmd c = io_cmd(self, IO_READ);
			c.flags = 1;
			xioctl(self->fd, NVME_IOCTL_IO_CMD, &c); }));
		CASE("SUBMIT_IO read flags 0x1", -EINVAL, ({
			struct nvme_user_io io = submit_io(self, IO_READ);
			io.flags = 1;
			xioctl(self->fd, NVME_IOCTL_SUBMIT_IO, &io); }));
		CASE("SUBMIT_IO opcode 0x80 (only read, write, compare)", -EINVAL, ({
			struct nvme_user_io io = submit_io(self, 0x80);
			xioctl(self->fd, NVME_IOCTL_SUBMIT_IO, &io); }));
		CASE("SUBMIT_IO opcode flush", -EINVAL, ({
			struct nvme_user_io io = submit_io(self, IO_FLUSH);
			xioctl(self->fd, NVME_IOCTL_SUBMIT_IO, &io); }));
	}
}

TEST_F(node, absurd_timeout)
{
	/* DELIBERATE: 49 days is absurd; orion_nvme takes at most an hour. */
	CASE("Identify timeout_ms 0xffffffff", DELIBERATE(0, -EINVAL), ({
		struct nvme_admin_cmd c = identify(CNS_CTRL, 0, self->buf);
		c.timeout_ms = 0xffffffff;
		xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
	CASE("Identify timeout_ms 1", 0, ({
		struct nvme_admin_cmd c = identify(CNS_CTRL, 0, self->buf);
		c.timeout_ms = 1;
		xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
	if (self->is_ns)
		CASE("IO read timeout_ms 0xffffffff", DELIBERATE(0, -EINVAL), ({
			struct nvme_passthru_cmd c = io_cmd(self, IO_READ);
			c.timeout_ms = 0xffffffff;
			xioctl(self->fd, NVME_IOCTL_IO_CMD, &c); }));
}

/* Admin commands whose effects the driver itself owns: refused even with CAP_SYS_ADMIN. */
TEST_F(node, driver_owned_features)
{
	static const struct { const char *name; unsigned int fid; } f[] = {
		{ "Set Features Number of Queues (root)", FID_NUM_QUEUES },
		{ "Set Features APST (root)", FID_APST },
		{ "Set Features Keep Alive Timer (root)", FID_KATO },
	};
	unsigned int i;

	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		CASE(f[i].name, -EACCES, ({
			struct nvme_admin_cmd c = {
				.opcode = ADM_SET_FEATURES, .cdw10 = f[i].fid, .cdw11 = 0 };
			xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
}

/* Vendor-specific opcodes as root: the C driver passes them through; QEMU has none. */
TEST_F(node, vendor_specific_root)
{
	static const unsigned char adm[] = { 0xc0, 0xc1, 0xc2, 0xfe, 0xff };
	static const unsigned char io[] = { 0x80, 0x81, 0x82, 0xfe, 0xff };
	char name[64];
	unsigned int i;

	for (i = 0; i < sizeof(adm); i++) {
		snprintf(name, sizeof(name), "admin opcode 0x%02x (root)", adm[i]);
		/* DELIBERATE: unlisted vendor-specific opcodes are refused (module parameters
		 * vendor_admin_opcodes/vendor_io_opcodes list the allowed ones). */
		CASE(name, DELIBERATE(ST_INVALID_OPCODE, -EPERM), ({
			struct nvme_admin_cmd c = { .opcode = adm[i] };
			xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c); }));
	}
	for (i = 0; i < sizeof(io); i++) {
		snprintf(name, sizeof(name), "io opcode 0x%02x (root)", io[i]);
		CASE(name, self->is_ns || self->nns == 1 ? DELIBERATE(ST_INVALID_OPCODE, -EPERM) : -EINVAL, ({
			struct nvme_passthru_cmd c = { .opcode = io[i], .nsid = self->nsid };
			xioctl(self->fd, NVME_IOCTL_IO_CMD, &c); }));
	}
}

/*
 * Unprivileged: a child drops to nobody (65534, no supplementary groups, no capabilities) and
 * runs the cases on a fresh open of the node; the results come back in shared memory.
 */
enum {
	U_OPEN_RO, U_OPEN_RW, U_ID_CTRL, U_ID_NS, U_ID_LIST, U_LOG_SMART, U_SET_TEMP, U_VS_ADMIN,
	U_RESET, U_RESCAN, U_READ_RO, U_WRITE_RO, U_FLUSH_RO, U_VS_IO_RO, U_SUBMIT_READ_RO,
	U_SUBMIT_WRITE_RO, U_BADNSID_RO, U_READ_RW, U_WRITE_RW, U_SUBMIT_WRITE_RW, U_ADMIN64_ID,
	U_FLUSH_RW,
	U_N
};

static void unprivileged(FIXTURE_DATA(node) *self, int *r)
{
	int ro, rw;
	unsigned char *save = self->buf;
	struct nvme_admin_cmd a;
	struct nvme_passthru_cmd c;
	struct nvme_user_io io;

	if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
		_exit(2);
	ro = open(self->path, O_RDONLY);
	r[U_OPEN_RO] = ro < 0 ? -errno : 0;
	rw = open(self->path, O_RDWR);
	r[U_OPEN_RW] = rw < 0 ? -errno : 0;
	if (ro < 0 || rw < 0)
		_exit(0);

	a = identify(CNS_CTRL, 0, self->buf);
	r[U_ID_CTRL] = xioctl(ro, NVME_IOCTL_ADMIN_CMD, &a);
	a = identify(CNS_NS, self->nsid, self->buf);
	r[U_ID_NS] = xioctl(ro, NVME_IOCTL_ADMIN_CMD, &a);
	a = identify(CNS_ACTIVE_NSIDS, 0, self->buf);
	r[U_ID_LIST] = xioctl(ro, NVME_IOCTL_ADMIN_CMD, &a);
	a = (struct nvme_admin_cmd){ .opcode = ADM_GET_LOG_PAGE, .nsid = 0xffffffff,
		.addr = (uintptr_t)self->buf, .data_len = 512,
		.cdw10 = LID_SMART | ((512 / 4 - 1) << 16) };
	r[U_LOG_SMART] = xioctl(rw, NVME_IOCTL_ADMIN_CMD, &a);
	a = (struct nvme_admin_cmd){ .opcode = ADM_SET_FEATURES, .cdw10 = FID_TEMP_THRESH,
		.cdw11 = 0x157 };
	r[U_SET_TEMP] = xioctl(rw, NVME_IOCTL_ADMIN_CMD, &a);
	a = (struct nvme_admin_cmd){ .opcode = 0xc0 };
	r[U_VS_ADMIN] = xioctl(rw, NVME_IOCTL_ADMIN_CMD, &a);
	r[U_RESET] = xioctl(rw, NVME_IOCTL_RESET, NULL);
	r[U_RESCAN] = xioctl(rw, NVME_IOCTL_RESCAN, NULL);
	{
		struct nvme_passthru_cmd64 a64 = {
			.opcode = ADM_IDENTIFY, .addr = (uintptr_t)self->buf, .data_len = 4096,
			.cdw10 = CNS_CTRL };
		r[U_ADMIN64_ID] = xioctl(ro, NVME_IOCTL_ADMIN64_CMD, &a64);
	}

	c = io_cmd(self, IO_READ);
	r[U_READ_RO] = xioctl(ro, NVME_IOCTL_IO_CMD, &c);
	/* The writes put back what was just read: the block keeps its contents. */
	c = io_cmd(self, IO_WRITE);
	r[U_WRITE_RO] = xioctl(ro, NVME_IOCTL_IO_CMD, &c);
	c = io_cmd(self, IO_FLUSH);
	r[U_FLUSH_RO] = xioctl(ro, NVME_IOCTL_IO_CMD, &c);
	c = (struct nvme_passthru_cmd){ .opcode = 0x80, .nsid = self->nsid };
	r[U_VS_IO_RO] = xioctl(ro, NVME_IOCTL_IO_CMD, &c);
	io = submit_io(self, IO_READ);
	r[U_SUBMIT_READ_RO] = xioctl(ro, NVME_IOCTL_SUBMIT_IO, &io);
	io = submit_io(self, IO_WRITE);
	r[U_SUBMIT_WRITE_RO] = xioctl(ro, NVME_IOCTL_SUBMIT_IO, &io);
	c = io_cmd(self, IO_READ);
	c.nsid = 0xfffffffe;
	r[U_BADNSID_RO] = xioctl(ro, NVME_IOCTL_IO_CMD, &c);
	c = io_cmd(self, IO_READ);
	r[U_READ_RW] = xioctl(rw, NVME_IOCTL_IO_CMD, &c);
	c = io_cmd(self, IO_WRITE);
	r[U_WRITE_RW] = xioctl(rw, NVME_IOCTL_IO_CMD, &c);
	io = submit_io(self, IO_WRITE);
	r[U_SUBMIT_WRITE_RW] = xioctl(rw, NVME_IOCTL_SUBMIT_IO, &io);
	c = io_cmd(self, IO_FLUSH);
	r[U_FLUSH_RW] = xioctl(rw, NVME_IOCTL_IO_CMD, &c);
	(void)save;
	_exit(0);
}

TEST_F(node, unprivileged)
{
	int *r = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct stat st;
	pid_t pid;
	int status, i;
	/* Expected results per node type; the controller node's I/O passthrough is the
	 * deprecated single-namespace path (-EINVAL with several namespaces). */
	int ns = self->is_ns, one = ns || self->nns == 1;
	int want[U_N] = {
		[U_OPEN_RO] = 0, [U_OPEN_RW] = 0,
		[U_ID_CTRL] = 0, [U_ID_NS] = 0, [U_ID_LIST] = -EACCES, [U_LOG_SMART] = -EACCES,
		[U_SET_TEMP] = -EACCES, [U_VS_ADMIN] = -EACCES, [U_ADMIN64_ID] = 0,
		[U_RESET] = ns ? -ENOTTY : -EACCES, [U_RESCAN] = ns ? -ENOTTY : -EACCES,
		[U_READ_RO] = one ? 0 : -EINVAL, [U_WRITE_RO] = one ? -EACCES : -EINVAL,
		/* Flush changes logical block contents (LBCC in QEMU's Commands Supported and
		 * Effects log): it needs a node opened for writing. */
		[U_FLUSH_RO] = one ? -EACCES : -EINVAL, [U_FLUSH_RW] = one ? 0 : -EINVAL, [U_VS_IO_RO] = one ? -EACCES : -EINVAL,
		[U_SUBMIT_READ_RO] = ns ? 0 : -ENOTTY, [U_SUBMIT_WRITE_RO] = ns ? -EACCES : -ENOTTY,
		[U_BADNSID_RO] = -EINVAL,
		[U_READ_RW] = one ? 0 : -EINVAL, [U_WRITE_RW] = one ? 0 : -EINVAL,
		[U_SUBMIT_WRITE_RW] = ns ? 0 : -ENOTTY,
	};
	static const char *const names[U_N] = {
		[U_OPEN_RO] = "nobody: open O_RDONLY", [U_OPEN_RW] = "nobody: open O_RDWR",
		[U_ID_CTRL] = "nobody: Identify Controller", [U_ID_NS] = "nobody: Identify Namespace",
		[U_ID_LIST] = "nobody: Identify Active NSID list",
		[U_LOG_SMART] = "nobody: Get Log Page SMART",
		[U_SET_TEMP] = "nobody: Set Features Temperature Threshold",
		[U_VS_ADMIN] = "nobody: admin opcode 0xc0",
		[U_ADMIN64_ID] = "nobody: ADMIN64 Identify Controller",
		[U_RESET] = "nobody: NVME_IOCTL_RESET", [U_RESCAN] = "nobody: NVME_IOCTL_RESCAN",
		[U_READ_RO] = "nobody: IO read (O_RDONLY)", [U_WRITE_RO] = "nobody: IO write (O_RDONLY)",
		[U_FLUSH_RO] = "nobody: IO flush (O_RDONLY)",
		[U_VS_IO_RO] = "nobody: io opcode 0x80 (O_RDONLY)",
		[U_SUBMIT_READ_RO] = "nobody: SUBMIT_IO read (O_RDONLY)",
		[U_SUBMIT_WRITE_RO] = "nobody: SUBMIT_IO write (O_RDONLY)",
		[U_BADNSID_RO] = "nobody: IO read nsid 0xfffffffe (O_RDONLY)",
		[U_READ_RW] = "nobody: IO read (O_RDWR)", [U_WRITE_RW] = "nobody: IO write (O_RDWR)",
		[U_SUBMIT_WRITE_RW] = "nobody: SUBMIT_IO write (O_RDWR)",
		[U_FLUSH_RW] = "nobody: IO flush (O_RDWR)",
	};

	ASSERT_NE(MAP_FAILED, r);
	ASSERT_EQ(0, stat(self->path, &st));
	if ((st.st_mode & 0666) != 0666)
		SKIP(return, "%s is mode %o; the unprivileged cases need 0666", self->path,
		     st.st_mode & 0777);
	for (i = 0; i < U_N; i++)
		r[i] = -ENODATA;
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		unprivileged(self, r);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("could not become nobody (status 0x%x)", status);
	ASSERT_EQ(0, r[U_OPEN_RO]);
	ASSERT_EQ(0, r[U_OPEN_RW]);
	for (i = 0; i < U_N; i++)
		CASE(names[i], want[i], r[i]);
	munmap(r, 4096);
}

/* Last: after everything above, the node still serves a plain Identify Controller. */
TEST_F(node, zz_not_wedged)
{
	struct nvme_admin_cmd c = identify(CNS_CTRL, 0, self->buf);
	unsigned char *id = self->buf;

	memset(self->buf, 0, 4096);
	CASE("Identify Controller after the abuse", 0, xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &c));
	/* VID (bytes 0-1) is nonzero on any real controller. */
	EXPECT_NE(0, id[0] | id[1]);
	if (self->is_ns)
		CASE("IO read after the abuse", 0, ({
			struct nvme_passthru_cmd c = io_cmd(self, IO_READ);
			xioctl(self->fd, NVME_IOCTL_IO_CMD, &c); }));
}

TEST_HARNESS_MAIN
