// SPDX-License-Identifier: GPL-2.0
/*
 * NVMe io_uring passthrough and vectored ioctls against one namespace's generic node
 * (/dev/ngXnY of the C driver, /dev/ong<C>n<NSID> of orion_nvme) and its controller node:
 *
 *   NVME_NODE=/dev/ong0n1 NVME_CTRL=/dev/onvme0 NVME_BLOCK=/dev/onvme0n1 ./nvme_uring
 *
 * Data moved through the generic node is checked against the block device (O_DIRECT);
 * NVMe results in the big CQE against the same command sent as an ioctl. Malformed commands
 * must get the C driver's answer, measured in the test VM (drivers/nvme/host/ioctl.c of Linux
 * 7.3 against QEMU's controller), except where orion_nvme differs on purpose
 * (NVME_DRIVER=orion_nvme; each marked DELIBERATE with the reason, as in nvme_ioctl_abuse.c).
 *
 * Each case prints "# case NAME: RESULT". The unprivileged cases need the generic and
 * controller nodes to be mode 0666 (the runner script does that).
 *
 * No liburing in the guest: the ring is set up with the raw system calls.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <linux/nvme_ioctl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "kselftest_harness.h"

#define ADM_GET_LOG_PAGE 0x02
#define ADM_IDENTIFY 0x06
#define ADM_GET_FEATURES 0x0a
#define IO_FLUSH 0x00
#define IO_WRITE 0x01
#define IO_READ 0x02
#define CNS_NS 0x00
#define CNS_CTRL 0x01
#define FID_TEMP_THRESH 0x04
#define FID_NUM_QUEUES 0x07
#define LID_SMART 0x02
#define ST_INVALID_OPCODE 0x4001
#define ST_INVALID_FIELD 0x4002

/* The test area: 64 blocks, 256 blocks before the end (away from labels and other tests). */
#define AREA_BLOCKS 64
#define HUGE_LEN (16u << 20)

/* NVME_DRIVER=orion_nvme: the nodes belong to orion_nvme. */
static int orion;
#define DELIBERATE(c, o) (orion ? (o) : (c))

struct ring {
	int fd;
	unsigned int *sq_head, *sq_tail, *sq_mask, *sq_array;
	unsigned int *cq_head, *cq_tail, *cq_mask;
	unsigned char *sqes, *cqes;
	unsigned int sqe_size, cqe_size;
};

static int ring_init(struct ring *r, unsigned int entries, unsigned int flags)
{
	struct io_uring_params p;
	unsigned char *sq, *cq;
	size_t sq_len, cq_len;

	memset(&p, 0, sizeof(p));
	p.flags = flags;
	r->fd = syscall(__NR_io_uring_setup, entries, &p);
	if (r->fd < 0)
		return -errno;
	r->sqe_size = flags & IORING_SETUP_SQE128 ? 128 : 64;
	r->cqe_size = flags & IORING_SETUP_CQE32 ? 32 : 16;
	sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned int);
	cq_len = p.cq_off.cqes + p.cq_entries * r->cqe_size;
	if (p.features & IORING_FEAT_SINGLE_MMAP)
		sq_len = cq_len = sq_len > cq_len ? sq_len : cq_len;
	sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
		  IORING_OFF_SQ_RING);
	if (sq == MAP_FAILED)
		return -errno;
	cq = sq;
	if (!(p.features & IORING_FEAT_SINGLE_MMAP)) {
		cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
			  IORING_OFF_CQ_RING);
		if (cq == MAP_FAILED)
			return -errno;
	}
	r->sqes = mmap(NULL, p.sq_entries * r->sqe_size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (r->sqes == MAP_FAILED)
		return -errno;
	r->sq_head = (void *)(sq + p.sq_off.head);
	r->sq_tail = (void *)(sq + p.sq_off.tail);
	r->sq_mask = (void *)(sq + p.sq_off.ring_mask);
	r->sq_array = (void *)(sq + p.sq_off.array);
	r->cq_head = (void *)(cq + p.cq_off.head);
	r->cq_tail = (void *)(cq + p.cq_off.tail);
	r->cq_mask = (void *)(cq + p.cq_off.ring_mask);
	r->cqes = cq + p.cq_off.cqes;
	return 0;
}

static void ring_exit(struct ring *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
}

/* Queues one URING_CMD (not yet submitted); user_data tags it. */
static void ring_queue(struct ring *r, int fd, unsigned int cmd_op, const struct nvme_uring_cmd *c,
		       unsigned int cmd_flags, uint64_t user_data)
{
	unsigned int tail = *r->sq_tail, idx = tail & *r->sq_mask;
	struct io_uring_sqe *sqe = (void *)(r->sqes + idx * r->sqe_size);

	memset(sqe, 0, r->sqe_size);
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = fd;
	sqe->cmd_op = cmd_op;
	sqe->uring_cmd_flags = cmd_flags;
	sqe->user_data = user_data;
	/* A 64-byte SQE has room for 16 bytes of command only. */
	memcpy(sqe->cmd, c, r->sqe_size == 128 ? sizeof(*c) : 16);
	r->sq_array[idx] = idx;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
}

/* Submits what is queued and waits for @n completions; returns io_uring_enter's result. */
static int ring_submit(struct ring *r, unsigned int n)
{
	unsigned int queued = *r->sq_tail - *r->sq_head;
	int ret = syscall(__NR_io_uring_enter, r->fd, queued, n, IORING_ENTER_GETEVENTS, NULL, 0);

	return ret < 0 ? -errno : ret;
}

