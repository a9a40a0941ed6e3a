// Kernel performance as behaviour: per kernel, ratios of two ways of doing
// the same work, measured side by side in one scenario so that host load and
// machine speed cancel out. They go into the report's metrics; names ending
// in `_ratio` are what `compare` flags when they move past its noise
// threshold (see bench/README.md for how that threshold was derived).
//
// Nothing here asserts a time. A variant fails only when the kernel breaks a
// functional rule on the way (a lost byte, a wrong res, a missing CQE).
//
// Method: the two ways alternate (A, B, A, B, ...) in short timed samples
// (tens of microseconds) until the time budget is spent; a ratio is taken of
// the medians. Alternation puts both under the same load drift; a sample is
// much shorter than a scheduler time slice, so a preemption spoils only the
// samples it lands on, and the median ignores them.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "bufring.h"
#include "net.h"
#include "ring.h"
#include "scenario.h"

namespace {

using namespace uc;

// Task-work delivery is what differs most between setup modes and kernels.
const Family perf{"perf"};
const auto kVariants = grid(setups(&SetupOnly::setup, {Setup::none, Setup::defer_taskrun}));

double budget_s(const Ctx& ctx) { return ctx.budget_s(0.4, 2, 10); }

double quantile(std::vector<double> values, double q) {
    if (values.empty()) return 0;
    size_t at = size_t(q * double(values.size() - 1) + 0.5);
    std::nth_element(values.begin(), values.begin() + long(at), values.end());
    return values[at];
}

struct Alternated {
    std::vector<double> a_ns, b_ns;
};

// Enough samples that the median ignores a few stalled ones: under TCG on a
// loaded host a vCPU can stand still for half a second, longer than a quick
// budget, and a median of one sample is that stall.
constexpr size_t kMinSamples = 16;

// Calls `a` and `b` in turn until `budget_s` has passed and each ran at least
// kMinSamples times, but never past three budgets; each returns the
// nanoseconds of the part it times.
template <typename A, typename B>
Alternated alternate(double budget_s, A&& a, B&& b) {
    Alternated out;
    uint64_t start = now_ns(), end = start + uint64_t(budget_s * 1e9), last = start + uint64_t(3 * budget_s * 1e9);
    do {
        out.a_ns.push_back(a());
        out.b_ns.push_back(b());
    } while ((now_ns() < end || out.a_ns.size() < kMinSamples) && now_ns() < last);
    return out;
}

double per_second(double ops, double ns) { return ns > 0 ? ops * 1e9 / ns : 0; }

// --- multishot vs one-shot recv ---

constexpr uint64_t kOneShot = 1, kMultishot = 2, kCancel = 3;
constexpr uint16_t kGroup = 1;
constexpr size_t kMessage = 64;
constexpr int kMessagesPerSample = 8;

// Two loopback TCP connections on one ring: one read by a one-shot recv
// armed before each message, one by a single multishot recv whose buffers
// are recycled at once. Every byte is checked against what was sent.
class RecvRace {
  public:
    RecvRace(Ctx& ctx, Setup setup)
        : ctx_(ctx), ring_(ctx, setup, 64), oneshot_(tcp_loopback(ctx)),
          multishot_(tcp_loopback(ctx)), bufs_(ring_, kGroup, 16, kMessage) {
        io_uring_sqe* sqe = ring_.sqe(kMultishot, "multishot recv");
        io_uring_prep_recv_multishot(sqe, multishot_.server.get(), nullptr, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = kGroup;
        ring_.submit();
    }

    double oneshot_sample() {
        uint64_t start = now_ns();
        for (int i = 0; i < kMessagesPerSample; ++i) {
            arm_oneshot();
            send_message(oneshot_, &oneshot_sent_);
            while (oneshot_received_ < oneshot_sent_) {
                dispatch(ring_.wait());
                if (oneshot_received_ < oneshot_sent_ && !oneshot_armed_) arm_oneshot();
            }
        }
        return double(now_ns() - start);
    }

    double multishot_sample() {
        uint64_t start = now_ns();
        for (int i = 0; i < kMessagesPerSample; ++i) {
            send_message(multishot_, &multishot_sent_);
            while (multishot_received_ < multishot_sent_) dispatch(ring_.wait());
        }
        return double(now_ns() - start);
    }

    // Cancels the multishot recv and checks how it ended.
    void finish() {
        io_uring_prep_cancel64(ring_.sqe(kCancel, "async cancel"), kMultishot, 0);
        ring_.submit();
        ring_.reap_until_final(kMultishot);
        ring_.settle(20'000'000);
        // io_uring_multishot(7): canceled, the request "generates a final CQE
        // (typically with -ECANCELED) without IORING_CQE_F_MORE set".
        ctx_.expect(multishot_contract(ring_.trace().all(), kMultishot, {.final_res = {-ECANCELED}}));
        ctx_.expect_eq(multishot_received_, multishot_sent_, "multishot recv: bytes received vs sent");
        ctx_.expect_eq(oneshot_received_, oneshot_sent_, "one-shot recv: bytes received vs sent");
    }

  private:
    void arm_oneshot() {
        io_uring_prep_recv(ring_.sqe(kOneShot, "one-shot recv"), oneshot_.server.get(), buffer_, sizeof(buffer_), 0);
        ring_.submit();
        oneshot_armed_ = true;
    }

    void send_message(SocketPair& pair, uint64_t* sent) {
        std::string data = pattern(*sent, kMessage);
        send_all(ctx_, pair.client.get(), data.data(), data.size());
        *sent += kMessage;
    }

    void dispatch(const Cqe& cqe) {
        if (cqe.user_data == kOneShot) {
            oneshot_armed_ = false;
            // recv(2) on a connected stream socket with data queued returns
            // the bytes read, in order.
            ctx_.must(Check{cqe.res > 0 && pattern(oneshot_received_, size_t(cqe.res)) ==
                                               std::string(buffer_, size_t(cqe.res)),
                            "one-shot recv must return the next bytes sent", cqe});
            oneshot_received_ += uint64_t(cqe.res);
        } else if (cqe.user_data == kMultishot) {
            // io_uring_multishot(7): the request stays armed (F_MORE) while
            // buffers are provided and the peer is connected.
            ctx_.must(Check{cqe.more(), "multishot recv ended while buffers were provided and the peer connected", cqe});
            unsigned bid = cqe.buffer_id();
            ctx_.must(take_stream_buffer(bufs_, cqe, &multishot_received_));
            bufs_.provide(bid);
        } else {
            ctx_.must(Check::fail("CQE for a user_data never submitted", cqe));
        }
    }

    Ctx& ctx_;
    Ring ring_;
    SocketPair oneshot_, multishot_;
    BufRing bufs_;
    char buffer_[kMessage];
    bool oneshot_armed_ = false;
    uint64_t oneshot_sent_ = 0, oneshot_received_ = 0, multishot_sent_ = 0, multishot_received_ = 0;
};

const Register<SetupOnly> recv_multishot_vs_oneshot{{
    .family = perf,
    .name = "recv-multishot-vs-oneshot",
    .summary = "loopback TCP messages/s: one multishot recv vs a one-shot recv armed per message (metrics)",
    .needs = {needs_op(IORING_OP_RECV), needs_op(IORING_OP_ASYNC_CANCEL), needs_buf_ring(),
              needs_capability("recv_multishot")},
    .variants = kVariants,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        RecvRace race(ctx, p.setup);
        Alternated t = alternate(
            budget_s(ctx), [&] { return race.oneshot_sample(); }, [&] { return race.multishot_sample(); });
        race.finish();
        double oneshot = per_second(kMessagesPerSample, quantile(t.a_ns, 0.5));
        double multishot = per_second(kMessagesPerSample, quantile(t.b_ns, 0.5));
        ctx.metric("recv_oneshot_msgs_per_s", std::round(oneshot));
        ctx.metric("recv_multishot_msgs_per_s", std::round(multishot));
        ctx.metric("recv_multishot_vs_oneshot_ratio", multishot / oneshot);
        ctx.add_iterations(2 * kMessagesPerSample * t.a_ns.size());
        ctx.metric("samples_each", t.a_ns.size());
    }}};

// --- NOP batching ---

// Both kinds of sample make the same number of io_uring_enter calls, so they
// last about as long: a preemption (under TCG, a descheduled vCPU) is then as
// likely to land on either kind and shifts neither median.
constexpr unsigned kEntersPerSample = 32;
constexpr unsigned kBatch = 32;

// kEntersPerSample io_uring_enter calls of `batch` NOPs each. Raw liburing on
// purpose: the recorder's ~25 ns per CQE would be a visible share of a batched NOP.
double nop_sample(Ctx& ctx, Ring& ring, unsigned batch) {
    uint64_t start = now_ns();
    for (unsigned done = 0; done < kEntersPerSample * batch; done += batch) {
        for (unsigned i = 0; i < batch; ++i) {
            io_uring_sqe* sqe = io_uring_get_sqe(ring.get());
            io_uring_prep_nop(sqe);
            sqe->user_data = done + i;
        }
        int submitted = io_uring_submit_and_wait(ring.get(), batch);
        if (submitted < 0) ctx.error("io_uring_submit_and_wait: " + errno_name(submitted));
        io_uring_cqe* cqes[kBatch];
        unsigned ready = io_uring_peek_batch_cqe(ring.get(), cqes, batch);
        // io_uring_enter(2): with IORING_ENTER_GETEVENTS the call waits for
        // min_complete events; NOPs never fail ("res 0").
        ctx.must(Check{submitted == int(batch) && ready == batch,
                       str("io_uring_enter took ", submitted, " of ", batch, " NOPs and left ", ready,
                           " CQEs after waiting for ", batch)});
        for (unsigned i = 0; i < ready; ++i)
            if (cqes[i]->res != 0 || cqes[i]->user_data != done + i)
                ctx.must(Check::fail("NOP CQEs come back with res 0, one per NOP",
                                     Cqe{cqes[i]->user_data, cqes[i]->res, cqes[i]->flags, now_ns(), ring.id()}));
        io_uring_cq_advance(ring.get(), ready);
    }
    return double(now_ns() - start);
}

const Register<SetupOnly> nop_batch{{
    .family = perf,
    .name = "nop-batch",
    .summary = "NOPs/s submitted 32 per io_uring_enter vs 1 per io_uring_enter (metrics)",
    .needs = {needs_op(IORING_OP_NOP)},
    .variants = kVariants,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup, 2 * kBatch, kBatch);
        Alternated t = alternate(
            budget_s(ctx), [&] { return nop_sample(ctx, ring, 1); }, [&] { return nop_sample(ctx, ring, kBatch); });
        double single = per_second(kEntersPerSample, quantile(t.a_ns, 0.5));
        double batched = per_second(kEntersPerSample * kBatch, quantile(t.b_ns, 0.5));
        ctx.metric("nop_batch1_per_s", std::round(single));
        ctx.metric("nop_batch32_per_s", std::round(batched));
        ctx.metric("nop_batch32_vs_batch1_ratio", batched / single);
        ctx.add_iterations((1 + kBatch) * kEntersPerSample * t.a_ns.size());
        ctx.metric("samples_each", t.a_ns.size());
    }}};

