// SPDX-License-Identifier: GPL-2.0
/*
 * The io_uring command helpers orion_nvme's Rust code cannot reach through the kernel crate's
 * bindings: <linux/io_uring/cmd.h> is not among the headers they are generated from, so
 * struct io_uring_cmd is opaque there and the completion helpers are static inline or need
 * the command's layout. This file only forwards; its Rust side is
 * orion-compat/linux/bindings/uring.rs and every decision is made in
 * orion-compat/linux/mgmt/generic.rs.
 */
#include <linux/build_bug.h>
#include <linux/fs.h>
#include <linux/io_uring/cmd.h>
#include <linux/nvme_ioctl.h>
#include <linux/sched.h>

/* The values bindings/uring.rs and bindings/misc.rs name themselves; a change in the kernel
 * fails the build here. */
static_assert(IO_URING_F_NONBLOCK == (int)0x80000000);
static_assert(IO_URING_F_SQE128 == (1 << 8));
static_assert(IO_URING_F_CQE32 == (1 << 9));
static_assert(IORING_URING_CMD_FIXED == (1U << 0));
static_assert((__force unsigned int)FMODE_WRITE == (1U << 1));
/* The core's UringCmd (src/passthru.rs) is asserted to be 72 bytes too. */
static_assert(sizeof(struct nvme_uring_cmd) == 72);

/* What bindings/uring.rs needs of a command: keep in sync with its `Info`. */
struct orion_uring_info {
	struct file *file;
	u32 cmd_op;
	u32 flags;
};

/*
 * The driver's words in a command's private area: keep in sync with `Slot` in
 * bindings/uring.rs (a deferred command's state and the Rust function that finishes it).
 */
struct orion_uring_pdu {
	void *state;
	void *finish;
};

/* Called from bindings/uring.rs (declared there with the same signatures). */
void orion_uring_cmd_info(const struct io_uring_cmd *ioucmd, struct orion_uring_info *info);
void orion_uring_cmd_copy(const struct io_uring_cmd *ioucmd, struct nvme_uring_cmd *out);
struct orion_uring_pdu *orion_uring_cmd_pdu(struct io_uring_cmd *ioucmd);
void orion_uring_cmd_done32(struct io_uring_cmd *ioucmd, s32 ret, u64 res2,
			    unsigned int issue_flags);
void orion_uring_cmd_complete_in_task(struct io_uring_cmd *ioucmd);

void orion_uring_cmd_info(const struct io_uring_cmd *ioucmd, struct orion_uring_info *info)
{
	info->file = ioucmd->file;
	info->cmd_op = ioucmd->cmd_op;
	info->flags = ioucmd->flags;
}

/*
 * Copies the NVMe command out of a 128-byte SQE (the caller has checked IO_URING_F_SQE128).
 * The submission ring is shared with user space, so the copy is what gets checked and used.
 */
void orion_uring_cmd_copy(const struct io_uring_cmd *ioucmd, struct nvme_uring_cmd *out)
{
	memcpy(out, io_uring_sqe128_cmd(ioucmd->sqe, struct nvme_uring_cmd), sizeof(*out));
}

/* The driver's words in the command's private area (the rest of it is unused). */
struct orion_uring_pdu *orion_uring_cmd_pdu(struct io_uring_cmd *ioucmd)
{
	return io_uring_cmd_to_pdu(ioucmd, struct orion_uring_pdu);
}

/* Posts the completion: @ret in the CQE's res, @res2 in the big CQE's first extra word. */
void orion_uring_cmd_done32(struct io_uring_cmd *ioucmd, s32 ret, u64 res2,
			    unsigned int issue_flags)
{
	io_uring_cmd_done32(ioucmd, ret, res2, issue_flags);
}

/*
 * Implemented in bindings/uring.rs: finishes a command in task context and says how it ended.
 * @user_ok: the submitter's memory may be written (false when io_uring runs the work on the
 * submitter's behalf from a kernel thread, because the submitter is going away).
 */
void orion_nvme_uring_finish(struct io_uring_cmd *ioucmd, bool user_ok, s32 *ret, u64 *res2);

static void orion_uring_tw(struct io_tw_req tw_req, io_tw_token_t tw)
{
	struct io_uring_cmd *ioucmd = io_uring_cmd_from_tw(tw_req);
	s32 ret;
	u64 res2;

	orion_nvme_uring_finish(ioucmd, !tw.cancel && current->mm, &ret, &res2);
	io_uring_cmd_done32(ioucmd, ret, res2, IO_URING_CMD_TASK_WORK_ISSUE_FLAGS);
}

/* From the request's end (any context): finish @ioucmd in the submitter's task. */
void orion_uring_cmd_complete_in_task(struct io_uring_cmd *ioucmd)
{
	io_uring_cmd_do_in_task_lazy(ioucmd, orion_uring_tw);
}