/* Takes one completion: its user_data, res and (big CQE) first extra word. */
static int ring_reap(struct ring *r, uint64_t *user_data, int32_t *res, uint64_t *res2)
{
	unsigned int head = *r->cq_head;
	struct io_uring_cqe *cqe;

	if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
		return -EAGAIN;
	cqe = (void *)(r->cqes + (head & *r->cq_mask) * r->cqe_size);
	*user_data = cqe->user_data;
	*res = cqe->res;
	*res2 = r->cqe_size == 32 ? cqe->big_cqe[0] : 0;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return 0;
}

/* Extra waits the last ring_cmd needed (a polled ring's wait may end early). */
static int extra_waits;

/* One command, waited for: its res (and res2). */
static int ring_cmd(struct ring *r, int fd, unsigned int cmd_op, const struct nvme_uring_cmd *c,
		    unsigned int cmd_flags, uint64_t *res2)
{
	uint64_t ud, dummy;
	int32_t res;
	int ret;

	int tries;

	ring_queue(r, fd, cmd_op, c, cmd_flags, 0x5eed);
	extra_waits = 0;
	ret = ring_submit(r, 1);
	if (ret < 0)
		return ret;
	/* A polled ring's wait may end early (the task must reschedule): wait again. */
	for (tries = 0; ring_reap(r, &ud, &res, res2 ? res2 : &dummy); tries++, extra_waits = tries) {
		if (tries == 100000)
			return -ENODATA;
		ret = syscall(__NR_io_uring_enter, r->fd, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0);
		if (ret < 0)
			return -errno;
	}
	return res;
}

/* io_uring's worker threads (iou-wrk-*) of this process: commands it could not issue inline. */
static int iowq_workers(void)
{
	char path[300], comm[32];
	struct dirent *d;
	int n = 0;
	DIR *dir = opendir("/proc/self/task");
	FILE *f;

	if (!dir)
		return -errno;
	while ((d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strncmp(comm, "iou-wrk-", 8))
			n++;
		fclose(f);
	}
	closedir(dir);
	return n;
}

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

#define CASE(name, want, got) do {                                                        \
	int _w = (want), _g = (got);                                                      \
	char _a[48], _b[48];                                                              \
	fprintf(stderr, "# case %s: %s\n", name, fmt(_g, _a, sizeof(_a)));                \
	EXPECT_EQ(_w, _g) TH_LOG("case %s: got %s, want %s", name, fmt(_g, _a, sizeof(_a)), \
				 fmt(_w, _b, sizeof(_b)));                                 \
} while (0)

FIXTURE(ng)
{
	const char *path, *ctrl_path, *blk_path;
	int fd, ctrl, blk;
	unsigned int nsid, lbs;
	uint64_t area;          /* first LBA of the test area */
	size_t len;             /* its length in bytes */
	size_t max;             /* the largest transfer the node takes (the disk's limit) */
	unsigned char *buf, *buf2; /* len bytes each, page aligned */
	void *gone;             /* an inaccessible page */
	struct ring r;
};

static struct nvme_uring_cmd rw(FIXTURE_DATA(ng) *self, unsigned char op, void *addr,
				unsigned int blocks, uint64_t lba)
{
	struct nvme_uring_cmd c = {
		.opcode = op, .nsid = self->nsid, .addr = (uintptr_t)addr,
		.data_len = blocks * self->lbs, .cdw10 = (uint32_t)lba,
		.cdw11 = (uint32_t)(lba >> 32), .cdw12 = blocks - 1,
	};
	return c;
}

static void fill(unsigned char *p, size_t n, unsigned int seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		seed = seed * 1103515245 + 12345;
		p[i] = seed >> 16;
	}
}

/* The block device's view of the test area, into @p. */
static int blk_read(FIXTURE_DATA(ng) *self, void *p, size_t n, uint64_t lba)
{
	return pread(self->blk, p, n, lba * self->lbs) == (ssize_t)n ? 0 : -1;
}

static int blk_write(FIXTURE_DATA(ng) *self, const void *p, size_t n, uint64_t lba)
{
	return pwrite(self->blk, p, n, lba * self->lbs) == (ssize_t)n ? 0 : -1;
}

/* The block device's max_hw_sectors_kb in bytes, whole blocks, at most the test area. */
static size_t max_transfer(const char *blk, unsigned int lbs)
{
	const char *name = strrchr(blk, '/');
	char path[256];
	unsigned long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/block/%s/queue/max_hw_sectors_kb",
		 name ? name + 1 : blk);
	f = fopen(path, "r");
	if (!f || fscanf(f, "%lu", &kb) != 1)
		kb = 0;
	if (f)
		fclose(f);
	kb *= 1024;
	if (kb > (size_t)AREA_BLOCKS * lbs)
		kb = (size_t)AREA_BLOCKS * lbs;
	return kb / lbs * lbs;
}

/* The test area moved with @op in commands of at most the transfer limit: the first
 * nonzero res, or 0. */
static int area_cmd(FIXTURE_DATA(ng) *self, unsigned char op, unsigned char *buf);

