/* SPDX-License-Identifier: MIT */
/*
 * Description: a request mix found by `uring-conform explore` that breaks
 *		the rule "outstanding-after-drain".
 *
 * Seed 101, round 533 (`uring-conform explore --seed 101` regenerates it), found on
 * kernel 6.18.44-fc-v1045; setup sqpoll; shrunk from 18 to 1 steps, reproduced in 3 of 20 rounds (shrunk by hand: below the shrinker's 2 of 3).
 * Violation: timeout-multishot user_data 15 has no final CQE after the drain (every outstanding request canceled, writers closed, deadline passed; 1588 CQEs with IORING_CQE_F_MORE); 1 outstanding: timeout-multishot 15; all six drain cancels by user_data returned -ENOENT
 *
 * Program (user_data = step id + 1; link timeouts | 1<<40, the drain's
 * cancels | 1<<41 with their attempt number << 44):
 *   #14 timeout-multishot 1018us count=0
 * then the drain: every writer closed, every request without its final CQE
 * canceled by user_data, CQEs reaped until none is outstanding or the
 * deadline passes, the streams read out by hand, io_uring_queue_exit().
 *
 * Rules checked (xcheck below; the harness's oracle is
 * harness/checks/explore_oracle.cpp): one final CQE per request, only
 * multishot CQEs carry IORING_CQE_F_MORE (io_uring_multishot(7)); results
 * the request's man page allows; 0 bytes only after the writer closed;
 * a cancel returning 0 or a count canceled that many; a provided buffer
 * handed out only while provided; bytes written = bytes read per stream;
 * no CQE for an unknown user_data; nothing outstanding after the drain.
 *
 * Exit codes follow `git bisect run`: 0 no rule broke in any attempt,
 * 1 reproduced, 125 cannot test (io_uring or a feature refused), 129 bad
 * usage. Options: -n ATTEMPTS (100), -d SECONDS (20), -q, -h.
 *
 * Build: cc FILE.c -luring
 */
#define _GNU_SOURCE
/* The explore executor core, in C so that an emitted reproducer can carry it
 * verbatim (emit_c.cpp embeds this header and exec_core.c into the .c file it
 * writes): a program of steps runs on a fresh ring, every CQE, request and
 * provided buffer is recorded, and xcheck() applies the invariants a
 * standalone reproducer needs. The harness's own verdict comes from the C++
 * oracle (harness/checks/explore_oracle.h); xcheck() mirrors its rules. */
#ifndef UC_EXPLORE_EXEC_CORE_H
#define UC_EXPLORE_EXEC_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Program steps. Request steps queue SQEs; the others act from userspace and
 * submit what is queued first. Append only: the names are report keys. */
enum xop {
	XOP_NOP,
	XOP_WRITE,		/* write/send `len` bytes on stream `file` */
	XOP_READ,		/* read/recv up to `len` bytes from stream `file` */
	XOP_EVENTFD_READ,	/* read the eventfd's 8-byte counter */
	XOP_EVENTFD_SIGNAL,	/* eventfd_write(1) from userspace */
	XOP_POLL_MULTISHOT,	/* multishot POLLIN on file slot `file` */
	XOP_RECV_MULTISHOT,	/* multishot recv on the socket, provided buffers */
	XOP_TIMEOUT,		/* `usec`, completion count `count` */
	XOP_TIMEOUT_MULTISHOT,	/* `usec` period, `count` repeats (0: until canceled) */
	XOP_LINKED_READ,	/* read stream `file` linked to a `usec` link timeout */
	XOP_CANCEL,		/* key `key`: step `target`'s user_data, file slot `file`, or any */
	XOP_CLOSE_WRITER,	/* close the pipe's write end / shutdown(SHUT_WR) the socket */
	XOP_WAIT,		/* submit and wait for `len` CQEs, at most `usec` */
	XOP_SLEEP,		/* submit, then sleep `usec` */
	XOP_REFILL,		/* provide again every buffer the application got back */
	XOP_SELFTEST_GHOST,	/* self-test only: a NOP reusing step `target`'s user_data */
	XOP_COUNT
};

/* Streams: two pipes and an AF_UNIX stream socket pair. File slots: stream s
 * has reader 2s and writer 2s+1; slot 6 is the eventfd. */
enum { XS_PIPE0, XS_PIPE1, XS_SOCK, XS_COUNT };
enum { XF_EVENTFD = 2 * XS_COUNT, XF_COUNT };

enum xcancel_key { XK_USER_DATA, XK_FD, XK_FD_ALL, XK_ANY };
enum xsetup { XSETUP_NONE, XSETUP_COOP_TASKRUN, XSETUP_DEFER_TASKRUN, XSETUP_SQPOLL, XSETUP_COUNT };

/* What a request is, as recorded (a linked read gives two). */
enum xkind {
	XR_NOP, XR_WRITE, XR_READ, XR_EVENTFD_READ, XR_POLL_MULTISHOT, XR_RECV_MULTISHOT,
	XR_TIMEOUT, XR_TIMEOUT_MULTISHOT, XR_LINKED_READ, XR_LINK_TIMEOUT, XR_CANCEL
};

struct xstep {
	uint8_t op;	/* enum xop */
	uint8_t file;	/* stream (write, read, linked read, close) or file slot (poll, cancel by fd) */
	uint8_t key;	/* enum xcancel_key */
	uint8_t pad;
	uint32_t id;	/* unique in the program; user_data = id + 1 */
	uint32_t len;
	uint32_t usec;
	uint32_t count;
	uint32_t target;	/* a step id */
};

struct xprogram {
	uint8_t setup;	/* enum xsetup */
	uint32_t nsteps;
	const struct xstep *steps;
	uint32_t drain_ms;	/* the final drain's deadline */
};

