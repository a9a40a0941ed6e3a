/* SPDX-License-Identifier: MIT */
/*
 * Description: eventfd cancel race. N threads, each with its own ring; per
 *		iteration thread n reads eventfd n and eventfd (n+1)%N, writes
 *		eventfd (n+2)%N, reaps until the write's CQE, cancels both reads
 *		whatever their state, then waits for every request. A read
 *		whose CQE never arrives (its cancel having returned -ENOENT
 *		or -EALREADY) is the bug.
 *
 * Report: Florian Fischer and Florian Schmaus, "Canceled read requests never
 * completed", https://lore.kernel.org/io-uring/20220118151337.fac6cthvbnu7icoc@pasture/
 * (seen on 5.9 to 5.16). Fixes posted in that thread: "io_uring: perform poll
 * removal even if async work removal is successful" (ccbf726171b7) and
 * "io-wq: add intermediate work step between pending list and active work".
 *
 * Rule, io_uring_cancelation(7): the canceled request's CQE carries
 * -ECANCELED (or -EINTR if it was already running); the cancel's own CQE is
 * 0, -ENOENT or -EALREADY. io_uring_prep_cancel(3): for -EALREADY "the caller
 * must wait for the canceled request to post its completion event". So every
 * request of an iteration yields exactly one CQE: 5 requests, 5 CQEs.
 *
 * Exit codes follow `git bisect run`: 0 the kernel behaved, 1 the bug
 * reproduced (a CQE missing past the deadline, or one too many), 125 this
 * host cannot run the test, 129 bad usage. One line of output says which.
 *
 * Build: cc reproducers/eventfd-cancel-race.c -luring
 * (glibc >= 2.34 has pthreads in libc; older glibc also needs -pthread).
 */
/* liburing.h needs POSIX types (sigset_t) also under -std=c11. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/*
 * Values from include/uapi/linux/io_uring.h (checked against the 6.12 uapi
 * header), for liburing copies older than the kernel feature.
 */
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)	/* Linux 5.19 */
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)	/* Linux 6.0 */
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)	/* Linux 6.1 */
#endif
#ifndef IORING_FEAT_EXT_ARG
#define IORING_FEAT_EXT_ARG (1U << 8)		/* Linux 5.11 */
#endif
#ifndef IORING_ASYNC_CANCEL_FD
#define IORING_ASYNC_CANCEL_FD (1U << 1)	/* Linux 5.19 */
#endif
#ifndef IORING_ASYNC_CANCEL_ANY
#define IORING_ASYNC_CANCEL_ANY (1U << 2)	/* Linux 5.19 */
#endif

#define EXIT_BEHAVED 0
#define EXIT_REPRODUCED 1
#define EXIT_CANNOT_TEST 125
/* Bad usage stops `git bisect run` (codes above 127 abort it) instead of
 * marking every commit; 129 is what git itself exits with on bad usage. */
#define EXIT_USAGE 129

#define NSEC_PER_SEC 1000000000ULL
#define RING_ENTRIES 8		/* at most 5 requests are in flight */
#define SQPOLL_IDLE_MS 100	/* kernel default: 1 s of polling after work */
#define MAX_THREADS 1024

/* The five requests of an iteration; user_data = iteration << TAG_BITS | tag. */
enum tag { READ_A, READ_B, WRITE, CANCEL_A, CANCEL_B, TAG_COUNT };
#define TAG_BITS 3
#define TAG_BIT(t) (1U << (t))
#define ALL_TAGS (TAG_BIT(TAG_COUNT) - 1)

static const char *const tag_names[TAG_COUNT] = {
	"read A", "read B", "write", "cancel of read A", "cancel of read B",
};

enum cancel_mode { CANCEL_BY_USER_DATA, CANCEL_BY_FD, CANCEL_ANY };
static const char *const cancel_mode_names[] = { "user_data", "fd", "any" };

struct setup_choice {
	const char *name;
	unsigned flags;
};
static const struct setup_choice setup_choices[] = {
	{ "none", 0 },
	{ "coop", IORING_SETUP_COOP_TASKRUN },
	{ "defer", IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN },
	{ "sqpoll", IORING_SETUP_SQPOLL },
};
#define SETUP_CHOICES (sizeof(setup_choices) / sizeof(setup_choices[0]))