FIXTURE_SETUP(ng)
{
	struct nvme_admin_cmd id;
	unsigned char *ns;
	uint64_t nsze;
	struct stat st;

	orion = getenv("NVME_DRIVER") && !strcmp(getenv("NVME_DRIVER"), "orion_nvme");
	self->r.fd = -1;
	self->path = getenv("NVME_NODE");
	self->ctrl_path = getenv("NVME_CTRL");
	self->blk_path = getenv("NVME_BLOCK");
	if (!self->path || !self->ctrl_path || !self->blk_path)
		SKIP(return, "NVME_NODE, NVME_CTRL and NVME_BLOCK must name the nodes");
	self->fd = open(self->path, O_RDWR);
	ASSERT_LE(0, self->fd) TH_LOG("open %s: %s", self->path, strerror(errno));
	ASSERT_EQ(0, fstat(self->fd, &st));
	ASSERT_TRUE(S_ISCHR(st.st_mode)) TH_LOG("%s is not a character device", self->path);
	self->ctrl = open(self->ctrl_path, O_RDWR);
	ASSERT_LE(0, self->ctrl) TH_LOG("open %s: %s", self->ctrl_path, strerror(errno));
	self->blk = open(self->blk_path, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->blk) TH_LOG("open %s: %s", self->blk_path, strerror(errno));
	self->nsid = ioctl(self->fd, NVME_IOCTL_ID);
	ASSERT_LT(0, (int)self->nsid);
	self->buf = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
	/* Inaccessible rather than unmapped: an unmapped hole could be reused by a later mapping
	 * (the rings'), and then it would not fault. */
	self->gone = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->gone);
	/* Identify Namespace through the generic node: LBA size and NSZE. */
	id = (struct nvme_admin_cmd){ .opcode = ADM_IDENTIFY, .nsid = self->nsid,
		.addr = (uintptr_t)self->buf, .data_len = 4096, .cdw10 = CNS_NS };
	ASSERT_EQ(0, xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &id));
	ns = self->buf;
	self->lbs = 1u << ns[128 + 4 * (ns[26] & 0xf) + 2];
	memcpy(&nsze, ns, 8);
	ASSERT_LE(512u, self->lbs);
	ASSERT_LT((uint64_t)AREA_BLOCKS + 256, nsze);
	self->area = nsze - 256;
	self->len = AREA_BLOCKS * self->lbs;
	self->max = max_transfer(self->blk_path, self->lbs);
	ASSERT_LE(self->lbs, self->max);
	self->buf2 = self->buf + (2 << 20);
	ASSERT_EQ(0, ring_init(&self->r, 64, IORING_SETUP_SQE128 | IORING_SETUP_CQE32));
}

FIXTURE_TEARDOWN(ng)
{
	ring_exit(&self->r);
	if (self->fd >= 0)
		close(self->fd);
}

static int area_cmd(FIXTURE_DATA(ng) *self, unsigned char op, unsigned char *buf)
{
	unsigned int per = self->max / self->lbs, done, n;
	struct nvme_uring_cmd c;
	int r;

	for (done = 0; done < AREA_BLOCKS; done += n) {
		n = AREA_BLOCKS - done < per ? AREA_BLOCKS - done : per;
		c = rw(self, op, buf + (size_t)done * self->lbs, n, self->area + done);
		r = ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL);
		if (r)
			return r;
	}
	return 0;
}

/* Data written through the block device reads back through io_uring, and the other way. */
TEST_F(ng, read_write_against_block_device)
{
	struct nvme_uring_cmd c;
	uint64_t res2 = 1;

	fill(self->buf2, self->len, 1);
	ASSERT_EQ(0, blk_write(self, self->buf2, self->len, self->area));
	memset(self->buf, 0, self->len);
	c = rw(self, IO_READ, self->buf, self->max / self->lbs, self->area);
	CASE("URING_CMD_IO read of the largest transfer", 0,
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, &res2));
	EXPECT_EQ(0, res2);
	CASE("URING_CMD_IO reads of 64 blocks", 0, area_cmd(self, IO_READ, self->buf));
	EXPECT_EQ(0, memcmp(self->buf, self->buf2, self->len)) TH_LOG("read data differs");
	fill(self->buf, self->len, 2);
	CASE("URING_CMD_IO writes of 64 blocks", 0, area_cmd(self, IO_WRITE, self->buf));
	ASSERT_EQ(0, blk_read(self, self->buf2, self->len, self->area));
	EXPECT_EQ(0, memcmp(self->buf, self->buf2, self->len)) TH_LOG("block device differs");
	/* One block at an odd place in memory (not page aligned). */
	c = rw(self, IO_READ, self->buf2 + 3 * 1024 + 4, 1, self->area + 5);
	CASE("URING_CMD_IO read into an unaligned buffer", 0,
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	EXPECT_EQ(0, memcmp(self->buf + 5 * self->lbs, self->buf2 + 3 * 1024 + 4, self->lbs));
}

/* A polled ring (IORING_SETUP_IOPOLL): commands complete there too (interrupt-driven when
 * the node has no polling hook or the controller no poll queue). */