/* user_data layout: id + 1 in the low 32 bits, a tag above; the drain's
 * cancels also carry their attempt number at XUD_ATTEMPT_SHIFT. */
#define XUD_LINK_TIMEOUT (1ULL << 40)
#define XUD_DRAIN (1ULL << 41)
#define XUD_ATTEMPT_SHIFT 44
#define XDRAIN_ATTEMPTS 6

#define XMAX_STEPS 256
#define XMAX_REQ (4 * XMAX_STEPS)
#define XMAX_CQE 8192
#define XMAX_PROVIDE 2048
#define XBUF_COUNT 16
#define XBUF_LEN 64
#define XBGID 7

struct xreq {
	uint64_t ud;
	uint8_t kind;	/* enum xkind */
	uint8_t file;	/* file slot, 0xff none */
	uint8_t key;	/* cancel key */
	uint8_t fd_closed;	/* its file was closed before it was prepared */
	uint32_t len;
	uint32_t count;
	uint64_t target_ud;	/* cancel by user_data */
	uint32_t final_seen;	/* executor's own bookkeeping: final CQE reaped */
};

struct xcqe {
	uint64_t ud;
	int32_t res;
	uint32_t flags;
};

struct xprovide {
	uint32_t at_cqe;	/* provided before CQE number at_cqe was reaped */
	uint16_t bid;
};

struct xround {
	uint32_t nreq;
	struct xreq req[XMAX_REQ];
	uint32_t ncqe;
	uint32_t cqe_lost;	/* CQEs beyond XMAX_CQE (not recorded) */
	struct xcqe cqe[XMAX_CQE];
	uint32_t nprov;
	struct xprovide prov[XMAX_PROVIDE];
	int32_t closed_at[XS_COUNT];	/* CQE count when the writer closed, -1: never */
	uint64_t leftover[XS_COUNT];	/* bytes still in the stream after the drain */
	int drained;	/* every request ended within the drain deadline */
	char error[200];	/* why the round could not run */
};

/* Capabilities, each found by trying (the kernel refusing = absent). */
#define XCAP_COOP_TASKRUN (1u << 0)
#define XCAP_DEFER_TASKRUN (1u << 1)
#define XCAP_SQPOLL (1u << 2)
#define XCAP_POLL_MULTISHOT (1u << 3)
#define XCAP_RECV_MULTISHOT (1u << 4)
#define XCAP_TIMEOUT_MULTISHOT (1u << 5)
#define XCAP_CANCEL_KEYS (1u << 6)	/* IORING_ASYNC_CANCEL_FD/ALL/ANY */

/* 0 and *caps, or -1 with why (io_uring unusable, base opcodes missing). */
int xprobe(unsigned *caps, char *why, size_t why_len);
/* What the program needs of xprobe's bits. */
unsigned xprogram_needs(const struct xprogram *prog);
/* Runs the program; 0 ran (round filled in), -1 could not (round->error). */
int xrun(const struct xprogram *prog, struct xround *round);
/* The first broken rule's id (and why), or NULL. */
const char *xcheck(const struct xround *round, char *why, size_t why_len);

const char *xop_name(unsigned op);
const char *xsetup_name(unsigned setup);

#ifdef __cplusplus
}
#endif

#endif

/* The explore executor core: see exec_core.h. Plain C and liburing only, as
 * it is pasted into emitted reproducers. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* include/uapi/linux/io_uring.h values newer than liburing 2.3. */
#ifndef IORING_TIMEOUT_MULTISHOT
#define IORING_TIMEOUT_MULTISHOT (1U << 6) /* Linux 6.4 */
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8) /* Linux 5.19 */
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12) /* Linux 6.0 */
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13) /* Linux 6.1 */
#endif

#define XRING_SQ 128
#define XRING_CQ 2048

static const char *const xop_names[XOP_COUNT] = {
	"nop", "write", "read", "eventfd-read", "eventfd-signal", "poll-multishot", "recv-multishot",
	"timeout", "timeout-multishot", "linked-read", "cancel", "close-writer", "wait", "sleep",
	"refill", "selftest-ghost",
};

const char *xop_name(unsigned op) { return op < XOP_COUNT ? xop_names[op] : "?"; }

const char *xsetup_name(unsigned setup)
{
	static const char *const names[XSETUP_COUNT] = {"none", "coop_taskrun", "defer_taskrun", "sqpoll"};
	return setup < XSETUP_COUNT ? names[setup] : "?";
}

static unsigned setup_flags(unsigned setup)
{
	switch (setup) {
	case XSETUP_COOP_TASKRUN: return IORING_SETUP_COOP_TASKRUN;
	case XSETUP_DEFER_TASKRUN: return IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	case XSETUP_SQPOLL: return IORING_SETUP_SQPOLL;
	}
	return 0;
}

static int ring_init(struct io_uring *ring, unsigned setup)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	p.flags = setup_flags(setup) | IORING_SETUP_CQSIZE;
	p.cq_entries = XRING_CQ;
	p.sq_thread_idle = 20; /* ms: the SQPOLL thread should not outlive its round by much */
	return io_uring_queue_init_params(XRING_SQ, ring, &p);
}

/* One request submitted on a scratch ring, its first CQE's res (or -ETIME if
 * none came within 1 s). The request is canceled and drained afterwards. */