struct options {
	unsigned threads;
	unsigned duration_s;
	uint64_t max_iterations;	/* per thread */
	uint64_t write_value;
	const struct setup_choice *setup;
	enum cancel_mode cancel_mode;
	unsigned wait_s;		/* per-iteration deadline */
	bool async_write;
	bool quiet;
	bool help;
};

/* Counts per CQE res value; a handful of distinct values are expected. */
#define HISTOGRAM_SLOTS 16
struct histogram {
	unsigned used;
	int res[HISTOGRAM_SLOTS];
	uint64_t count[HISTOGRAM_SLOTS];
	uint64_t overflow;
};

/* Where a worker is, for the watchdog's evidence line. */
enum phase { PHASE_SETUP, PHASE_SUBMIT, PHASE_WAIT_WRITE, PHASE_WAIT_ALL,
	     PHASE_RING_EXIT, PHASE_DONE };
static const char *const phase_names[] = {
	"ring setup", "io_uring_enter (submit)",
	"io_uring_enter (waiting for the write)",
	"io_uring_enter (waiting for all CQEs)", "ring exit", "done",
};

struct worker {
	unsigned index;
	struct io_uring ring;
	int read_fd[2];
	int write_fd;
	uint64_t read_buf[2];
	uint64_t write_buf;
	uint64_t iteration;		/* the one running, from 1 */
	uint64_t iterations_done;
	uint64_t deadline_ns;
	unsigned seen;			/* TAG_BITs with a CQE this iteration */
	int res[TAG_COUNT];
	int setup_error;
	uint64_t end_ns;
	struct histogram cancel_results, read_results, write_results;
	/* For the watchdog: when the current iteration (or the ring exit)
	 * began, which iteration, and where in it the worker is. */
	_Atomic uint64_t heartbeat_ns;
	_Atomic uint64_t heartbeat_iteration;
	_Atomic int phase;
	pthread_t thread;
} __attribute__((aligned(64)));

static struct options opts;
static int *eventfds;
static pthread_barrier_t setup_barrier;
static atomic_bool setup_failed;
/* 0 while no verdict; else exit code + 1 of the thread printing it. */
static atomic_int verdict;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Prints the run's single line and exits; only the first caller gets to. */
__attribute__((format(printf, 2, 3), noreturn))
static void finish(int code, const char *fmt, ...)
{
	int unclaimed = 0;
	va_list ap;

	if (!atomic_compare_exchange_strong(&verdict, &unclaimed, code + 1))
		for (;;)
			pause();	/* another thread is exiting the process */
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	/* _exit: a thread stuck in the kernel must not hold up atexit work. */
	_exit(code);
}

static const char *errno_name(int err)
{
	switch (err) {
	case ENOENT: return "ENOENT";
	case EALREADY: return "EALREADY";
	case ECANCELED: return "ECANCELED";
	case EINTR: return "EINTR";
	case EINVAL: return "EINVAL";
	case EAGAIN: return "EAGAIN";
	case EPERM: return "EPERM";
	case ENOSYS: return "ENOSYS";
	case ENOMEM: return "ENOMEM";
	case EBADF: return "EBADF";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ETIME: return "ETIME";
	case EEXIST: return "EEXIST";
	case EFAULT: return "EFAULT";
	default: return NULL;
	}
}

/* Formats a CQE res: "8", "0", "-ENOENT", "-4095". Returns buf. */
static const char *res_text(int res, char *buf, size_t len)
{
	const char *name = res < 0 ? errno_name(-res) : NULL;

	if (name)
		snprintf(buf, len, "-%s", name);
	else
		snprintf(buf, len, "%d", res);
	return buf;
}

static void histogram_add(struct histogram *h, int res, uint64_t n)
{
	for (unsigned i = 0; i < h->used; i++) {
		if (h->res[i] == res) {
			h->count[i] += n;
			return;
		}
	}
	if (h->used == HISTOGRAM_SLOTS) {
		h->overflow += n;
		return;
	}
	h->res[h->used] = res;
	h->count[h->used++] = n;
}

static uint64_t histogram_count(const struct histogram *h, int res)
{
	for (unsigned i = 0; i < h->used; i++)
		if (h->res[i] == res)
			return h->count[i];
	return 0;
}

static void histogram_merge(struct histogram *into, const struct histogram *from)
{
	for (unsigned i = 0; i < from->used; i++)
		histogram_add(into, from->res[i], from->count[i]);
	into->overflow += from->overflow;
}

