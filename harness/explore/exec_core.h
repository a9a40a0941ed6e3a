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