static int try_request(struct io_uring *ring, struct io_uring_sqe *sqe)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = {.tv_sec = 1};
	int res = -ETIME;
	io_uring_sqe_set_data64(sqe, 1);
	io_uring_submit(ring);
	if (io_uring_wait_cqe_timeout(ring, &cqe, &ts) == 0) {
		res = cqe->res;
		io_uring_cqe_seen(ring, cqe);
	}
	sqe = io_uring_get_sqe(ring);
	io_uring_prep_cancel64(sqe, 1, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, 2);
	io_uring_submit(ring);
	ts.tv_sec = 0;
	ts.tv_nsec = 50 * 1000 * 1000;
	while (io_uring_wait_cqe_timeout(ring, &cqe, &ts) == 0)
		io_uring_cqe_seen(ring, cqe);
	return res;
}

static int refused(int res) { return res == -EINVAL || res == -EOPNOTSUPP; }

int xprobe(unsigned *caps, char *why, size_t why_len)
{
	static const int base_ops[] = {IORING_OP_NOP, IORING_OP_READ, IORING_OP_WRITE, IORING_OP_SEND,
				       IORING_OP_RECV, IORING_OP_POLL_ADD, IORING_OP_TIMEOUT,
				       IORING_OP_LINK_TIMEOUT, IORING_OP_ASYNC_CANCEL};
	struct io_uring ring;
	struct io_uring_probe *probe;
	int ret, fds[2], efd;
	unsigned i;

	*caps = 0;
	ret = ring_init(&ring, XSETUP_NONE);
	if (ret < 0) {
		snprintf(why, why_len, "io_uring_queue_init: %s", strerror(-ret));
		return -1;
	}
	probe = io_uring_get_probe_ring(&ring);
	if (!probe) {
		snprintf(why, why_len, "IORING_REGISTER_PROBE refused");
		io_uring_queue_exit(&ring);
		return -1;
	}
	for (i = 0; i < sizeof(base_ops) / sizeof(base_ops[0]); i++)
		if (!io_uring_opcode_supported(probe, base_ops[i])) {
			snprintf(why, why_len, "opcode %d absent from IORING_REGISTER_PROBE", base_ops[i]);
			io_uring_free_probe(probe);
			io_uring_queue_exit(&ring);
			return -1;
		}
	io_uring_free_probe(probe);
	for (i = XSETUP_COOP_TASKRUN; i < XSETUP_COUNT; i++) {
		struct io_uring other;
		if (ring_init(&other, i) == 0) {
			*caps |= i == XSETUP_COOP_TASKRUN ? XCAP_COOP_TASKRUN
				 : i == XSETUP_DEFER_TASKRUN ? XCAP_DEFER_TASKRUN : XCAP_SQPOLL;
			io_uring_queue_exit(&other);
		}
	}
	{
		struct __kernel_timespec ts = {.tv_nsec = 1000};
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		io_uring_prep_timeout(sqe, &ts, 1, IORING_TIMEOUT_MULTISHOT);
		if (!refused(try_request(&ring, sqe)))
			*caps |= XCAP_TIMEOUT_MULTISHOT;
		sqe = io_uring_get_sqe(&ring);
		io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
		if (!refused(try_request(&ring, sqe)))
			*caps |= XCAP_CANCEL_KEYS;
	}
	efd = eventfd(1, EFD_CLOEXEC);
	if (efd >= 0) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		io_uring_prep_poll_multishot(sqe, efd, POLLIN);
		if (!refused(try_request(&ring, sqe)))
			*caps |= XCAP_POLL_MULTISHOT;
		close(efd);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0) {
		struct io_uring_buf_reg reg;
		size_t size = 4096;
		void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		static char buf[XBUF_LEN];
		memset(&reg, 0, sizeof(reg));
		reg.ring_addr = (unsigned long)mem;
		reg.ring_entries = XBUF_COUNT;
		reg.bgid = XBGID;
		if (mem != MAP_FAILED && io_uring_register_buf_ring(&ring, &reg, 0) == 0) {
			struct io_uring_buf_ring *br = mem;
			struct io_uring_sqe *sqe;
			io_uring_buf_ring_init(br);
			io_uring_buf_ring_add(br, buf, sizeof(buf), 0, io_uring_buf_ring_mask(XBUF_COUNT), 0);
			io_uring_buf_ring_advance(br, 1);
			if (write(fds[0], "x", 1) == 1) {
				sqe = io_uring_get_sqe(&ring);
				io_uring_prep_recv_multishot(sqe, fds[1], NULL, 0, 0);
				sqe->flags |= IOSQE_BUFFER_SELECT;
				sqe->buf_group = XBGID;
				if (!refused(try_request(&ring, sqe)))
					*caps |= XCAP_RECV_MULTISHOT;
			}
			io_uring_unregister_buf_ring(&ring, XBGID);
		}
		if (mem != MAP_FAILED)
			munmap(mem, size);
		close(fds[0]);
		close(fds[1]);
	}
	io_uring_queue_exit(&ring);
	return 0;
}

unsigned xprogram_needs(const struct xprogram *prog)
{
	unsigned needs = 0, i;
	if (prog->setup == XSETUP_COOP_TASKRUN)
		needs |= XCAP_COOP_TASKRUN;
	if (prog->setup == XSETUP_DEFER_TASKRUN)
		needs |= XCAP_DEFER_TASKRUN;
	if (prog->setup == XSETUP_SQPOLL)
		needs |= XCAP_SQPOLL;
	for (i = 0; i < prog->nsteps; i++) {
		const struct xstep *s = &prog->steps[i];
		if (s->op == XOP_POLL_MULTISHOT)
			needs |= XCAP_POLL_MULTISHOT;
		if (s->op == XOP_RECV_MULTISHOT)
			needs |= XCAP_RECV_MULTISHOT;
		if (s->op == XOP_TIMEOUT_MULTISHOT)
			needs |= XCAP_TIMEOUT_MULTISHOT;
		if (s->op == XOP_CANCEL && s->key != XK_USER_DATA)
			needs |= XCAP_CANCEL_KEYS;
	}
	return needs;
}