/* "{0:12, -ENOENT:3}": the expected keys always, then any others seen. */
static void histogram_format(const struct histogram *h, const int *expected,
			     unsigned n_expected, char *out, size_t len)
{
	size_t pos = 0;
	char name[32];

	pos += snprintf(out + pos, len - pos, "{");
	for (unsigned i = 0; i < n_expected && pos < len; i++)
		pos += snprintf(out + pos, len - pos, "%s%s:%" PRIu64,
				i ? ", " : "",
				res_text(expected[i], name, sizeof(name)),
				histogram_count(h, expected[i]));
	for (unsigned i = 0; i < h->used && pos < len; i++) {
		bool listed = false;

		for (unsigned j = 0; j < n_expected; j++)
			listed |= expected[j] == h->res[i];
		if (!listed)
			pos += snprintf(out + pos, len - pos, ", %s:%" PRIu64,
					res_text(h->res[i], name, sizeof(name)),
					h->count[i]);
	}
	if (h->overflow && pos < len)
		pos += snprintf(out + pos, len - pos, ", other:%" PRIu64,
				h->overflow);
	if (pos < len)
		snprintf(out + pos, len - pos, "}");
}

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [-t threads] [-d seconds] [-i iterations] [-v value]\n"
		"          [-f none|coop|defer|sqpoll] [-c user_data|fd|any]\n"
		"          [-w seconds] [-a] [-q] [-h]\n"
		"Reproduces the eventfd cancel race (lore.kernel.org/io-uring/\n"
		"20220118151337.fac6cthvbnu7icoc@pasture).\n"
		"  -t  threads, each with its own ring and eventfd (default 4)\n"
		"  -d  run time in seconds (default 5)\n"
		"  -i  at most this many iterations per thread (default: no limit)\n"
		"  -v  value each write adds to its eventfd (default 1; 0 = reads\n"
		"      are never satisfied and must all end by cancellation)\n"
		"  -f  ring setup flags: none, coop (COOP_TASKRUN), defer\n"
		"      (SINGLE_ISSUER|DEFER_TASKRUN), sqpoll (default none)\n"
		"  -c  cancel reads by user_data, by fd (IORING_ASYNC_CANCEL_FD) or\n"
		"      any request (IORING_ASYNC_CANCEL_ANY) (default user_data)\n"
		"  -w  seconds an iteration may take before a missing CQE counts\n"
		"      as the bug (default 2; raise it under emulation)\n"
		"  -a  submit the write with IOSQE_ASYNC, straight to io-wq (an eventfd\n"
		"      write cannot be issued nonblocking; without -a recent kernels\n"
		"      retry it through poll up to 128 times first)\n"
		"  -q  print nothing when the kernel behaved\n"
		"exit: 0 behaved, 1 bug reproduced, 125 cannot test here,\n"
		"      129 bad usage (stops git bisect run)\n",
		prog);
}

/* Parses a decimal in [min, max]; bad input ends the run with 125. */
static uint64_t parse_number(const char *text, char option, uint64_t min,
			     uint64_t max)
{
	char *end;
	unsigned long long value;

	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno || end == text || *end || text[0] == '-' ||
	    value < min || value > max)
		finish(EXIT_USAGE, "error: -%c wants a number in [%" PRIu64
		       ", %" PRIu64 "], got '%s'", option, min, max, text);
	return value;
}

static const struct setup_choice *parse_setup(const char *text)
{
	for (size_t i = 0; i < SETUP_CHOICES; i++)
		if (!strcmp(text, setup_choices[i].name))
			return &setup_choices[i];
	finish(EXIT_USAGE,
	       "error: -f wants none, coop, defer or sqpoll, got '%s'", text);
}

static enum cancel_mode parse_cancel_mode(const char *text)
{
	for (int i = CANCEL_BY_USER_DATA; i <= CANCEL_ANY; i++)
		if (!strcmp(text, cancel_mode_names[i]))
			return (enum cancel_mode)i;
	finish(EXIT_USAGE,
	       "error: -c wants user_data, fd or any, got '%s'", text);
}

