// Self-test scenarios: deliberately broken bodies that prove the runner turns
// each way a scenario can go wrong into the right verdict. Built only into
// the test binaries, never into uring-conform itself.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;

const Family selftest{"selftest"};

// A real multishot poll, checked against a wrong terminal cause: must come
// out as fail, with the kernel's CQEs as evidence.
const Register<NoParams> broken_contract{{
    .family = selftest,
    .name = "wrong-final-res",
    .summary = "expects res 0 where poll remove gives -ECANCELED: must be reported as fail with CQE evidence",
    .needs = {needs_op(IORING_OP_POLL_ADD)},
    .body = [](Ctx& ctx, const NoParams&) {
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
const Register<NoParams> stuck_read{{
    .family = selftest,
    .name = "stuck-read",
    .summary = "waits for a pipe read that never completes: must be reported as hang with the outstanding request",
    .body = [](Ctx& ctx, const NoParams&) {
        Ring ring(ctx, Setup::none);
        Pipe pipe = make_pipe(ctx);
        static char byte;
        io_uring_prep_read(ring.sqe(42, "read of an empty pipe"), pipe.read.get(), &byte, 1, 0);
        ring.submit();
        ring.wait();
    }}};

// Ignores every deadline: only the watchdog can end it.
const Register<NoParams> sleeper{{
    .family = selftest,
    .name = "ignores-watchdog",
    .summary = "sleeps past its deadline: the watchdog must kill it and report hang",
    .body = [](Ctx&, const NoParams&) {
        for (;;) pause();
    }}};

const Register<NoParams> segfault{{
    .family = selftest,
    .name = "crash-segv",
    .summary = "dies of SIGSEGV: must be reported as crash naming the signal",
    .body = [](Ctx&, const NoParams&) { raise(SIGSEGV); }}};

const Register<NoParams> abort_body{{
    .family = selftest,
    .name = "crash-abort",
    .summary = "aborts: must be reported as crash naming SIGABRT",
    .body = [](Ctx&, const NoParams&) { std::abort(); }}};

const Register<NoParams> early_exit{{
    .family = selftest,
    .name = "exit-without-verdict",
    .summary = "exits before reporting: must be reported as error",
    .body = [](Ctx&, const NoParams&) { _exit(7); }}};

const Register<NoParams> skip_after_fail{{
    .family = selftest,
    .name = "skip-after-fail",
    .summary = "records a broken rule then skips: the fail must win",
    .body = [](Ctx& ctx, const NoParams&) {
        ctx.expect(Check::fail("rule broken first"));
        ctx.skip("skipping later must not hide the failure");
    }}};

// Nothing: the runner's own cost per scenario (fork, pipes, watchdog, kernel checks).
const Register<NoParams> empty{{
    .family = selftest,
    .name = "empty",
    .summary = "does nothing: must pass; measures the runner's overhead per scenario",
    .body = [](Ctx&, const NoParams&) {}}};

void leak_a_sleeper(Ctx& ctx, const char* metric, bool escape_group) {
    pid_t pid = fork();
    if (pid < 0) ctx.error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        if (escape_group) setsid();  // out of the scenario's process group and session
        for (;;) pause();
    }
    ctx.metric(metric, pid);
}

// Leaves open descriptors (pipes, an io_uring) and two live processes, one
// in its own session: the runner must kill and reap both and lose no fd.
const Register<NoParams> leaks{{
    .family = selftest,
    .name = "leak-fds-and-children",
    .summary = "leaves fds and two sleeping children (one setsid'd) behind: none may outlive the scenario",
    .body = [](Ctx& ctx, const NoParams&) {
        for (int i = 0; i < 16; ++i) {
            int fds[2];
            if (pipe(fds) < 0) ctx.error(std::string("pipe: ") + std::strerror(errno));
        }
        auto* ring = new io_uring;  // never exited nor freed
        if (int ret = io_uring_queue_init(8, ring, 0); ret < 0) ctx.error("io_uring_queue_init: " + errno_name(ret));
        leak_a_sleeper(ctx, "child_pid", false);
        leak_a_sleeper(ctx, "escaped_pid", true);
    }}};

// Writes this many bytes (lines with bytes that are not UTF-8) and passes:
// the runner must keep only a tail, count the rest, and stay valid JSON.
constexpr size_t kFloodBytes = 16 << 20;

void write_flood_chunk(const char* chunk, size_t size) {
    for (size_t done = 0; done < size;) {
        ssize_t n = write(STDOUT_FILENO, chunk + done, size - done);
        if (n <= 0) _exit(1);
        done += size_t(n);
    }
}

std::string flood_chunk() {
    std::string chunk;
    while (chunk.size() < 65536 - 64) chunk += "flood line \xff\xfe not UTF-8, <xml> & \"quotes\"\n";
    return chunk;
}

const Register<NoParams> flood{{
    .family = selftest,
    .name = "flood-stdout",
    .summary = "writes 16 MiB to stdout, some bytes not UTF-8: must pass with a bounded output tail",
    .body = [](Ctx& ctx, const NoParams&) {
        std::string chunk = flood_chunk();
        size_t written = 0;
        while (written + chunk.size() <= kFloodBytes) {
            write_flood_chunk(chunk.data(), chunk.size());
            written += chunk.size();
        }
        write_flood_chunk(chunk.data(), kFloodBytes - written);
        ctx.metric("bytes_written", uint64_t(kFloodBytes));
    }}};

// Floods without end and ignores its deadline: the watchdog must still fire
// on time while the runner drains the pipe.
const Register<NoParams> endless_flood{{
    .family = selftest,
    .name = "flood-forever",
    .summary = "writes to stdout without end: the watchdog must still report hang on time",
    .body = [](Ctx&, const NoParams&) {
        std::string chunk = flood_chunk();
        for (;;) write_flood_chunk(chunk.data(), chunk.size());
    }}};

// Kernel findings without breaking the kernel: the test points the runner's
// kernel log and taint sources at files (UC_SELFTEST_KMSG, UC_SELFTEST_TAINT)
// and this body appends a WARN record in /dev/kmsg format and a new taint word.
const Register<NoParams> fake_kernel_warning{{
    .family = selftest,
    .name = "kernel-warning",
    .summary = "a WARN record and taint W appear while it runs: must be reported as fail with the log lines",
    .body = [](Ctx& ctx, const NoParams&) {
        const char* kmsg = std::getenv("UC_SELFTEST_KMSG");
        const char* taint = std::getenv("UC_SELFTEST_TAINT");
        if (!kmsg || !taint) ctx.skip("UC_SELFTEST_KMSG/UC_SELFTEST_TAINT not set (the runner test sets them)");
        Fd log(open(kmsg, O_WRONLY | O_APPEND | O_CLOEXEC));
        Fd word(open(taint, O_WRONLY | O_TRUNC | O_CLOEXEC));
        if (!log || !word) ctx.error(std::string("open selftest kernel files: ") + std::strerror(errno));
        const std::string records =
            "6,900,1000,-;io_uring: unrelated line before the splat\n"
            "4,901,1001,-;------------[ cut here ]------------\n"
            "4,902,1002,-;WARNING: CPU: 1 PID: 42 at io_uring/io_uring.c:123 io_selftest+0x10/0x20\n"
            " SUBSYSTEM=selftest\n"
            "4,903,1003,-;Call Trace:\n"
            "12,904,1004,-;WARNING: written by userspace, not the kernel\n";
        if (write(log.get(), records.data(), records.size()) != ssize_t(records.size()) || write(word.get(), "512\n", 4) != 4)
            ctx.error(std::string("write selftest kernel files: ") + std::strerror(errno));
    }}};

}  // namespace