TEST_F(ng, iopoll_ring)
{
	struct nvme_uring_cmd c;
	struct ring polled;

	ASSERT_EQ(0, ring_init(&polled, 8,
			       IORING_SETUP_IOPOLL | IORING_SETUP_SQE128 | IORING_SETUP_CQE32));
	fill(self->buf2, self->lbs, 6);
	ASSERT_EQ(0, blk_write(self, self->buf2, self->lbs, self->area + 1));
	memset(self->buf, 0, self->lbs);
	c = rw(self, IO_READ, self->buf, 1, self->area + 1);
	CASE("URING_CMD_IO read on an IOPOLL ring", 0,
	     ring_cmd(&polled, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	fprintf(stderr, "# iopoll: completion after %d extra waits\n", extra_waits);
	EXPECT_EQ(0, memcmp(self->buf, self->buf2, self->lbs));
	ring_exit(&polled);
}

/* Many commands in flight at once, completed out of order as the device likes. */
TEST_F(ng, many_in_flight)
{
	struct nvme_uring_cmd c;
	unsigned int i, done = 0, bad = 0;
	uint64_t ud, res2;
	int32_t res;

	fill(self->buf2, self->len, 3);
	ASSERT_EQ(0, blk_write(self, self->buf2, self->len, self->area));
	memset(self->buf, 0, self->len);
	/* 2 blocks each (1 where the transfer limit is one block). */
	unsigned int per = self->max >= 2 * self->lbs ? 2 : 1;

	for (i = 0; i < 32; i++) {
		c = rw(self, IO_READ, self->buf + i * per * self->lbs, per, self->area + per * i);
		ring_queue(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, i);
	}
	ASSERT_LE(0, ring_submit(&self->r, 32));
	while (done < 32 && !ring_reap(&self->r, &ud, &res, &res2)) {
		done++;
		bad += res != 0;
	}
	while (done < 32 && ring_submit(&self->r, 32 - done) >= 0) {
		while (done < 32 && !ring_reap(&self->r, &ud, &res, &res2)) {
			done++;
			bad += res != 0;
		}
	}
	CASE("32 reads in flight: failed ones", 0, (int)bad);
	/* Issued without blocking: io_uring never had to hand one to a worker thread. */
	CASE("32 reads in flight: io-wq workers needed", 0, iowq_workers());
	EXPECT_EQ(32, done);
	EXPECT_EQ(0, memcmp(self->buf, self->buf2, 32 * per * self->lbs)) TH_LOG("read data differs");
}

/*
 * One vectored layout, both ways through io_uring (IO_VEC) and through the IO64_CMD_VEC ioctl
 * (on the generic node and on the block device), checked against the block device.
 */
static void vec_roundtrip(struct __test_metadata *_metadata, FIXTURE_DATA(ng) *self,
			  struct iovec *v, unsigned int nv, size_t n, const char *layout)
{
	unsigned int blocks = n / self->lbs, i;
	unsigned char *want = self->buf2, *got = self->buf2 + (1 << 20);
	struct nvme_passthru_cmd64 p;
	struct nvme_uring_cmd c;
	char name[128];
	size_t off;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		/* Write: the pieces hold consecutive parts of the pattern. */
		fill(want, n, 4 + pass);
		for (i = 0, off = 0; i < nv; off += v[i].iov_len, i++)
			memcpy(v[i].iov_base, want + off, v[i].iov_len);
		if (pass == 0) {
			c = rw(self, IO_WRITE, v, blocks, self->area);
			c.data_len = nv;
			snprintf(name, sizeof(name), "URING_CMD_IO_VEC write, %s", layout);
			CASE(name, 0, ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO_VEC, &c, 0, NULL));
		} else {
			p = (struct nvme_passthru_cmd64){ .opcode = IO_WRITE, .nsid = self->nsid,
				.addr = (uintptr_t)v, .vec_cnt = nv, .cdw10 = (uint32_t)self->area,
				.cdw11 = (uint32_t)(self->area >> 32), .cdw12 = blocks - 1 };
			snprintf(name, sizeof(name), "IO64_CMD_VEC write on the generic node, %s", layout);
			CASE(name, 0, xioctl(self->fd, NVME_IOCTL_IO64_CMD_VEC, &p));
		}
		ASSERT_EQ(0, blk_read(self, got, n, self->area));
		EXPECT_EQ(0, memcmp(want, got, n)) TH_LOG("%s: the block device differs", name);
		/* Read back into the same pieces, cleared first. */
		for (i = 0; i < nv; i++)
			memset(v[i].iov_base, 0, v[i].iov_len);
		if (pass == 0) {
			c = rw(self, IO_READ, v, blocks, self->area);
			c.data_len = nv;
			snprintf(name, sizeof(name), "URING_CMD_IO_VEC read, %s", layout);
			CASE(name, 0, ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO_VEC, &c, 0, NULL));
		} else {
			p.opcode = IO_READ;
			snprintf(name, sizeof(name), "IO64_CMD_VEC read on the block device, %s", layout);
			CASE(name, 0, xioctl(self->blk, NVME_IOCTL_IO64_CMD_VEC, &p));
		}
		for (i = 0, off = 0; i < nv; off += v[i].iov_len, i++)
			EXPECT_EQ(0, memcmp(v[i].iov_base, want + off, v[i].iov_len))
				TH_LOG("%s: piece %u differs", name, i);
	}
}

