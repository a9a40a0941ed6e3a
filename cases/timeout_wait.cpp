// Waiting with a timeout, after io_uring_wait_cqe_timeout(3),
// io_uring_submit_and_wait_timeout(3), io_uring_enter(2)
// (IORING_ENTER_EXT_ARG) and io_uring_submit_and_wait_min_timeout(3)
// (IORING_FEAT_MIN_TIMEOUT, struct io_uring_getevents_arg.min_wait_usec):
// -ETIME only when nothing came, the CQE when something did, min_wait's
// batch rules, several waiters woken, overflowed CQEs returned.
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "net.h"
#include "timeout_common.h"

namespace {

using namespace uc;
using namespace uc::timeouts;

// io_uring_enter(2) with IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG: waits
// for `wait_nr` CQEs, at most `ts_ns`, with a min_wait of `min_wait_us` (0:
// none); the observation for wait_outcome().
WaitObservation enter_wait(io_uring* ring, unsigned wait_nr, int64_t ts_ns, unsigned min_wait_us) {
    __kernel_timespec ts = timespec_of(ts_ns);
    io_uring_getevents_arg arg{};
    arg.ts = reinterpret_cast<uint64_t>(&ts);
    compat::set_min_wait_usec(arg, min_wait_us);
    WaitObservation o;
    o.started_ns = int64_t(now_ns());
    int ret = io_uring_enter2(ring->ring_fd, 0, wait_nr, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                             reinterpret_cast<sigset_t*>(&arg), sizeof(arg));  // liburing 2.3 types arg as the sigset
    o.returned_ns = int64_t(now_ns());
    o.ret = ret < 0 ? ret : 0;
    o.cqes_ready = io_uring_cq_ready(ring);
    return o;
}

enum class Api { wait_cqe_timeout, submit_and_wait_timeout, enter_ext_arg };
struct WaitParams {
    Setup setup = Setup::none;
    Api api = Api::wait_cqe_timeout;
};
const char* api_call(Api api) {
    return api == Api::wait_cqe_timeout ? "io_uring_wait_cqe_timeout"
           : api == Api::submit_and_wait_timeout ? "io_uring_submit_and_wait_timeout"
                                                 : "io_uring_enter(GETEVENTS|EXT_ARG)";
}

// One wait for a single CQE through `api`, at most `ts_ns`; submits what is queued.
WaitObservation wait_one(Ring& ring, Api api, int64_t ts_ns) {
    if (api != Api::submit_and_wait_timeout) ring.submit();
    if (api == Api::enter_ext_arg) return enter_wait(ring.get(), 1, ts_ns, 0);
    __kernel_timespec ts = timespec_of(ts_ns);
    io_uring_cqe* cqe = nullptr;
    WaitObservation o;
    o.started_ns = int64_t(now_ns());
    int ret = api == Api::wait_cqe_timeout ? io_uring_wait_cqe_timeout(ring.get(), &cqe, &ts)
                                           : io_uring_submit_and_wait_timeout(ring.get(), &cqe, 1, &ts, nullptr);
    o.returned_ns = int64_t(now_ns());
    // io_uring_submit_and_wait_timeout(3) returns the number submitted (0 in older liburing).
    o.ret = ret < 0 ? ret : 0;
    o.cqes_ready = io_uring_cq_ready(ring.get());
    return o;
}

const auto kWaitVariants = grid(setups(&WaitParams::setup, all_setups()),
                                axis("api", &WaitParams::api, {{Api::wait_cqe_timeout, "wait_cqe_timeout"},
                                                               {Api::submit_and_wait_timeout, "submit_and_wait_timeout"},
                                                               {Api::enter_ext_arg, "enter_ext_arg"}}));

const Register<WaitParams> wait_idle{{
    .family = family,
    .name = "wait-idle-etime",
    .summary = "a 10 ms wait with nothing pending returns -ETIME, not before 10 ms, within the late bound",
    .needs = {needs_feature(IORING_FEAT_EXT_ARG, "EXT_ARG")},
    .variants = kWaitVariants,
    .body = [](Ctx& ctx, const WaitParams& p) {
        Ring ring(ctx, p.setup);
        WaitObservation o = wait_one(ring, p.api, 10 * kMs);
        // io_uring_wait_cqe_timeout(3): "If a timeout occurs, it will return
        // -ETIME"; io_uring_enter(2): "this time value indicates the timeout
        // for waiting on events".
        ctx.expect(wait_outcome(o, {str(api_call(p.api), "(10 ms), nothing pending"), -ETIME, 10 * kMs,
                                    10 * kMs + kLateBoundNs, 0}));
        ctx.metric("wait_etime_latency_p50_us", (o.returned_ns - o.started_ns - 10 * kMs) / 1000);
    }}};

const Register<WaitParams> wait_completion{{
    .family = family,
    .name = "wait-completion-returns",
    .summary = "a 2 s wait while a 5 ms timeout request is pending returns 0 with its CQE once it expires",
    .needs = {needs_feature(IORING_FEAT_EXT_ARG, "EXT_ARG"), needs_op(IORING_OP_TIMEOUT)},
    .variants = kWaitVariants,
    .body = [](Ctx& ctx, const WaitParams& p) {
        Ring ring(ctx, p.setup);
        __kernel_timespec five_ms = timespec_of(5 * kMs);
        io_uring_prep_timeout(ring.sqe(kTimeout, "timeout"), &five_ms, 0, 0);
        WaitObservation o = wait_one(ring, p.api, 2'000 * kMs);
        // io_uring_wait_cqe_timeout(3): "On success ... returns 0 and the
        // cqe_ptr param is filled in"; the wait ends when the CQE is posted,
        // long before its own 2 s.
        ctx.expect(wait_outcome(o, {str(api_call(p.api), "(2 s) with a 5 ms timeout pending"), 0, 0,
                                    5 * kMs + kLateBoundNs, 1}));
        ring.settle(kQuietNs);
        ctx.expect(single_completion(ring.trace().all(), kTimeout, {-ETIME}));
    }}};

// --- min_wait (IORING_FEAT_MIN_TIMEOUT) ---

enum class MinCase { batch_ready, some_after_min, none_then_one, none_etime };
struct MinParams {
    Setup setup = Setup::none;
    MinCase what = MinCase::batch_ready;
};

constexpr unsigned kBatch = 4;
constexpr int64_t kMinWaitNs = 10 * kMs;

// Writes one 8-byte value to `fd` after `delay_ns`, from a thread; joined by the destructor.
class DelayedWrite {
  public:
    DelayedWrite(int fd, int64_t delay_ns)
        : thread_([fd, delay_ns] {
              std::this_thread::sleep_for(std::chrono::nanoseconds(delay_ns));
              uint64_t v = 1;
              ssize_t ignored = write(fd, &v, sizeof(v));
              (void)ignored;
          }) {}
    ~DelayedWrite() { thread_.join(); }

  private:
    std::thread thread_;
};

const Register<MinParams> min_wait{{
    .family = family,
    .name = "min-wait",
    .summary = "min_wait_usec: a full batch returns at once; after min_wait any CQE returns 0; none keeps waiting to ts",
    .needs = {needs_feature(IORING_FEAT_MIN_TIMEOUT, "MIN_TIMEOUT"), needs_op(IORING_OP_READ)},
    .variants = grid(setups(&MinParams::setup, all_setups()),
                     axis("case", &MinParams::what,
                          {{MinCase::batch_ready, "batch-ready"}, {MinCase::some_after_min, "some-after-min"},
                           {MinCase::none_then_one, "none-then-one"}, {MinCase::none_etime, "none-etime"}})),
    .body = [](Ctx& ctx, const MinParams& p) {
        Ring ring(ctx, p.setup);
        Pipe pipe = make_pipe(ctx);
        uint64_t buf = 0;
        const unsigned min_us = unsigned(kMinWaitNs / 1000);
        WaitObservation o;
        WaitExpect e;
        if (p.what == MinCase::batch_ready) {
            for (unsigned i = 0; i < kBatch; ++i) io_uring_prep_nop(ring.sqe(kNopBase + i, "nop"));
            ring.submit();
            // "If the requested number of completions have been received within
            // min_wait_usec number of microseconds, then the function returns successfully."
            o = enter_wait(ring.get(), kBatch, 2'000 * kMs, min_us);
            e = {"wait_nr 4, min_wait 10 ms, ts 2 s, 4 NOPs completed", 0, 0, kLateBoundNs, kBatch};
        } else if (p.what == MinCase::some_after_min) {
            io_uring_prep_read(ring.sqe(kTarget, "pipe read"), pipe.read.get(), &buf, sizeof(buf), 0);
            ring.submit();
            DelayedWrite writer(pipe.write.get(), 2 * kMs);
            // "once min_wait_usec time has passed, control is returned if any
            // completions have been posted": one of four, so not before min_wait,
            // and not -ETIME.
            o = enter_wait(ring.get(), kBatch, 2'000 * kMs, min_us);
            e = {"wait_nr 4, min_wait 10 ms, ts 2 s, one read completed after 2 ms", 0, kMinWaitNs, kMinWaitNs + kLateBoundNs, 1};
        } else if (p.what == MinCase::none_then_one) {
            io_uring_prep_read(ring.sqe(kTarget, "pipe read"), pipe.read.get(), &buf, sizeof(buf), 0);
            ring.submit();
            DelayedWrite writer(pipe.write.get(), kMinWaitNs + 15 * kMs);
            // "If no completions have been posted, the kernel switches to a normal
            // wait of up to ts ... If any completions are posted after this
            // happens, control is returned immediately to the application."
            o = enter_wait(ring.get(), kBatch, 2'000 * kMs, min_us);
            e = {"wait_nr 4, min_wait 10 ms, ts 2 s, one read completed after 25 ms", 0, 0, kMinWaitNs + 15 * kMs + kLateBoundNs, 1};
        } else {
            // The normal wait is "up to ts specified amount of time, subtracting
            // the time already waited": -ETIME at ts from the start.
            o = enter_wait(ring.get(), kBatch, 30 * kMs, min_us);
            e = {"wait_nr 4, min_wait 10 ms, ts 30 ms, nothing pending", -ETIME, 30 * kMs, 30 * kMs + kLateBoundNs, 0};
        }
        // io_uring_submit_and_wait_min_timeout(3): "The most common failure case
        // is not receiving a completion within the specified timeout, -ETIME is
        // returned in this case" - and only then.
        ctx.expect(wait_outcome(o, e));
        ctx.metric("min_wait_return_ms", double(o.returned_ns - o.started_ns) / 1e6);
        reap_final_by(ring, kTarget, now_ns() + 200 * kMs);
        ring.settle(kQuietNs);
    }}};

// --- several waiters ---

// True once thread `tid` is inside io_uring_enter (its /proc syscall line
// starts with the syscall number); false if that cannot be read.
bool in_io_uring_enter(pid_t tid) {
    std::ifstream in(str("/proc/self/task/", tid, "/syscall"));
    long nr = -1;
    return bool(in >> nr) && nr == SYS_io_uring_enter;
}

const Register<SetupOnly> waiters_woken{{
    .family = family,
    .name = "waiters-all-woken",
    .summary = "three threads waiting for 1, 2 and 3 CQEs on one ring all return 0 once 3 NOPs complete",
    .needs = {needs_feature(IORING_FEAT_EXT_ARG, "EXT_ARG")},
    // DEFER_TASKRUN needs SINGLE_ISSUER: one task may wait there.
    .variants = grid(setups(&SetupOnly::setup, {Setup::none, Setup::coop_taskrun, Setup::sqpoll})),
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup);
        constexpr unsigned kWaiters = 3;
        WaitObservation seen[kWaiters];
        std::atomic<pid_t> tids[kWaiters] = {};
        {
            std::vector<std::jthread> waiters;
            for (unsigned i = 0; i < kWaiters; ++i)
                waiters.emplace_back([&, i] {
                    tids[i] = pid_t(syscall(SYS_gettid));
                    seen[i] = enter_wait(ring.get(), i + 1, 2'000 * kMs, 0);
                });
            // Bounded: until every waiter sleeps in io_uring_enter, at most 1 s.
            bool all_in = false;
            for (uint64_t until = now_ns() + 1'000 * kMs; !all_in && now_ns() < until;) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
                all_in = true;
                for (auto& tid : tids) all_in = all_in && tid != 0 && in_io_uring_enter(tid);
            }
            ctx.metric("waiters_seen_blocked", all_in);
            for (unsigned i = 0; i < kWaiters; ++i) io_uring_prep_nop(ring.sqe(kNopBase + i, "nop"));
            ring.submit();
        }
        // io_uring_enter(2): with IORING_ENTER_GETEVENTS the call waits for
        // min_complete events; posted CQEs satisfy every waiter that asked for
        // no more than are there (none of them reaps).
        for (unsigned i = 0; i < kWaiters; ++i)
            ctx.expect(wait_outcome(seen[i], {str("waiter ", i + 1, " of ", kWaiters, ": wait for ", i + 1, " CQEs, 2 s, then 3 NOPs"),
                                              0, 0, kLateBoundNs + 1'000 * kMs, i + 1}));
        ring.settle(kQuietNs);
    }}};

// --- CQ overflow ---

const Register<SetupOnly> wait_overflow{{
    .family = family,
    .name = "wait-overflow-returns",
    .summary = "12 NOPs into an 8-entry CQ: io_uring_wait_cqe_timeout returns all 12 (overflowed ones too), then -ETIME",
    .needs = {needs_feature(IORING_FEAT_NODROP, "NODROP"), needs_feature(IORING_FEAT_EXT_ARG, "EXT_ARG")},
    .variants = grid(setups(&SetupOnly::setup, all_setups())),
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup, 8);
        constexpr unsigned kNops = 12;
        for (unsigned i = 0; i < kNops; ++i) io_uring_prep_nop(ring.sqe(kNopBase + i, "nop"));
        ring.submit();
        // io_uring_setup(2) IORING_FEAT_NODROP: completions that do not fit are
        // kept and handed out once the CQ has room; a wait must return them
        // rather than time out (io_uring_wait_cqe_timeout(3): -ETIME only when
        // "a timeout occurs").
        unsigned got = 0;
        for (; got < kNops; ++got)
            if (!ring.wait_for(uint64_t(100 * kMs))) break;
        ctx.expect_eq(got, kNops, "CQEs returned by 100 ms waits after 12 NOPs into an 8-entry CQ");
        ctx.metric("cq_overflow_counter", ring.cq_overflow());
        ctx.expect_true(!ring.wait_for(uint64_t(10 * kMs)), "a 13th CQE after 12 NOPs");
        for (unsigned i = 0; i < kNops; ++i) ctx.expect(single_completion(ring.trace().all(), kNopBase + i, {0}));
    }}};

}  // namespace