static void parse_options(int argc, char **argv)
{
	int c;

	opts = (struct options){ .threads = 4, .duration_s = 5,
		.max_iterations = UINT64_MAX, .write_value = 1,
		.setup = &setup_choices[0], .wait_s = 2 };
	opterr = 0;
	while ((c = getopt(argc, argv, "t:d:i:v:f:c:w:aqh")) != -1) {
		switch (c) {
		case 't': opts.threads = parse_number(optarg, c, 1, MAX_THREADS); break;
		case 'd': opts.duration_s = parse_number(optarg, c, 1, 86400); break;
		case 'i': opts.max_iterations = parse_number(optarg, c, 1, UINT32_MAX); break;
		/* Bounded so the eventfd counter can never approach its
		 * 0xfffffffffffffffe limit, where a write would block. */
		case 'v': opts.write_value = parse_number(optarg, c, 0, UINT32_MAX); break;
		case 'f': opts.setup = parse_setup(optarg); break;
		case 'c': opts.cancel_mode = parse_cancel_mode(optarg); break;
		case 'w': opts.wait_s = parse_number(optarg, c, 1, 3600); break;
		case 'a': opts.async_write = true; break;
		case 'q': opts.quiet = true; break;
		case 'h': opts.help = true; break;
		default:
			finish(EXIT_USAGE, "error: unknown option or missing "
			       "value: -%c (see -h)", optopt);
		}
	}
	if (optind != argc)
		finish(EXIT_USAGE, "error: unexpected argument '%s' (see -h)",
		       argv[optind]);
	/* With one thread both reads use one eventfd, and two cancel-by-fd
	 * SQEs submitted together both match the read the first is already
	 * canceling (seen on 6.18): the other read is never canceled. That is
	 * a different behaviour from this race, so keep it out. */
	if (opts.threads == 1 && opts.cancel_mode == CANCEL_BY_FD)
		finish(EXIT_USAGE, "error: -c fd needs -t 2 or more (one "
		       "thread reads one eventfd twice; see the source)");
	/* After validation, so that `-h` last checks a command line. */
	if (opts.help) {
		usage(stdout, argv[0]);
		exit(EXIT_BEHAVED);
	}
}

static void set_phase(struct worker *w, enum phase phase, uint64_t now)
{
	atomic_store_explicit(&w->heartbeat_ns, now, memory_order_relaxed);
	atomic_store_explicit(&w->heartbeat_iteration, w->iteration,
			      memory_order_relaxed);
	atomic_store_explicit(&w->phase, phase, memory_order_relaxed);
}

/* Describes what was asked of `tag` this iteration, for evidence lines. */
static void describe_request(const struct worker *w, enum tag tag, char *out,
			     size_t len)
{
	uint64_t user_data = w->iteration << TAG_BITS | tag;

	if (tag == READ_A || tag == READ_B)
		snprintf(out, len, "%s (eventfd %d, user_data 0x%" PRIx64 ")",
			 tag_names[tag], w->read_fd[tag - READ_A], user_data);
	else if (tag == WRITE)
		snprintf(out, len, "write (eventfd %d, user_data 0x%" PRIx64 ")",
			 w->write_fd, user_data);
	else
		snprintf(out, len, "%s (by %s, user_data 0x%" PRIx64 ")",
			 tag_names[tag], cancel_mode_names[opts.cancel_mode],
			 user_data);
}

/* The cancel result(s) that preceded a missing read: evidence for the report. */
static void describe_cancels(const struct worker *w, char *out, size_t len)
{
	char a[32], b[32];

	if (!(w->seen & TAG_BIT(CANCEL_A)))
		snprintf(a, sizeof(a), "no CQE");
	else
		res_text(w->res[CANCEL_A], a, sizeof(a));
	if (!(w->seen & TAG_BIT(CANCEL_B)))
		snprintf(b, sizeof(b), "no CQE");
	else
		res_text(w->res[CANCEL_B], b, sizeof(b));
	if (opts.cancel_mode == CANCEL_ANY)
		snprintf(out, len, "the two CANCEL_ANY cancels returned %s and %s",
			 a, b);
	else
		snprintf(out, len, "cancel of read A returned %s, of read B %s",
			 a, b);
}

/* Every request yields exactly one CQE; one is still missing at the deadline. */
__attribute__((noreturn))
static void report_missing(const struct worker *w, unsigned wanted)
{
	char missing[256] = "", request[96], cancels[128];
	size_t pos = 0;

	for (int tag = 0; tag < TAG_COUNT; tag++) {
		if (!(wanted & TAG_BIT(tag)) || (w->seen & TAG_BIT(tag)))
			continue;
		describe_request(w, tag, request, sizeof(request));
		pos += snprintf(missing + pos, sizeof(missing) - pos, "%s%s",
				pos ? " and " : "", request);
		if (pos >= sizeof(missing))
			break;
	}
	if (wanted == TAG_BIT(WRITE))
		finish(EXIT_REPRODUCED, "reproduced: thread %u iteration %" PRIu64
		       ": no CQE for %s within %u s, before any cancel",
		       w->index, w->iteration, missing, opts.wait_s);
	describe_cancels(w, cancels, sizeof(cancels));
	finish(EXIT_REPRODUCED, "reproduced: thread %u iteration %" PRIu64
	       ": no CQE for %s within %u s; %s (setup %s, cancel by %s, %u threads, "
	       "write value %" PRIu64 "%s)", w->index, w->iteration, missing,
	       opts.wait_s, cancels, opts.setup->name,
	       cancel_mode_names[opts.cancel_mode], opts.threads,
	       opts.write_value, opts.async_write ? ", async write" : "");
}