/* ---- running a program ---- */

struct xexec {
	const struct xprogram *prog;
	struct xround *round;
	struct io_uring ring;
	int fd[XF_COUNT];
	int closed[XF_COUNT];
	struct io_uring_buf_ring *br;
	size_t br_size;
	unsigned char bufs[XBUF_COUNT][XBUF_LEN];
	unsigned char app_owns[XBUF_COUNT];
	struct __kernel_timespec ts[XMAX_REQ];
	int16_t by_id[XMAX_STEPS][2 + XDRAIN_ATTEMPTS];	/* request index per step id: main, link timeout, drain attempts */
	unsigned outstanding;
	int ext_arg;
};

static unsigned char xpattern[4096];
static unsigned char xscratch[65536];

static unsigned tag_slot(uint64_t ud)
{
	if (ud & XUD_LINK_TIMEOUT)
		return 1;
	if (ud & XUD_DRAIN)
		return 2 + (unsigned)((ud >> XUD_ATTEMPT_SHIFT) % XDRAIN_ATTEMPTS);
	return 0;
}

static struct xreq *req_of(struct xexec *x, uint64_t ud)
{
	uint64_t id = (ud & 0xffffffffULL) - 1;
	int idx;
	if ((ud & 0xffffffffULL) == 0 || id >= XMAX_STEPS)
		return NULL;
	idx = x->by_id[id][tag_slot(ud)];
	return idx < 0 ? NULL : &x->round->req[idx];
}

static void reap(struct xexec *x)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	struct xround *r = x->round;
	io_uring_for_each_cqe(&x->ring, head, cqe) {
		struct xreq *q;
		n++;
		/* Without IORING_FEAT_EXT_ARG liburing waits with a timeout SQE of its own. */
		if (!x->ext_arg && cqe->user_data == LIBURING_UDATA_TIMEOUT)
			continue;
		if (r->ncqe < XMAX_CQE) {
			r->cqe[r->ncqe].ud = cqe->user_data;
			r->cqe[r->ncqe].res = cqe->res;
			r->cqe[r->ncqe].flags = cqe->flags;
			r->ncqe++;
		} else {
			r->cqe_lost++;
		}
		if ((cqe->flags & IORING_CQE_F_BUFFER) && (cqe->flags >> IORING_CQE_BUFFER_SHIFT) < XBUF_COUNT)
			x->app_owns[cqe->flags >> IORING_CQE_BUFFER_SHIFT] = 1;
		q = req_of(x, cqe->user_data);
		if (q && !(cqe->flags & IORING_CQE_F_MORE) && !q->final_seen) {
			q->final_seen = 1;
			x->outstanding--;
		}
	}
	io_uring_cq_advance(&x->ring, n);
}

static void submit(struct xexec *x)
{
	io_uring_submit(&x->ring);
	reap(x);
}

static struct io_uring_sqe *get_sqe(struct xexec *x, unsigned need)
{
	if (io_uring_sq_space_left(&x->ring) < need)
		submit(x);
	return io_uring_get_sqe(&x->ring);
}

static struct xreq *add_req(struct xexec *x, uint32_t id, uint64_t tag, unsigned kind, unsigned file)
{
	struct xround *r = x->round;
	struct xreq *q;
	if (r->nreq >= XMAX_REQ || id >= XMAX_STEPS)
		return NULL;
	q = &r->req[r->nreq];
	memset(q, 0, sizeof(*q));
	q->ud = (uint64_t)(id + 1) | tag;
	q->kind = (uint8_t)kind;
	q->file = (uint8_t)file;
	q->fd_closed = file < XF_COUNT && x->closed[file];
	x->by_id[id][tag_slot(q->ud)] = (int16_t)r->nreq;
	r->nreq++;
	x->outstanding++;
	return q;
}

static void set_ts(struct __kernel_timespec *ts, uint32_t usec)
{
	ts->tv_sec = usec / 1000000;
	ts->tv_nsec = (long long)(usec % 1000000) * 1000;
}

static void prep_rw(struct io_uring_sqe *sqe, int write, unsigned stream, int fd, uint32_t len)
{
	if (stream == XS_SOCK && write)
		io_uring_prep_send(sqe, fd, xpattern, len, 0);
	else if (stream == XS_SOCK)
		io_uring_prep_recv(sqe, fd, xscratch, len, 0);
	else if (write)
		io_uring_prep_write(sqe, fd, xpattern, len, 0);
	else
		io_uring_prep_read(sqe, fd, xscratch, len, 0);
}

static void provide(struct xexec *x, unsigned bid)
{
	struct xround *r = x->round;
	io_uring_buf_ring_add(x->br, x->bufs[bid], XBUF_LEN, (unsigned short)bid, io_uring_buf_ring_mask(XBUF_COUNT), 0);
	io_uring_buf_ring_advance(x->br, 1);
	x->app_owns[bid] = 0;
	if (r->nprov < XMAX_PROVIDE) {
		r->prov[r->nprov].at_cqe = r->ncqe;
		r->prov[r->nprov].bid = (uint16_t)bid;
		r->nprov++;
	}
}

static void sq_settle(struct xexec *x);

static void close_writer(struct xexec *x, unsigned stream)
{
	unsigned slot = 2 * stream + 1;
	if (x->round->closed_at[stream] >= 0)
		return;
	submit(x);
	sq_settle(x);
	if (stream == XS_SOCK) {
		shutdown(x->fd[slot], SHUT_WR);
	} else {
		close(x->fd[slot]);
		x->fd[slot] = -1;
		x->closed[slot] = 1;
	}
	x->round->closed_at[stream] = (int32_t)x->round->ncqe;
}

