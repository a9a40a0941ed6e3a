#include "emit_c.h"

#include "exec_core_text.h"
#include "util.h"

namespace uc::explore {

namespace {

// A comment line must not close the comment it sits in.
std::string comment_safe(std::string text) {
    for (size_t at; (at = text.find("*/")) != std::string::npos;) text.replace(at, 2, "* /");
    return text;
}

const char* const kMain = R"UC_MAIN(
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
)UC_MAIN";

}  // namespace

std::string reproducer_name(const Finding& f) { return str("found-", f.rule, "-", f.seed, "-r", f.round, ".c"); }

std::string reproducer_source(const Finding& f) {
    std::string steps;
    for (const xstep& s : f.program.steps)
        steps += str("\t{", unsigned(s.op), ", ", unsigned(s.file), ", ", unsigned(s.key), ", 0, ", s.id, ", ", s.len,
                     ", ", s.usec, ", ", s.count, ", ", s.target, "},\t/* ", comment_safe(describe(s)), " */\n");
    std::string listing;
    for (const xstep& s : f.program.steps) listing += " *   " + comment_safe(describe(s)) + "\n";
    std::string header = str(
        "/* SPDX-License-Identifier: MIT */\n"
        "/*\n"
        " * Description: a request mix found by `uring-conform explore` that breaks\n"
        " *\t\tthe rule \"", f.rule, "\".\n"
        " *\n"
        " * Seed ", f.seed, ", round ", f.round, " (`uring-conform explore --seed ", f.seed,
        "` regenerates it), found on\n * kernel ", comment_safe(f.kernel), "; setup ", xsetup_name(f.program.setup), "; shrunk from ",
        f.original_steps, " to ", f.program.steps.size(), " steps, reproduced in ", f.reproduced, ".\n"
        " * Violation: ", comment_safe(f.check), "\n"
        " *\n"
        " * Program (user_data = step id + 1; link timeouts | 1<<40, the drain's\n"
        " * cancels | 1<<41 with their attempt number << 44):\n", listing,
        " * then the drain: every writer closed, every request without its final CQE\n"
        " * canceled by user_data, CQEs reaped until none is outstanding or the\n"
        " * deadline passes, the streams read out by hand, io_uring_queue_exit().\n"
        " *\n"
        " * Rules checked (xcheck below; the harness's oracle is\n"
        " * harness/checks/explore_oracle.cpp): one final CQE per request, only\n"
        " * multishot CQEs carry IORING_CQE_F_MORE (io_uring_multishot(7)); results\n"
        " * the request's man page allows; 0 bytes only after the writer closed;\n"
        " * a cancel returning 0 or a count canceled that many; a provided buffer\n"
        " * handed out only while provided; bytes written = bytes read per stream;\n"
        " * no CQE for an unknown user_data; nothing outstanding after the drain.\n"
        " *\n"
        " * Exit codes follow `git bisect run`: 0 no rule broke in any attempt,\n"
        " * 1 reproduced, 125 cannot test (io_uring or a feature refused), 129 bad\n"
        " * usage. Options: -n ATTEMPTS (100), -d SECONDS (20), -q, -h.\n"
        " *\n"
        " * Build: cc FILE.c -luring\n"
        " */\n");
    // Before any libc header: exec_core.h's own includes must see it too.
    std::string out = header + "#define _GNU_SOURCE\n";
    out += kExecCoreText;
    out += "\n#include <signal.h>\n#include <getopt.h>\n\n";
    out += str("#define PROGRAM_SETUP ", f.program.setup, "\t/* ", xsetup_name(f.program.setup), " */\n");
    out += "#define DRAIN_MS 5000\n";
    out += "#define FOUND_RULE \"" + f.rule + "\"\n\n";
    out += "static const struct xstep steps[] = {\n" + steps + "};\n";
    out += kMain;
    return out;
}

}  // namespace uc::explore