/* A CQE for a request that already had one, or for no request we made. */
__attribute__((noreturn))
static void report_extra_cqe(const struct worker *w,
			     const struct io_uring_cqe *cqe)
{
	uint64_t iteration = cqe->user_data >> TAG_BITS;
	unsigned tag = cqe->user_data & (TAG_BIT(TAG_BITS) - 1);
	char res[32];

	res_text(cqe->res, res, sizeof(res));
	if (tag >= TAG_COUNT || iteration > w->iteration)
		finish(EXIT_REPRODUCED, "reproduced: thread %u iteration %" PRIu64
		       ": CQE for unknown user_data 0x%llx (res %s, flags 0x%x)",
		       w->index, w->iteration,
		       (unsigned long long)cqe->user_data, res, cqe->flags);
	finish(EXIT_REPRODUCED, "reproduced: thread %u iteration %" PRIu64
	       ": second CQE for %s of iteration %" PRIu64
	       " (user_data 0x%llx, res %s, flags 0x%x)", w->index,
	       w->iteration, tag_names[tag], iteration,
	       (unsigned long long)cqe->user_data, res, cqe->flags);
}

/*
 * Results that say the kernel refuses the request's shape rather than race:
 * io_uring_prep_cancel(3) -EINVAL "one of the fields set in the SQE was
 * invalid" (an opcode or cancel flag the kernel predates); -EBADF on our
 * open eventfd (SQPOLL before 5.11 accepts registered files only).
 */
static bool refused_by_kernel(int res)
{
	return res == -EINVAL || res == -EOPNOTSUPP || res == -EBADF;
}

__attribute__((noreturn))
static void report_refused(const struct worker *w, enum tag tag, int res)
{
	finish(EXIT_CANNOT_TEST, "cannot test: thread %u: %s got -%s; the kernel "
	       "refuses the opcode, the cancel flag (cancel by %s) or, with "
	       "SQPOLL before 5.11, unregistered files", w->index,
	       tag_names[tag], errno_name(-res),
	       cancel_mode_names[opts.cancel_mode]);
}

static void consume_ready_cqes(struct worker *w)
{
	struct io_uring_cqe *cqe;
	unsigned head, count = 0;

	io_uring_for_each_cqe(&w->ring, head, cqe) {
		uint64_t iteration = cqe->user_data >> TAG_BITS;
		unsigned tag = cqe->user_data & (TAG_BIT(TAG_BITS) - 1);

		count++;
		/* Without IORING_FEAT_EXT_ARG (before 5.11) liburing waits with
		 * a timeout SQE of its own; its CQE is none of ours. */
		if (!(w->ring.features & IORING_FEAT_EXT_ARG) &&
		    cqe->user_data == LIBURING_UDATA_TIMEOUT)
			continue;
		if (tag >= TAG_COUNT || iteration != w->iteration ||
		    (w->seen & TAG_BIT(tag)))
			report_extra_cqe(w, cqe);
		/* Checked as CQEs arrive: a rejected cancel leaves its read
		 * pending, which must not read as the bug. */
		if (refused_by_kernel(cqe->res))
			report_refused(w, tag, cqe->res);
		w->seen |= TAG_BIT(tag);
		w->res[tag] = cqe->res;
	}
	io_uring_cq_advance(&w->ring, count);
}

/* Waits, never past the iteration deadline, until all `wanted` CQEs came. */
static void reap_until(struct worker *w, unsigned wanted)
{
	while ((w->seen & wanted) != wanted) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec left;
		uint64_t now = now_ns();
		int ret;

		if (now >= w->deadline_ns)
			report_missing(w, wanted);
		left.tv_sec = (w->deadline_ns - now) / NSEC_PER_SEC;
		left.tv_nsec = (w->deadline_ns - now) % NSEC_PER_SEC;
		ret = io_uring_wait_cqe_timeout(&w->ring, &cqe, &left);
		if (ret < 0 && ret != -ETIME && ret != -EINTR)
			finish(EXIT_CANNOT_TEST, "cannot test: thread %u: waiting for "
			       "CQEs failed: %s", w->index, strerror(-ret));
		consume_ready_cqes(w);
	}
}