static void wait_some(struct xexec *x, unsigned want, uint32_t usec)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts;
	set_ts(&ts, usec);
	io_uring_submit_and_wait_timeout(&x->ring, &cqe, want ? want : 1, &ts, NULL);
	reap(x);
}

static void run_step(struct xexec *x, const struct xstep *s)
{
	struct io_uring_sqe *sqe;
	struct xreq *q;
	unsigned stream = s->file < XS_COUNT ? s->file : XS_PIPE0;
	switch (s->op) {
	case XOP_NOP:
		if (!(q = add_req(x, s->id, 0, XR_NOP, 0xff)))
			return;
		io_uring_prep_nop(sqe = get_sqe(x, 1));
		break;
	case XOP_WRITE:
		if (!(q = add_req(x, s->id, 0, XR_WRITE, 2 * stream + 1)))
			return;
		sqe = get_sqe(x, 1);
		prep_rw(sqe, 1, stream, x->fd[2 * stream + 1], s->len);
		q->len = s->len;
		break;
	case XOP_READ:
	case XOP_LINKED_READ:
		if (!(q = add_req(x, s->id, 0, s->op == XOP_READ ? XR_READ : XR_LINKED_READ, 2 * stream)))
			return;
		sqe = get_sqe(x, 2);
		prep_rw(sqe, 0, stream, x->fd[2 * stream], s->len);
		q->len = s->len;
		io_uring_sqe_set_data64(sqe, q->ud);
		if (s->op == XOP_READ)
			return;
		sqe->flags |= IOSQE_IO_LINK;
		if (!(q = add_req(x, s->id, XUD_LINK_TIMEOUT, XR_LINK_TIMEOUT, 0xff)))
			return;
		set_ts(&x->ts[x->round->nreq - 1], s->usec);
		io_uring_prep_link_timeout(sqe = io_uring_get_sqe(&x->ring), &x->ts[x->round->nreq - 1], 0);
		break;
	case XOP_EVENTFD_READ:
		if (!(q = add_req(x, s->id, 0, XR_EVENTFD_READ, XF_EVENTFD)))
			return;
		io_uring_prep_read(sqe = get_sqe(x, 1), x->fd[XF_EVENTFD], xscratch + 60000, 8, 0);
		q->len = 8;
		break;
	case XOP_EVENTFD_SIGNAL:
		submit(x);
		eventfd_write(x->fd[XF_EVENTFD], 1);
		return;
	case XOP_POLL_MULTISHOT: {
		unsigned slot = s->file < XF_COUNT ? s->file : XF_EVENTFD;
		if (!(q = add_req(x, s->id, 0, XR_POLL_MULTISHOT, slot)))
			return;
		io_uring_prep_poll_multishot(sqe = get_sqe(x, 1), x->fd[slot], POLLIN);
		break;
	}
	case XOP_RECV_MULTISHOT:
		if (!x->br || !(q = add_req(x, s->id, 0, XR_RECV_MULTISHOT, 2 * XS_SOCK)))
			return;
		io_uring_prep_recv_multishot(sqe = get_sqe(x, 1), x->fd[2 * XS_SOCK], NULL, 0, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = XBGID;
		break;
	case XOP_TIMEOUT:
	case XOP_TIMEOUT_MULTISHOT:
		if (!(q = add_req(x, s->id, 0, s->op == XOP_TIMEOUT ? XR_TIMEOUT : XR_TIMEOUT_MULTISHOT, 0xff)))
			return;
		set_ts(&x->ts[x->round->nreq - 1], s->usec);
		q->count = s->count;
		io_uring_prep_timeout(sqe = get_sqe(x, 1), &x->ts[x->round->nreq - 1], s->count,
				      s->op == XOP_TIMEOUT ? 0 : IORING_TIMEOUT_MULTISHOT);
		break;
	case XOP_CANCEL: {
		unsigned slot = s->file < XF_COUNT ? s->file : 0;
		if (!(q = add_req(x, s->id, 0, XR_CANCEL, s->key == XK_FD || s->key == XK_FD_ALL ? slot : 0xff)))
			return;
		q->key = s->key;
		sqe = get_sqe(x, 1);
		if (s->key == XK_USER_DATA) {
			q->target_ud = (uint64_t)s->target + 1;
			io_uring_prep_cancel64(sqe, q->target_ud, 0);
		} else if (s->key == XK_ANY) {
			io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
		} else {
			io_uring_prep_cancel_fd(sqe, x->fd[slot], s->key == XK_FD_ALL ? IORING_ASYNC_CANCEL_ALL : 0);
		}
		break;
	}
	case XOP_CLOSE_WRITER:
		close_writer(x, stream);
		return;
	case XOP_WAIT:
		/* Never more CQEs than requests are pending: a wait, not a sleep. */
		wait_some(x, s->len < x->outstanding ? s->len : x->outstanding, s->usec);
		return;
	case XOP_SLEEP:
		submit(x);
		usleep(s->usec);
		reap(x);
		return;
	case XOP_REFILL: {
		unsigned bid;
		if (!x->br)
			return;
		for (bid = 0; bid < XBUF_COUNT; bid++)
			if (x->app_owns[bid])
				provide(x, bid);
		return;
	}
	case XOP_SELFTEST_GHOST:
		/* Breaks "one final CQE per request" on purpose: a second
		 * request under an existing user_data. */
		io_uring_prep_nop(sqe = get_sqe(x, 1));
		io_uring_sqe_set_data64(sqe, (uint64_t)s->target + 1);
		return;
	default:
		return;
	}
	io_uring_sqe_set_data64(sqe, q->ud);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Cancels every request without its final CQE (by user_data), tagged `tag`. */
static void cancel_outstanding(struct xexec *x, uint64_t tag)
{
	uint32_t i, n = x->round->nreq;
	for (i = 0; i < n; i++) {
		struct xreq *t = &x->round->req[i], *q;
		struct io_uring_sqe *sqe;
		uint64_t id = (t->ud & 0xffffffffULL) - 1;
		if (t->final_seen || (t->ud & ~0xffffffffULL) || t->kind == XR_CANCEL || id >= XMAX_STEPS)
			continue;
		if (x->by_id[id][tag_slot(tag)] >= 0 || !(q = add_req(x, (uint32_t)id, tag, XR_CANCEL, 0xff)))
			continue;
		q->key = XK_USER_DATA;
		q->target_ud = t->ud;
		sqe = get_sqe(x, 1);
		io_uring_prep_cancel64(sqe, t->ud, 0);
		io_uring_sqe_set_data64(sqe, q->ud);
	}
	submit(x);
}

/* With SQPOLL the kernel thread takes SQEs some time after io_uring_submit():
 * before closing a file, wait until it took every SQE queued so far (it
 * looks their files up before it moves the SQ head), at most 1 s. */
static void sq_settle(struct xexec *x)
{
	uint64_t deadline = now_ms() + 1000;
	if (!(x->ring.flags & IORING_SETUP_SQPOLL))
		return;
	while (io_uring_sq_ready(&x->ring) && now_ms() < deadline)
		usleep(10);
}

static void drain(struct xexec *x)
{
	uint64_t start = now_ms(), deadline = start + x->prog->drain_ms, next = start;
	unsigned attempt = 0, s;
	submit(x);
	/* Writers closed: pending reads end at EOF instead of waiting. */
	for (s = 0; s < XS_COUNT; s++)
		close_writer(x, s);
	wait_some(x, 1, 0);
	/* Cancel what is left, again every drain_ms / XDRAIN_ATTEMPTS: a cancel
	 * may miss a multishot request between an event and its re-arm. */
	while (x->outstanding && now_ms() < deadline) {
		if (attempt < XDRAIN_ATTEMPTS && now_ms() >= next) {
			cancel_outstanding(x, XUD_DRAIN | ((uint64_t)attempt << XUD_ATTEMPT_SHIFT));
			attempt++;
			next = now_ms() + x->prog->drain_ms / XDRAIN_ATTEMPTS;
		}
		/* Short slices: on 6.18 a cancel's -ECANCELED can show only
		 * once a wait times out (seen with an eventfd read). */
		wait_some(x, x->outstanding, 1000);
	}
	x->round->drained = x->outstanding == 0;
}

static uint64_t leftover(int fd, int sock)
{
	uint64_t total = 0;
	ssize_t n;
	if (fd < 0)
		return 0;
	if (!sock)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	while ((n = sock ? recv(fd, xscratch, sizeof(xscratch), MSG_DONTWAIT) : read(fd, xscratch, sizeof(xscratch))) > 0)
		total += (uint64_t)n;
	return total;
}

static int setup_files(struct xexec *x)
{
	int p[2];
	unsigned s;
	for (s = 0; s < 2; s++) {
		if (pipe2(p, O_CLOEXEC))
			return -errno;
		x->fd[2 * s] = p[0];
		x->fd[2 * s + 1] = p[1];
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p))
		return -errno;
	x->fd[2 * XS_SOCK] = p[1];
	x->fd[2 * XS_SOCK + 1] = p[0];
	x->fd[XF_EVENTFD] = eventfd(0, EFD_CLOEXEC);
	return x->fd[XF_EVENTFD] < 0 ? -errno : 0;
}

static int setup_buffers(struct xexec *x)
{
	struct io_uring_buf_reg reg;
	unsigned bid;
	int ret;
	x->br_size = 4096;
	x->br = mmap(NULL, x->br_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (x->br == MAP_FAILED) {
		x->br = NULL;
		return -errno;
	}
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)x->br;
	reg.ring_entries = XBUF_COUNT;
	reg.bgid = XBGID;
	ret = io_uring_register_buf_ring(&x->ring, &reg, 0);
	if (ret)
		return ret;
	io_uring_buf_ring_init(x->br);
	for (bid = 0; bid < XBUF_COUNT; bid++)
		provide(x, bid);
	return 0;
}

int xrun(const struct xprogram *prog, struct xround *round)
{
	static struct xexec x;
	unsigned i;
	int ret;

	memset(&x, 0, sizeof(x));
	memset(round, 0, offsetof(struct xround, req));
	round->ncqe = round->nprov = round->cqe_lost = 0;
	round->error[0] = 0;
	x.prog = prog;
	x.round = round;
	memset(x.by_id, 0xff, sizeof(x.by_id));
	for (i = 0; i < XF_COUNT; i++)
		x.fd[i] = -1;
	for (i = 0; i < XS_COUNT; i++)
		round->closed_at[i] = -1;
	if (xpattern[0] == 0)
		for (i = 0; i < sizeof(xpattern); i++)
			xpattern[i] = (unsigned char)('a' + i % 26);

	ret = ring_init(&x.ring, prog->setup);
	if (ret < 0) {
		snprintf(round->error, sizeof(round->error), "io_uring_queue_init(%s): %s", xsetup_name(prog->setup),
			 strerror(-ret));
		return -1;
	}
	x.ext_arg = (x.ring.features & IORING_FEAT_EXT_ARG) != 0;
	ret = setup_files(&x);
	for (i = 0; ret == 0 && i < prog->nsteps; i++)
		if (prog->steps[i].op == XOP_RECV_MULTISHOT) {
			ret = setup_buffers(&x);
			break;
		}
	if (ret < 0) {
		snprintf(round->error, sizeof(round->error), "files or buffer ring: %s", strerror(-ret));
	} else {
		for (i = 0; i < prog->nsteps; i++)
			run_step(&x, &prog->steps[i]);
		drain(&x);
		for (i = 0; i < XS_COUNT; i++)
			round->leftover[i] = leftover(x.fd[2 * i], i == XS_SOCK);
	}
	io_uring_queue_exit(&x.ring);
	for (i = 0; i < XF_COUNT; i++)
		if (x.fd[i] >= 0)
			close(x.fd[i]);
	if (x.br)
		munmap(x.br, x.br_size);
	return ret < 0 ? -1 : 0;
}

/* ---- the reproducer's checks (the harness uses explore_oracle.cpp) ---- */

static int is_multishot(unsigned kind)
{
	return kind == XR_POLL_MULTISHOT || kind == XR_RECV_MULTISHOT || kind == XR_TIMEOUT_MULTISHOT;
}

static int by_cancel(int res) { return res == -ECANCELED || res == -EINTR; }

static const struct xreq *find_req(const struct xround *r, uint64_t ud)
{
	uint32_t i;
	for (i = 0; i < r->nreq; i++)
		if (r->req[i].ud == ud)
			return &r->req[i];
	return NULL;
}

static int reads_stream(unsigned kind)
{
	return kind == XR_READ || kind == XR_LINKED_READ || kind == XR_RECV_MULTISHOT;
}

/* A 0-byte read is end of file only once the stream's writer is closed. */
static int eof_seen(const struct xround *r, const struct xreq *q, uint32_t at)
{
	int stream = q->file < XF_EVENTFD ? q->file / 2 : -1;
	if (!reads_stream(q->kind))
		return 1;
	return stream >= 0 && r->closed_at[stream] >= 0 && (int32_t)at >= r->closed_at[stream];
}

/* Mirrors result_allowed() in explore_oracle.cpp. */
static int res_allowed(const struct xreq *q, int res, int final)
{
	if (q->fd_closed && res == -EBADF)
		return 1;
	switch (q->kind) {
	case XR_NOP: return res == 0;
	case XR_WRITE: return (res > 0 && (uint32_t)res <= q->len) || by_cancel(res);
	case XR_READ:
	case XR_LINKED_READ:
		return (res > 0 && (uint32_t)res <= q->len) || res == 0 || by_cancel(res);
	case XR_EVENTFD_READ: return res == 8 || by_cancel(res);
	case XR_POLL_MULTISHOT:
	case XR_RECV_MULTISHOT:
		return final || res > 0;
	case XR_TIMEOUT: return res == -ETIME || (res == 0 && q->count > 0) || res == -ECANCELED;
	case XR_TIMEOUT_MULTISHOT: return res == -ETIME || (final && res == -ECANCELED);
	case XR_LINK_TIMEOUT: return res == -ETIME || res == -ECANCELED || res == -ENOENT || res == -EALREADY;
	case XR_CANCEL:
		if (q->key == XK_USER_DATA || q->key == XK_FD)
			return res == 0 || res == -ENOENT || res == -EALREADY;
		return res >= 0;
	}
	return 0;
}

static int cancel_can_match(const struct xreq *c, const struct xreq *t)
{
	if (t == c)
		return 0;
	if (c->key == XK_USER_DATA)
		return t->ud == c->target_ud;
	if (c->key == XK_ANY)
		return 1;
	return t->file == c->file && t->kind != XR_CANCEL;
}

const char *xcheck(const struct xround *r, char *why, size_t n)
{
	static uint32_t seen[XMAX_REQ], finals[XMAX_REQ];
	static int32_t final_res[XMAX_REQ];
	static unsigned char held[XBUF_COUNT];
	uint64_t written[XS_COUNT] = {0}, read[XS_COUNT] = {0};
	uint32_t i, j, p = 0;

	memset(seen, 0, sizeof(seen));
	memset(finals, 0, sizeof(finals));
	memset(held, 0, sizeof(held));
	for (i = 0; i < r->ncqe; i++) {
		const struct xcqe *c = &r->cqe[i];
		const struct xreq *q = find_req(r, c->ud);
		int final = !(c->flags & IORING_CQE_F_MORE);
		uint32_t k;
		for (; p < r->nprov && r->prov[p].at_cqe <= i; p++)
			held[r->prov[p].bid] = 1;
		if (!q) {
			snprintf(why, n, "CQE for user_data 0x%llx, which no request had (res %d)", (unsigned long long)c->ud, c->res);
			return "unknown-user-data";
		}
		k = (uint32_t)(q - r->req);
		if (finals[k]) {
			snprintf(why, n, "CQE for user_data 0x%llx (res %d) after its final CQE (res %d)",
				 (unsigned long long)c->ud, c->res, final_res[k]);
			return "completion-contract";
		}
		if (!final && !is_multishot(q->kind)) {
			snprintf(why, n, "one-shot user_data 0x%llx CQE carries IORING_CQE_F_MORE", (unsigned long long)c->ud);
			return "completion-contract";
		}
		seen[k]++;
		if (final) {
			finals[k] = 1;
			final_res[k] = c->res;
		}
		if (c->res == 0 && !eof_seen(r, q, i)) {
			snprintf(why, n, "user_data 0x%llx read 0 bytes (end of file) before its writer was closed",
				 (unsigned long long)c->ud);
			return "eof-before-close";
		}
		if (!res_allowed(q, c->res, final)) {
			snprintf(why, n, "%s user_data 0x%llx res %d flags 0x%x is not a result its man page allows",
				 q->kind == XR_CANCEL ? "cancel" : "request", (unsigned long long)c->ud, c->res, c->flags);
			return "result-allowed";
		}
		if (q->kind == XR_RECV_MULTISHOT && c->res > 0) {
			unsigned bid = c->flags >> IORING_CQE_BUFFER_SHIFT;
			if (!(c->flags & IORING_CQE_F_BUFFER) || bid >= XBUF_COUNT || !held[bid]) {
				snprintf(why, n, "recv CQE res %d names buffer %u, which the kernel did not hold", c->res, bid);
				return "buffer-ownership";
			}
			held[bid] = 0;
		}
		if (c->res > 0 && q->file < XF_EVENTFD) {
			if (q->kind == XR_WRITE)
				written[q->file / 2] += (uint64_t)c->res;
			else if (q->kind == XR_READ || q->kind == XR_LINKED_READ || q->kind == XR_RECV_MULTISHOT)
				read[q->file / 2] += (uint64_t)c->res;
		}
	}
	for (i = 0; i < r->nreq; i++)
		if (!finals[i]) {
			snprintf(why, n, "user_data 0x%llx (%s) has no final CQE after the drain (%u CQEs)",
				 (unsigned long long)r->req[i].ud, r->req[i].kind == XR_CANCEL ? "cancel" : "request", seen[i]);
			return "outstanding-after-drain";
		}
	for (i = 0; i < r->nreq; i++) {
		const struct xreq *c = &r->req[i];
		uint32_t canceled = 0;
		if (c->kind != XR_CANCEL)
			continue;
		for (j = 0; j < i; j++)
			if (cancel_can_match(c, &r->req[j]) && by_cancel(final_res[j]))
				canceled++;
		if ((c->key == XK_USER_DATA || c->key == XK_FD) ? (final_res[i] == 0 && canceled == 0)
								  : (final_res[i] > 0 && (uint32_t)final_res[i] > canceled)) {
			snprintf(why, n, "cancel user_data 0x%llx returned %d but %u of its targets ended -ECANCELED/-EINTR",
				 (unsigned long long)c->ud, final_res[i], canceled);
			return "cancel-consistent";
		}
	}
	for (i = 0; i < XS_COUNT; i++)
		if (written[i] != read[i] + r->leftover[i]) {
			snprintf(why, n, "stream %u: %llu bytes written, %llu read + %llu left in it", i,
				 (unsigned long long)written[i], (unsigned long long)read[i], (unsigned long long)r->leftover[i]);
			return "bytes-conserved";
		}
	return NULL;
}

#include <signal.h>
#include <getopt.h>

#define PROGRAM_SETUP 3	/* sqpoll */
#define DRAIN_MS 5000
#define FOUND_RULE "outstanding-after-drain"

static const struct xstep steps[] = {
	{8, 0, 0, 0, 14, 0, 1018, 0, 0},	/* #14 timeout-multishot 1018us count=0 */
};

/* ---- the program found by uring-conform explore ---- */

static volatile sig_atomic_t attempt_now;

static void on_alarm(int sig)
{
	static const char msg[] = "reproduced: watchdog: an attempt did not finish (bounded waits only: the kernel kept a request or io_uring_enter stuck)\n";
	(void)sig;
	if (write(1, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	_exit(1);
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [-n ATTEMPTS] [-d SECONDS] [-q] [-h]\n", argv0);
	printf("error: bad command line\n");
	exit(129);
}

/* -h: the usage on stdout, exit 0 (reproducers/bisect-run.sh checks a command line with it). */
static void help(const char *argv0)
{
	printf("usage: %s [-n ATTEMPTS] [-d SECONDS] [-q] [-h]\n", argv0);
	exit(0);
}

int main(int argc, char **argv)
{
	static struct xround round;
	struct xprogram prog = {PROGRAM_SETUP, sizeof(steps) / sizeof(steps[0]), steps, DRAIN_MS};
	unsigned attempts = 100, caps = 0, a;
	double seconds = 20;
	int quiet = 0, opt;
	char why[400];
	struct timespec start, now;

	while ((opt = getopt(argc, argv, "n:d:qh")) != -1) {
		if (opt == 'n')
			attempts = (unsigned)strtoul(optarg, NULL, 10);
		else if (opt == 'd')
			seconds = strtod(optarg, NULL);
		else if (opt == 'q')
			quiet = 1;
		else if (opt == 'h')
			help(argv[0]);
		else
			usage(argv[0]);
	}
	if (attempts == 0 || !(seconds > 0 && seconds <= 3600))
		usage(argv[0]);
	if (xprobe(&caps, why, sizeof(why))) {
		printf("cannot test: %s\n", why);
		return 125;
	}
	if (xprogram_needs(&prog) & ~caps) {
		printf("cannot test: the kernel refuses a feature the program needs (capability bits 0x%x, have 0x%x)\n",
		       xprogram_needs(&prog), caps);
		return 125;
	}
	signal(SIGALRM, on_alarm);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (a = 0; a < attempts; a++) {
		const char *rule;
		attempt_now = (sig_atomic_t)a;
		alarm((unsigned)(DRAIN_MS / 1000) * 3 + 30);
		if (xrun(&prog, &round)) {
			printf("cannot test: %s\n", round.error);
			return 125;
		}
		alarm(0);
		rule = xcheck(&round, why, sizeof(why));
		if (rule) {
			printf("reproduced: attempt %u: %s: %s (found as %s)\n", a + 1, rule, why, FOUND_RULE);
			fflush(stdout);
			return 1;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9 > seconds) {
			a++;
			break;
		}
	}
	if (!quiet)
		printf("ok: %u attempts, no rule broken\n", a);
	return 0;
}