/* Vectored: io_uring IO_VEC and the IO64_CMD_VEC ioctl, with uneven pieces. */
TEST_F(ng, vectored)
{
	struct iovec v[3];
	struct nvme_uring_cmd c;
	struct nvme_passthru_cmd64 p;
	size_t n = self->max < 16384 ? self->max : 16384;
	unsigned int blocks = n / self->lbs;
	struct iovec many[1025];
	unsigned int i;

	ASSERT_LE(8192, n) TH_LOG("a transfer limit of %zu bytes is too small for the pieces", n);
	/* Pieces joined at page boundaries (3584 bytes ending a page, whole pages, 512 bytes
	 * starting one): the C driver maps these directly. */
	v[0] = (struct iovec){ self->buf + 512, 3584 };
	v[1] = (struct iovec){ self->buf + 8192, n - 4096 };
	v[2] = (struct iovec){ self->buf + (1 << 20), 512 };
	vec_roundtrip(_metadata, self, v, 3, n, "3 pieces joined at pages");
	/* Pieces of 1000, n - 1600 and 600 bytes, only the first starting on a page: the C
	 * driver copies these, and with a transfer limit under 16 KiB refuses them (EINVAL). */
	if (n >= 16384) {
		v[0] = (struct iovec){ self->buf, 1000 };
		v[1] = (struct iovec){ self->buf + 8192 + 12, n - 1600 };
		v[2] = (struct iovec){ self->buf + (1 << 20) + 40, 600 };
		vec_roundtrip(_metadata, self, v, 3, n, "3 uneven pieces");
	}
	v[0] = (struct iovec){ self->buf + 512, 3584 };
	v[1] = (struct iovec){ self->buf + 8192, n - 4096 };
	v[2] = (struct iovec){ self->buf + (1 << 20), 512 };
	p = (struct nvme_passthru_cmd64){ .opcode = IO_READ, .nsid = self->nsid,
		.addr = (uintptr_t)v, .vec_cnt = 3, .cdw10 = (uint32_t)self->area,
		.cdw11 = (uint32_t)(self->area >> 32), .cdw12 = blocks - 1 };

	/* Malformed vectors. */
	p.vec_cnt = 1025;
	for (i = 0; i < 1025; i++)
		many[i] = (struct iovec){ self->buf, 4 };
	p.addr = (uintptr_t)many;
	CASE("IO64_CMD_VEC with 1025 pieces (UIO_MAXIOV is 1024)", -EINVAL,
	     xioctl(self->fd, NVME_IOCTL_IO64_CMD_VEC, &p));
	p.vec_cnt = 3;
	p.addr = (uintptr_t)self->gone;
	CASE("IO64_CMD_VEC iovec array inaccessible", -EFAULT,
	     xioctl(self->fd, NVME_IOCTL_IO64_CMD_VEC, &p));
	p.addr = (uintptr_t)v;
	v[1].iov_base = self->gone;
	CASE("IO64_CMD_VEC read into an inaccessible piece", -EFAULT,
	     xioctl(self->fd, NVME_IOCTL_IO64_CMD_VEC, &p));
	v[1].iov_base = self->buf + 8192;
	v[1].iov_len = HUGE_LEN;
	CASE("IO64_CMD_VEC pieces beyond any transfer limit", -EINVAL,
	     xioctl(self->fd, NVME_IOCTL_IO64_CMD_VEC, &p));
	v[1].iov_len = n - 4096;
	c = rw(self, IO_READ, self->gone, blocks, self->area);
	c.data_len = 3;
	CASE("URING_CMD_IO_VEC iovec array inaccessible", -EFAULT,
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO_VEC, &c, 0, NULL));
	c.addr = (uintptr_t)many;
	c.data_len = 1025;
	CASE("URING_CMD_IO_VEC with 1025 pieces", -EINVAL,
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO_VEC, &c, 0, NULL));
	/* No pieces at all: a command without data (Flush). */
	p = (struct nvme_passthru_cmd64){ .opcode = IO_FLUSH, .nsid = self->nsid,
		.addr = (uintptr_t)v, .vec_cnt = 0 };
	CASE("IO64_CMD_VEC flush with 0 pieces", 0, xioctl(self->fd, NVME_IOCTL_IO64_CMD_VEC, &p));
	CASE("IO64_CMD_VEC on the controller node", -ENOTTY,
	     xioctl(self->ctrl, NVME_IOCTL_IO64_CMD_VEC, &p));
}