static struct io_uring_sqe *next_sqe(struct worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

	/* Each iteration drains its requests, so the SQ ring is never full. */
	if (!sqe)
		finish(EXIT_CANNOT_TEST, "cannot test: thread %u: SQ ring full at "
		       "iteration %" PRIu64, w->index, w->iteration);
	return sqe;
}

static void submit_all(struct worker *w, int count)
{
	int submitted = 0;

	/* The kernel may take fewer SQEs than offered (-EAGAIN, -EBUSY, a
	 * short count); the rest stay in the SQ ring for the next call. */
	while (submitted < count) {
		int ret = io_uring_submit(&w->ring);

		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
			finish(EXIT_CANNOT_TEST, "cannot test: thread %u: submit "
			       "failed: %s", w->index, strerror(-ret));
		if (ret > 0)
			submitted += ret;
		else if (now_ns() >= w->deadline_ns)
			report_missing(w, ALL_TAGS);
	}
}

static void prep_cancel(struct worker *w, enum tag cancel, enum tag read)
{
	struct io_uring_sqe *sqe = next_sqe(w);

	switch (opts.cancel_mode) {
	case CANCEL_BY_USER_DATA:
		io_uring_prep_cancel64(sqe, w->iteration << TAG_BITS | read, 0);
		break;
	case CANCEL_BY_FD:
		io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_FD);
		sqe->fd = w->read_fd[read - READ_A];
		break;
	case CANCEL_ANY:
		io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
		break;
	}
	io_uring_sqe_set_data64(sqe, w->iteration << TAG_BITS | cancel);
}

static void run_iteration(struct worker *w)
{
	uint64_t base = w->iteration << TAG_BITS;
	struct io_uring_sqe *sqe;
	uint64_t now = now_ns();

	w->seen = 0;
	w->deadline_ns = now + opts.wait_s * NSEC_PER_SEC;
	set_phase(w, PHASE_SUBMIT, now);
	for (int r = 0; r < 2; r++) {
		sqe = next_sqe(w);
		io_uring_prep_read(sqe, w->read_fd[r], &w->read_buf[r],
				   sizeof(w->read_buf[r]), 0);
		io_uring_sqe_set_data64(sqe, base | (READ_A + r));
	}
	sqe = next_sqe(w);
	io_uring_prep_write(sqe, w->write_fd, &w->write_buf,
			    sizeof(w->write_buf), 0);
	io_uring_sqe_set_data64(sqe, base | WRITE);
	if (opts.async_write)
		sqe->flags |= IOSQE_ASYNC;
	submit_all(w, 3);
	atomic_store_explicit(&w->phase, PHASE_WAIT_WRITE, memory_order_relaxed);
	reap_until(w, TAG_BIT(WRITE));

	/* Cancel both reads whatever their state, as the report does. */
	prep_cancel(w, CANCEL_A, READ_A);
	prep_cancel(w, CANCEL_B, READ_B);
	atomic_store_explicit(&w->phase, PHASE_SUBMIT, memory_order_relaxed);
	submit_all(w, 2);
	atomic_store_explicit(&w->phase, PHASE_WAIT_ALL, memory_order_relaxed);
	reap_until(w, ALL_TAGS);

	histogram_add(&w->read_results, w->res[READ_A], 1);
	histogram_add(&w->read_results, w->res[READ_B], 1);
	histogram_add(&w->cancel_results, w->res[CANCEL_A], 1);
	histogram_add(&w->cancel_results, w->res[CANCEL_B], 1);
	histogram_add(&w->write_results, w->res[WRITE], 1);
	w->iterations_done++;
}