// --- cancel round trip ---

constexpr uint64_t kRead = 10, kReadCancel = 11, kNop = 12;

// A read of an empty pipe is pending (poll armed) when submit returns; the
// timed part is from submitting its cancel until both CQEs are reaped.
double cancel_sample(Ctx& ctx, Ring& ring, int pipe_read) {
    char byte;
    io_uring_prep_read(ring.sqe(kRead, "read of an empty pipe"), pipe_read, &byte, 1, 0);
    ring.submit();
    uint64_t start = now_ns();
    io_uring_prep_cancel64(ring.sqe(kReadCancel, "cancel of the read"), kRead, 0);
    ring.submit();
    std::vector<Cqe> cqes = ring.reap(2);
    double elapsed = double(now_ns() - start);
    for (const Cqe& cqe : cqes) {
        // io_uring_cancelation(7): a pending request is canceled (0, target
        // -ECANCELED); one already running may answer -EALREADY and end
        // -EINTR. Nothing can complete the read, so -ENOENT is wrong.
        if (cqe.user_data == kRead)
            ctx.must(Check{cqe.res == -ECANCELED || cqe.res == -EINTR, "canceled read ends -ECANCELED or -EINTR", cqe});
        else
            ctx.must(Check{cqe.user_data == kReadCancel && (cqe.res == 0 || cqe.res == -EALREADY),
                           "cancel of a pending read returns 0 or -EALREADY", cqe});
    }
    return elapsed;
}