/* Malformed io_uring commands: the C driver's answers. */
TEST_F(ng, malformed)
{
	struct nvme_uring_cmd c;
	struct ring small;
	void *big;

	/* A ring without 128-byte SQEs and 32-byte CQEs cannot carry the command. */
	ASSERT_EQ(0, ring_init(&small, 4, 0));
	c = rw(self, IO_READ, self->buf, 1, self->area);
	CASE("URING_CMD_IO on a ring without SQE128/CQE32", -EOPNOTSUPP,
	     ring_cmd(&small, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	ring_exit(&small);
	ASSERT_EQ(0, ring_init(&small, 4, IORING_SETUP_SQE128));
	CASE("URING_CMD_IO on a ring without CQE32", -EOPNOTSUPP,
	     ring_cmd(&small, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	ring_exit(&small);

	CASE("URING_CMD_ADMIN on the generic node", -ENOTTY,
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_ADMIN, &c, 0, NULL));
	CASE("unknown cmd_op _IOWR('N', 0x84, ...)", -ENOTTY,
	     ring_cmd(&self->r, self->fd, _IOWR('N', 0x84, struct nvme_uring_cmd), &c, 0, NULL));
	CASE("NVME_IOCTL_IO_CMD number as cmd_op", -ENOTTY,
	     ring_cmd(&self->r, self->fd, NVME_IOCTL_IO_CMD, &c, 0, NULL));
	CASE("URING_CMD_IO on the controller node", -ENOTTY,
	     ring_cmd(&self->r, self->ctrl, NVME_URING_CMD_IO, &c, 0, NULL));

	c = rw(self, IO_READ, self->buf, 1, self->area);
	c.flags = 1;
	CASE("flags 0x1", -EINVAL, ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	c = rw(self, IO_READ, self->buf, 1, self->area);
	c.nsid = self->nsid + 1;
	CASE("nsid of another namespace", -EINVAL,
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	c.nsid = 0xffffffff;
	CASE("nsid 0xffffffff", -EINVAL, ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	/* DELIBERATE: reserved fields must be zero (the C driver ignores them). */
	c = rw(self, IO_READ, self->buf, 1, self->area);
	c.rsvd1 = 0xffff;
	CASE("rsvd1 0xffff (ignored by C)", DELIBERATE(0, -EINVAL),
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	c = rw(self, IO_READ, self->buf, 1, self->area);
	c.rsvd2 = 1;
	CASE("rsvd2 1 (ignored by C)", DELIBERATE(0, -EINVAL),
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	/* DELIBERATE: 49 days is absurd; orion_nvme takes at most an hour. */
	c = rw(self, IO_READ, self->buf, 1, self->area);
	c.timeout_ms = 0xffffffff;
	CASE("timeout_ms 0xffffffff", DELIBERATE(0, -EINVAL),
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	c = rw(self, IO_READ, self->gone, 1, self->area);
	CASE("read into an inaccessible page", -EFAULT,
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	c = rw(self, IO_WRITE, self->gone, 1, self->area);
	CASE("write from an inaccessible page", -EFAULT,
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	c = rw(self, IO_READ, (void *)0xffffffff81000000ul, 1, self->area);
	CASE("read into a kernel address", -EFAULT,
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	c = rw(self, IO_WRITE, NULL, 1, self->area);
	CASE("write with data_len but addr 0", -EFAULT,
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	big = mmap(NULL, HUGE_LEN, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, big);
	c = rw(self, IO_READ, big, 1, 0);
	c.data_len = HUGE_LEN;
	c.cdw12 = HUGE_LEN / self->lbs - 1;
	CASE("read of 16 MiB (over any transfer limit)", -EINVAL,
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	c = rw(self, IO_READ, self->buf, 1, self->area);
	c.metadata = (uintptr_t)big;
	c.metadata_len = 8;
	CASE("metadata pointer and length (no integrity)", -EINVAL,
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	munmap(big, HUGE_LEN);
	/* DELIBERATE: unlisted vendor-specific opcodes are refused (vendor_io_opcodes). */
	c = (struct nvme_uring_cmd){ .opcode = 0x81, .nsid = self->nsid };
	CASE("io opcode 0x81 (root)", DELIBERATE(ST_INVALID_OPCODE, -EPERM),
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	/* An NVMe error status comes back positive in res: Read beyond the namespace. */
	c = rw(self, IO_READ, self->buf, 1, ~0ull >> 1);
	CASE("read of an LBA beyond the namespace (LBA Out of Range, 0x80 with DNR)", 0x4080,
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
}

/* Admin commands through io_uring on the controller node: the same bytes and result as the ioctl. */
TEST_F(ng, admin_on_controller_node)
{
	struct nvme_uring_cmd c;
	struct nvme_admin_cmd a;
	struct iovec v[2];
	uint64_t res2 = 0;

	a = (struct nvme_admin_cmd){ .opcode = ADM_IDENTIFY, .addr = (uintptr_t)self->buf2,
		.data_len = 4096, .cdw10 = CNS_CTRL };
	ASSERT_EQ(0, xioctl(self->ctrl, NVME_IOCTL_ADMIN_CMD, &a));
	memset(self->buf, 0, 4096);
	c = (struct nvme_uring_cmd){ .opcode = ADM_IDENTIFY, .addr = (uintptr_t)self->buf,
		.data_len = 4096, .cdw10 = CNS_CTRL };
	CASE("URING_CMD_ADMIN Identify Controller", 0,
	     ring_cmd(&self->r, self->ctrl, NVME_URING_CMD_ADMIN, &c, 0, NULL));
	EXPECT_EQ(0, memcmp(self->buf, self->buf2, 4096)) TH_LOG("Identify data differs from the ioctl's");
	/* And from what `nvme id-ctrl -b` printed (NVME_IDCTRL: the file the runner saved). */
	if (getenv("NVME_IDCTRL")) {
		FILE *f = fopen(getenv("NVME_IDCTRL"), "r");

		ASSERT_NE(NULL, f);
		ASSERT_EQ(4096u, fread(self->buf2 + 4096, 1, 4096, f));
		fclose(f);
		EXPECT_EQ(0, memcmp(self->buf, self->buf2 + 4096, 4096))
			TH_LOG("Identify data differs from nvme id-ctrl's");
	}
	memset(self->buf, 0, 8192);
	v[0] = (struct iovec){ self->buf + 7, 1000 };
	v[1] = (struct iovec){ self->buf + 4096 + 3, 3096 };
	c.addr = (uintptr_t)v;
	c.data_len = 2;
	CASE("URING_CMD_ADMIN_VEC Identify Controller, 2 pieces", 0,
	     ring_cmd(&self->r, self->ctrl, NVME_URING_CMD_ADMIN_VEC, &c, 0, NULL));
	EXPECT_EQ(0, memcmp(v[0].iov_base, self->buf2, 1000));
	EXPECT_EQ(0, memcmp(v[1].iov_base, self->buf2 + 1000, 3096));
	/* The result dword in res2: Get Features Number of Queues and Temperature Threshold
	 * (nonzero: QEMU's default is 343 K). */
	a = (struct nvme_admin_cmd){ .opcode = ADM_GET_FEATURES, .cdw10 = FID_NUM_QUEUES };
	ASSERT_EQ(0, xioctl(self->ctrl, NVME_IOCTL_ADMIN_CMD, &a));
	c = (struct nvme_uring_cmd){ .opcode = ADM_GET_FEATURES, .cdw10 = FID_NUM_QUEUES };
	CASE("URING_CMD_ADMIN Get Features Number of Queues", 0,
	     ring_cmd(&self->r, self->ctrl, NVME_URING_CMD_ADMIN, &c, 0, &res2));
	EXPECT_EQ(a.result, res2) TH_LOG("res2 0x%llx, ioctl result 0x%x", (unsigned long long)res2,
					 a.result);
	a = (struct nvme_admin_cmd){ .opcode = ADM_GET_FEATURES, .cdw10 = FID_TEMP_THRESH };
	ASSERT_EQ(0, xioctl(self->ctrl, NVME_IOCTL_ADMIN_CMD, &a));
	c = (struct nvme_uring_cmd){ .opcode = ADM_GET_FEATURES, .cdw10 = FID_TEMP_THRESH };
	res2 = 0;
	CASE("URING_CMD_ADMIN Get Features Temperature Threshold", 0,
	     ring_cmd(&self->r, self->ctrl, NVME_URING_CMD_ADMIN, &c, 0, &res2));
	EXPECT_NE(0, a.result);
	EXPECT_EQ(a.result, res2) TH_LOG("res2 0x%llx, ioctl result 0x%x", (unsigned long long)res2,
					 a.result);
	/* An error status, as the ioctl returns it. */
	c = (struct nvme_uring_cmd){ .opcode = ADM_IDENTIFY, .addr = (uintptr_t)self->buf,
		.data_len = 4096, .cdw10 = 0xee };
	CASE("URING_CMD_ADMIN Identify CNS 0xee (Invalid Field)", ST_INVALID_FIELD,
	     ring_cmd(&self->r, self->ctrl, NVME_URING_CMD_ADMIN, &c, 0, NULL));
	c = (struct nvme_uring_cmd){ .opcode = ADM_IDENTIFY, .addr = (uintptr_t)self->gone,
		.data_len = 4096, .cdw10 = CNS_CTRL };
	CASE("URING_CMD_ADMIN Identify into an inaccessible page", -EFAULT,
	     ring_cmd(&self->r, self->ctrl, NVME_URING_CMD_ADMIN, &c, 0, NULL));
	/* DELIBERATE: as the ioctls, unlisted vendor-specific opcodes are refused. */
	c = (struct nvme_uring_cmd){ .opcode = 0xc1 };
	CASE("URING_CMD_ADMIN opcode 0xc1 (root)", DELIBERATE(ST_INVALID_OPCODE, -EPERM),
	     ring_cmd(&self->r, self->ctrl, NVME_URING_CMD_ADMIN, &c, 0, NULL));
}

/* Unprivileged: a child as nobody on fresh opens; the results come back in shared memory. */
enum {
	U_READ_RO, U_WRITE_RO, U_FLUSH_RO, U_READ_RW, U_WRITE_RW, U_VEC_WRITE_RO, U_VEC_READ_RO,
	U_ADMIN_ID, U_ADMIN_LOG, U_IOCTL_VEC_WRITE_RO, U_N
};

static void unprivileged(FIXTURE_DATA(ng) *self, int *r)
{
	struct nvme_uring_cmd c;
	struct nvme_passthru_cmd64 p;
	struct iovec v = { self->buf, self->lbs };
	int ro, rw_, ctrl;

	if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
		_exit(2);
	/* A ring of its own, so every command is nobody's. */
	ring_exit(&self->r);
	if (ring_init(&self->r, 8, IORING_SETUP_SQE128 | IORING_SETUP_CQE32))
		_exit(4);
	ro = open(self->path, O_RDONLY);
	rw_ = open(self->path, O_RDWR);
	ctrl = open(self->ctrl_path, O_RDONLY);
	if (ro < 0 || rw_ < 0 || ctrl < 0)
		_exit(3);
	c = rw(self, IO_READ, self->buf, 1, self->area);
	r[U_READ_RO] = ring_cmd(&self->r, ro, NVME_URING_CMD_IO, &c, 0, NULL);
	/* The writes put back what was just read: the block keeps its contents. */
	c = rw(self, IO_WRITE, self->buf, 1, self->area);
	r[U_WRITE_RO] = ring_cmd(&self->r, ro, NVME_URING_CMD_IO, &c, 0, NULL);
	c = (struct nvme_uring_cmd){ .opcode = IO_FLUSH, .nsid = self->nsid };
	r[U_FLUSH_RO] = ring_cmd(&self->r, ro, NVME_URING_CMD_IO, &c, 0, NULL);
	c = rw(self, IO_READ, self->buf, 1, self->area);
	r[U_READ_RW] = ring_cmd(&self->r, rw_, NVME_URING_CMD_IO, &c, 0, NULL);
	c = rw(self, IO_WRITE, self->buf, 1, self->area);
	r[U_WRITE_RW] = ring_cmd(&self->r, rw_, NVME_URING_CMD_IO, &c, 0, NULL);
	c = rw(self, IO_WRITE, &v, 1, self->area);
	c.data_len = 1;
	r[U_VEC_WRITE_RO] = ring_cmd(&self->r, ro, NVME_URING_CMD_IO_VEC, &c, 0, NULL);
	c.opcode = IO_READ;
	r[U_VEC_READ_RO] = ring_cmd(&self->r, ro, NVME_URING_CMD_IO_VEC, &c, 0, NULL);
	c = (struct nvme_uring_cmd){ .opcode = ADM_IDENTIFY, .addr = (uintptr_t)self->buf2,
		.data_len = 4096, .cdw10 = CNS_CTRL };
	r[U_ADMIN_ID] = ring_cmd(&self->r, ctrl, NVME_URING_CMD_ADMIN, &c, 0, NULL);
	c = (struct nvme_uring_cmd){ .opcode = ADM_GET_LOG_PAGE, .nsid = 0xffffffff,
		.addr = (uintptr_t)self->buf2, .data_len = 512,
		.cdw10 = LID_SMART | ((512 / 4 - 1) << 16) };
	r[U_ADMIN_LOG] = ring_cmd(&self->r, ctrl, NVME_URING_CMD_ADMIN, &c, 0, NULL);
	p = (struct nvme_passthru_cmd64){ .opcode = IO_WRITE, .nsid = self->nsid,
		.addr = (uintptr_t)&v, .vec_cnt = 1, .cdw10 = (uint32_t)self->area,
		.cdw11 = (uint32_t)(self->area >> 32) };
	r[U_IOCTL_VEC_WRITE_RO] = xioctl(ro, NVME_IOCTL_IO64_CMD_VEC, &p);
	_exit(0);
}

TEST_F(ng, unprivileged)
{
	int *r = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct stat st, cst;
	int status, i;
	pid_t pid;
	static const int want[U_N] = {
		[U_READ_RO] = 0, [U_WRITE_RO] = -EACCES,
		/* Flush changes logical blocks (LBCC in QEMU's effects log): needs FMODE_WRITE. */
		[U_FLUSH_RO] = -EACCES, [U_READ_RW] = 0, [U_WRITE_RW] = 0,
		[U_VEC_WRITE_RO] = -EACCES, [U_VEC_READ_RO] = 0,
		[U_ADMIN_ID] = 0, [U_ADMIN_LOG] = -EACCES, [U_IOCTL_VEC_WRITE_RO] = -EACCES,
	};
	static const char *const names[U_N] = {
		[U_READ_RO] = "nobody: URING_CMD_IO read (O_RDONLY)",
		[U_WRITE_RO] = "nobody: URING_CMD_IO write (O_RDONLY)",
		[U_FLUSH_RO] = "nobody: URING_CMD_IO flush (O_RDONLY)",
		[U_READ_RW] = "nobody: URING_CMD_IO read (O_RDWR)",
		[U_WRITE_RW] = "nobody: URING_CMD_IO write (O_RDWR)",
		[U_VEC_WRITE_RO] = "nobody: URING_CMD_IO_VEC write (O_RDONLY)",
		[U_VEC_READ_RO] = "nobody: URING_CMD_IO_VEC read (O_RDONLY)",
		[U_ADMIN_ID] = "nobody: URING_CMD_ADMIN Identify Controller",
		[U_ADMIN_LOG] = "nobody: URING_CMD_ADMIN Get Log Page SMART",
		[U_IOCTL_VEC_WRITE_RO] = "nobody: IO64_CMD_VEC write (O_RDONLY)",
	};

	ASSERT_NE(MAP_FAILED, r);
	ASSERT_EQ(0, stat(self->path, &st));
	ASSERT_EQ(0, stat(self->ctrl_path, &cst));
	if ((st.st_mode & 0666) != 0666 || (cst.st_mode & 0666) != 0666)
		SKIP(return, "%s and %s must be mode 0666 for the unprivileged cases", self->path,
		     self->ctrl_path);
	for (i = 0; i < U_N; i++)
		r[i] = -ENODATA;
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		unprivileged(self, r);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("nobody could not open the nodes (status 0x%x)", status);
	for (i = 0; i < U_N; i++)
		CASE(names[i], want[i], r[i]);
	munmap(r, 4096);
}

/*
 * Run alone (NVME_UNBIND=<PCI address of the node's controller>, -t held_across_unbind): the
 * controller is unbound while the generic, controller and block nodes are open; commands on
 * them then fail cleanly, and closing them afterwards is harmless.
 */
TEST_F(ng, held_across_unbind)
{
	const char *bdf = getenv("NVME_UNBIND");
	struct nvme_passthru_cmd64 p;
	struct nvme_admin_cmd a;
	struct nvme_uring_cmd c;
	char path[160];
	int fd;

	if (!bdf || !*bdf)
		SKIP(return, "NVME_UNBIND is not set (the controller to unbind)");
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
	fd = open(path, O_WRONLY);
	ASSERT_LE(0, fd) TH_LOG("open %s: %s", path, strerror(errno));
	ASSERT_EQ((ssize_t)strlen(bdf), write(fd, bdf, strlen(bdf)));
	close(fd);
	c = rw(self, IO_READ, self->buf, 1, self->area);
	CASE("after unbind: URING_CMD_IO read on the held generic node", -ENODEV,
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	p = (struct nvme_passthru_cmd64){ .opcode = IO_READ, .nsid = self->nsid,
		.addr = (uintptr_t)self->buf, .data_len = self->lbs,
		.cdw10 = (uint32_t)self->area, .cdw11 = (uint32_t)(self->area >> 32) };
	CASE("after unbind: IO64_CMD read on the held generic node", -ENODEV,
	     xioctl(self->fd, NVME_IOCTL_IO64_CMD, &p));
	a = (struct nvme_admin_cmd){ .opcode = ADM_IDENTIFY, .addr = (uintptr_t)self->buf,
		.data_len = 4096, .cdw10 = CNS_CTRL };
	CASE("after unbind: ADMIN_CMD on the held generic node", -ENODEV,
	     xioctl(self->fd, NVME_IOCTL_ADMIN_CMD, &a));
	c = (struct nvme_uring_cmd){ .opcode = ADM_IDENTIFY, .addr = (uintptr_t)self->buf,
		.data_len = 4096, .cdw10 = CNS_CTRL };
	CASE("after unbind: URING_CMD_ADMIN on the held controller node", -ENODEV,
	     ring_cmd(&self->r, self->ctrl, NVME_URING_CMD_ADMIN, &c, 0, NULL));
	CASE("after unbind: NVME_IOCTL_ID on the held generic node (the NSID)", (int)self->nsid,
	     xioctl(self->fd, NVME_IOCTL_ID, NULL));
}

/* Last: after everything above, the node still reads. */
TEST_F(ng, zz_not_wedged)
{
	unsigned int n = self->max / self->lbs < 8 ? self->max / self->lbs : 8;
	struct nvme_uring_cmd c = rw(self, IO_READ, self->buf, n, self->area);

	CASE("URING_CMD_IO read after the rest", 0,
	     ring_cmd(&self->r, self->fd, NVME_URING_CMD_IO, &c, 0, NULL));
	ASSERT_EQ(0, blk_read(self, self->buf2, n * self->lbs, self->area));
	EXPECT_EQ(0, memcmp(self->buf, self->buf2, n * self->lbs));
}

TEST_HARNESS_MAIN