static int setup_ring(struct worker *w)
{
	struct io_uring_params params = { .flags = opts.setup->flags };

	if (params.flags & IORING_SETUP_SQPOLL)
		params.sq_thread_idle = SQPOLL_IDLE_MS;
	/* DEFER_TASKRUN rings are bound to their creator: create it here. */
	return io_uring_queue_init_params(RING_ENTRIES, &w->ring, &params);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t stop_ns;

	w->setup_error = setup_ring(w);
	if (w->setup_error)
		atomic_store(&setup_failed, true);
	pthread_barrier_wait(&setup_barrier);
	/* Main reports the refusal and exits; nothing to run. */
	if (atomic_load(&setup_failed)) {
		atomic_store_explicit(&w->phase, PHASE_DONE, memory_order_release);
		return NULL;
	}

	stop_ns = now_ns() + opts.duration_s * NSEC_PER_SEC;
	for (w->iteration = 1; w->iterations_done < opts.max_iterations;
	     w->iteration++) {
		run_iteration(w);
		if (now_ns() >= stop_ns)
			break;
	}
	w->end_ns = now_ns();
	set_phase(w, PHASE_RING_EXIT, w->end_ns);
	io_uring_queue_exit(&w->ring);
	atomic_store_explicit(&w->phase, PHASE_DONE, memory_order_release);
	return NULL;
}

static void setup_refused(const struct worker *workers)
{
	for (unsigned i = 0; i < opts.threads; i++) {
		int err = -workers[i].setup_error;

		if (!err)
			continue;
		finish(EXIT_CANNOT_TEST, "cannot test: io_uring_queue_init with "
		       "setup '%s' (flags 0x%x) failed: %s (%s)%s",
		       opts.setup->name, opts.setup->flags, strerror(err),
		       errno_name(err) ? errno_name(err) : "?",
		       err == EPERM ? "; io_uring disabled by sysctl "
		       "kernel.io_uring_disabled, or SQPOLL not permitted" :
		       err == EINVAL ? "; the kernel lacks a setup flag" : "");
	}
}

/* Last resort if even the watchdog thread cannot act: async-signal-safe. */
static void alarm_handler(int sig)
{
	static const char line[] = "reproduced: global watchdog: the run "
		"outlived its time budget; a thread is stuck in the kernel\n";
	int unclaimed = 0;

	(void)sig;
	if (atomic_compare_exchange_strong(&verdict, &unclaimed,
					   EXIT_REPRODUCED + 1)) {
		if (write(STDOUT_FILENO, line, sizeof(line) - 1) < 0)
			_exit(EXIT_REPRODUCED);
	}
	_exit(atomic_load(&verdict) - 1);
}

/*
 * A worker's bounded waits return by its iteration deadline; one whose
 * iteration (or ring exit) began two deadlines ago is stuck in the kernel.
 */
static bool watch_workers(const struct worker *workers)
{
	uint64_t limit = 2ULL * opts.wait_s * NSEC_PER_SEC;
	uint64_t now = now_ns();
	bool all_done = true;

	for (unsigned i = 0; i < opts.threads; i++) {
		const struct worker *w = &workers[i];
		int phase = atomic_load_explicit(&w->phase, memory_order_acquire);
		uint64_t since = atomic_load_explicit(&w->heartbeat_ns,
						      memory_order_relaxed);

		if (phase == PHASE_DONE)
			continue;
		all_done = false;
		if (now > since && now - since > limit)
			finish(EXIT_REPRODUCED, "reproduced: watchdog: thread %u "
			       "stuck in %s for %.1f s at iteration %" PRIu64
			       " (the bounded wait did not return)", i,
			       phase_names[phase], (double)(now - since) / 1e9,
			       atomic_load_explicit(&w->heartbeat_iteration,
						    memory_order_relaxed));
	}
	return all_done;
}

