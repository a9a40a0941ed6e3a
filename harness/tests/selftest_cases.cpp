// Self-test scenarios: deliberately broken bodies that prove the runner turns
// each way a scenario can go wrong into the right verdict. Built only into
// the test binaries, never into uring-conform itself.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;

// A real multishot poll, checked against a wrong terminal cause: must come
// out as fail, with the kernel's CQEs as evidence.
const Register broken_contract{{
    .family = "selftest",
    .name = "wrong-final-res",
    .summary = "expects res 0 where poll remove gives -ECANCELED: must be reported as fail with CQE evidence",
    .needs = {needs_op(IORING_OP_POLL_ADD)},
    .body = [](Ctx& ctx) {
        Ring ring(ctx, Setup::none);
        Pipe pipe = make_pipe(ctx);
        io_uring_prep_poll_multishot(ring.sqe(1, "multishot poll"), pipe.read.get(), POLLIN);
        ring.submit();
        send_all(ctx, pipe.write.get(), "x", 1);
        ring.wait();
        io_uring_prep_poll_remove(ring.sqe(2, "poll remove"), 1);
        ring.submit();
        ring.reap_until_final(1);
        ctx.expect(multishot_contract(ring.trace().all(), 1, {.final_res = {0}}));
    }}};

// Blocks in io_uring_enter on a read that never completes: the ring helper
// must report a hang naming the outstanding request.
const Register stuck_read{{
    .family = "selftest",
    .name = "stuck-read",
    .summary = "waits for a pipe read that never completes: must be reported as hang with the outstanding request",
    .body = [](Ctx& ctx) {
        Ring ring(ctx, Setup::none);
        Pipe pipe = make_pipe(ctx);
        static char byte;
        io_uring_prep_read(ring.sqe(42, "read of an empty pipe"), pipe.read.get(), &byte, 1, 0);
        ring.submit();
        ring.wait();
    }}};

// Ignores every deadline: only the watchdog can end it.
const Register sleeper{{
    .family = "selftest",
    .name = "ignores-watchdog",
    .summary = "sleeps past its deadline: the watchdog must kill it and report hang",
    .body = [](Ctx&) {
        for (;;) pause();
    }}};

const Register segfault{{
    .family = "selftest",
    .name = "crash-segv",
    .summary = "dies of SIGSEGV: must be reported as crash naming the signal",
    .body = [](Ctx&) { raise(SIGSEGV); }}};

const Register abort_body{{
    .family = "selftest",
    .name = "crash-abort",
    .summary = "aborts: must be reported as crash naming SIGABRT",
    .body = [](Ctx&) { std::abort(); }}};

const Register early_exit{{
    .family = "selftest",
    .name = "exit-without-verdict",
    .summary = "exits before reporting: must be reported as error",
    .body = [](Ctx&) { _exit(7); }}};

const Register skip_after_fail{{
    .family = "selftest",
    .name = "skip-after-fail",
    .summary = "records a broken rule then skips: the fail must win",
    .body = [](Ctx& ctx) {
        ctx.expect(Check::fail("rule broken first"));
        ctx.skip("skipping later must not hide the failure");
    }}};

}  // namespace