double nop_round_trip(Ring& ring) {
    uint64_t start = now_ns();
    io_uring_prep_nop(ring.sqe(kNop, "nop"));
    ring.submit();
    Cqe cqe = ring.wait();
    double elapsed = double(now_ns() - start);
    ring.ctx().must(Check{cqe.user_data == kNop && cqe.res == 0, "NOP completes with res 0", cqe});
    return elapsed;
}

const Register<SetupOnly> cancel_latency{{
    .family = perf,
    .name = "cancel-latency",
    .summary = "async cancel of a pending pipe read: round-trip p50/p99, against a NOP round trip (metrics)",
    .needs = {needs_op(IORING_OP_READ), needs_op(IORING_OP_ASYNC_CANCEL)},
    .variants = kVariants,
    .body = [](Ctx& ctx, const SetupOnly& p) {
        Ring ring(ctx, p.setup, 64);
        Pipe pipe = make_pipe(ctx);
        Alternated t = alternate(
            budget_s(ctx), [&] { return nop_round_trip(ring); },
            [&] { return cancel_sample(ctx, ring, pipe.read.get()); });
        double nop_p50 = quantile(t.a_ns, 0.5), p50 = quantile(t.b_ns, 0.5), p99 = quantile(t.b_ns, 0.99);
        ctx.metric("cancel_latency_p50_us", p50 / 1000);
        ctx.metric("cancel_latency_p99_us", p99 / 1000);
        ctx.metric("nop_round_trip_p50_us", nop_p50 / 1000);
        ctx.metric("cancel_vs_nop_p50_ratio", p50 / nop_p50);
        // Tail over median: a shape, but preemptions on a shared machine move it by
        // tens of percent between runs, so it is not a `_ratio` that compare flags.
        ctx.metric("cancel_latency_p99_over_p50", p99 / p50);
        ctx.add_iterations(t.b_ns.size());
        ctx.metric("samples_each", t.a_ns.size());
    }}};

}  // namespace