static void report_success(const struct worker *workers, uint64_t start_ns)
{
	static const int cancel_keys[] = { 0, -ENOENT, -EALREADY };
	/* The kernel treats ANY as ANY|ALL (io_uring/cancel.c: "all = flags &
	 * (IORING_ASYNC_CANCEL_ALL|IORING_ASYNC_CANCEL_ANY)"), so its res is
	 * the number of requests canceled, 0 when none matched. */
	static const int any_cancel_keys[] = { 0, 1, 2 };
	static const int read_keys[] = { 8, -ECANCELED, -EINTR };
	static const int write_keys[] = { 8 };
	struct histogram cancels = { 0 }, reads = { 0 }, writes = { 0 };
	char cancel_text[256], read_text[256], write_text[256] = "";
	char unexpected_writes[224];
	uint64_t iterations = 0, end_ns = start_ns;
	double seconds;

	for (unsigned i = 0; i < opts.threads; i++) {
		iterations += workers[i].iterations_done;
		histogram_merge(&cancels, &workers[i].cancel_results);
		histogram_merge(&reads, &workers[i].read_results);
		histogram_merge(&writes, &workers[i].write_results);
		if (workers[i].end_ns > end_ns)
			end_ns = workers[i].end_ns;
	}
	if (opts.quiet)
		_exit(EXIT_BEHAVED);	/* every worker has been joined */
	seconds = (double)(end_ns - start_ns) / 1e9;
	histogram_format(&cancels, opts.cancel_mode == CANCEL_ANY ?
			 any_cancel_keys : cancel_keys, 3, cancel_text,
			 sizeof(cancel_text));
	histogram_format(&reads, read_keys, 3, read_text, sizeof(read_text));
	/* eventfd(2): a write adds its 8-byte value and returns 8. */
	if (histogram_count(&writes, 8) != iterations) {
		histogram_format(&writes, write_keys, 1, unexpected_writes,
				 sizeof(unexpected_writes));
		snprintf(write_text, sizeof(write_text), ", write results %s",
			 unexpected_writes);
	}
	finish(EXIT_BEHAVED, "ok: %u threads, %" PRIu64 " iterations, %.0f it/s, "
	       "cancel results %s, read results %s%s (setup %s, cancel by %s, "
	       "write value %" PRIu64 "%s)", opts.threads, iterations,
	       seconds > 0 ? iterations / seconds : 0.0, cancel_text, read_text,
	       write_text, opts.setup->name, cancel_mode_names[opts.cancel_mode],
	       opts.write_value, opts.async_write ? ", async write" : "");
}

static void open_eventfds(void)
{
	eventfds = calloc(opts.threads, sizeof(*eventfds));
	if (!eventfds)
		finish(EXIT_CANNOT_TEST, "cannot test: out of memory");
	for (unsigned i = 0; i < opts.threads; i++) {
		/* Blocking eventfds: with EFD_NONBLOCK io_uring would hand
		 * -EAGAIN back instead of waiting, and there is no race. */
		eventfds[i] = eventfd(0, EFD_CLOEXEC);
		if (eventfds[i] < 0)
			finish(EXIT_CANNOT_TEST, "cannot test: eventfd: %s",
			       strerror(errno));
	}
}

static struct worker *start_workers(void)
{
	size_t size = opts.threads * sizeof(struct worker);
	struct worker *workers = aligned_alloc(64, size);

	if (!workers)
		finish(EXIT_CANNOT_TEST, "cannot test: out of memory");
	memset(workers, 0, size);
	pthread_barrier_init(&setup_barrier, NULL, opts.threads + 1);
	for (unsigned n = 0; n < opts.threads; n++) {
		struct worker *w = &workers[n];
		int err;

		w->index = n;
		w->read_fd[0] = eventfds[n];
		w->read_fd[1] = eventfds[(n + 1) % opts.threads];
		w->write_fd = eventfds[(n + 2) % opts.threads];
		w->write_buf = opts.write_value;
		set_phase(w, PHASE_SETUP, now_ns());
		err = pthread_create(&w->thread, NULL, worker_main, w);
		if (err)
			finish(EXIT_CANNOT_TEST, "cannot test: pthread_create: %s",
			       strerror(err));
	}
	return workers;
}

int main(int argc, char **argv)
{
	const struct timespec poll_interval = { 0, 50 * 1000 * 1000 };
	struct sigaction on_alarm = { .sa_handler = alarm_handler };
	sigset_t alarm_only;
	struct worker *workers;
	uint64_t start_ns;

	parse_options(argc, argv);
	/* Budget: run time, the last iteration's deadline, the watchdog's grace,
	 * and setup/teardown slack. Workers block SIGALRM so that the handler
	 * runs on this thread, which never blocks in io_uring_enter. */
	sigaction(SIGALRM, &on_alarm, NULL);
	sigemptyset(&alarm_only);
	sigaddset(&alarm_only, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &alarm_only, NULL);
	alarm(opts.duration_s + 3 * opts.wait_s + 10);

	open_eventfds();
	workers = start_workers();
	pthread_sigmask(SIG_UNBLOCK, &alarm_only, NULL);
	pthread_barrier_wait(&setup_barrier);
	start_ns = now_ns();
	setup_refused(workers);

	while (!watch_workers(workers))
		nanosleep(&poll_interval, NULL);
	for (unsigned i = 0; i < opts.threads; i++)
		pthread_join(workers[i].thread, NULL);
	report_success(workers, start_ns);
}
