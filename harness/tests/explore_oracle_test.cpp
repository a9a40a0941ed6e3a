// The explore oracle fed hand-made rounds: one that behaved, then one broken
// stream per rule. Plus the pipeline end to end on the kernel: a self-test
// step that breaks a rule on purpose is found, shrunk and emitted as a C
// reproducer that compiles and exits 1.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "compat/uapi.h"
#include "explore/emit_c.h"
#include "explore/executor.h"
#include "explore/shrink.h"
#include "explore_oracle.h"

namespace uc {
namespace {

Cqe cqe(uint64_t ud, int res, uint32_t flags = 0) {
    Cqe c;
    c.user_data = ud;
    c.res = res;
    c.flags = flags;
    return c;
}

ExploreRequest req(uint64_t ud, ExploreKind kind, int stream = -1, unsigned len = 0) {
    ExploreRequest q;
    q.user_data = ud;
    q.kind = kind;
    q.stream = stream;
    q.file = stream >= 0 ? 2 * stream + (kind == ExploreKind::write ? 1 : 0) : -1;
    q.len = len;
    return q;
}

ExploreRequest cancel(uint64_t ud, uint64_t target) {
    ExploreRequest q = req(ud, ExploreKind::cancel);
    q.target = target;
    return q;
}

// A write of 10 bytes read back as 4 + 6, a canceled eventfd read and its
// cancel, a multishot poll ended by a cancel.
ExploreRound good_round() {
    ExploreRound r;
    r.streams.resize(3);
    r.requests = {req(1, ExploreKind::write, 0, 10), req(2, ExploreKind::read, 0, 4), req(3, ExploreKind::read, 0, 64),
                  req(4, ExploreKind::eventfd_read), cancel(5, 4),
                  req(6, ExploreKind::poll_multishot), cancel(7, 6)};
    r.cqes = {cqe(1, 10), cqe(2, 4), cqe(3, 6), cqe(6, 1, IORING_CQE_F_MORE), cqe(5, 0), cqe(4, -ECANCELED),
              cqe(7, 0), cqe(6, -ECANCELED)};
    return r;
}

std::string rule_of(const ExploreRound& r) {
    auto v = explore_oracle(r);
    return v ? v->rule_id : "ok";
}

TEST(ExploreOracle, BehavedRoundPasses) {
    auto v = explore_oracle(good_round());
    EXPECT_FALSE(v) << v->rule_id << ": " << v->check.describe();
}

TEST(ExploreOracle, UnknownUserDataFails) {
    ExploreRound r = good_round();
    r.cqes.push_back(cqe(99, 0));
    EXPECT_EQ(rule_of(r), "unknown-user-data");
}

TEST(ExploreOracle, MissingFinalCqeIsOutstandingAfterDrain) {
    ExploreRound r = good_round();
    r.cqes.pop_back();  // the poll's final -ECANCELED
    EXPECT_EQ(rule_of(r), "outstanding-after-drain");
}

TEST(ExploreOracle, SecondCqeForOneShotFails) {
    ExploreRound r = good_round();
    r.cqes.push_back(cqe(2, 0));
    EXPECT_EQ(rule_of(r), "completion-contract");
}

TEST(ExploreOracle, CqeAfterMultishotFinalFails) {
    ExploreRound r = good_round();
    r.cqes.push_back(cqe(6, 1, IORING_CQE_F_MORE));
    EXPECT_EQ(rule_of(r), "completion-contract");
}

TEST(ExploreOracle, MoreFlagOnOneShotFails) {
    ExploreRound r = good_round();
    r.cqes[1].flags = IORING_CQE_F_MORE;
    r.cqes.insert(r.cqes.begin() + 2, cqe(2, 0));
    EXPECT_EQ(rule_of(r), "completion-contract");
}

TEST(ExploreOracle, ReadLongerThanAskedFails) {
    ExploreRound r = good_round();
    r.cqes[1].res = 5;  // asked for 4
    EXPECT_EQ(rule_of(r), "result-allowed");
}

TEST(ExploreOracle, NopWithErrorFails) {
    ExploreRound r = good_round();
    r.requests.push_back(req(8, ExploreKind::nop));
    r.cqes.push_back(cqe(8, -EINVAL));
    EXPECT_EQ(rule_of(r), "result-allowed");
}

TEST(ExploreOracle, EndOfFileBeforeCloseFailsAndAfterPasses) {
    ExploreRound r = good_round();
    r.requests.push_back(req(8, ExploreKind::read, 1, 16));
    r.cqes.push_back(cqe(8, 0));
    EXPECT_EQ(rule_of(r), "eof-before-close");
    r.streams[1].closed_at = r.cqes.size() - 1;
    EXPECT_EQ(rule_of(r), "ok");
}

TEST(ExploreOracle, CancelFoundButTargetCompletedFails) {
    ExploreRound r = good_round();
    r.cqes[5].res = 8;  // the eventfd read completed on its own, yet its cancel said 0
    EXPECT_EQ(rule_of(r), "cancel-consistent");
}

TEST(ExploreOracle, TargetCanceledThoughCancelFoundNothingFails) {
    ExploreRound r = good_round();
    r.cqes[4].res = -ENOENT;  // cancel found nothing, the read still ended -ECANCELED
    EXPECT_EQ(rule_of(r), "cancel-consistent");
}

TEST(ExploreOracle, CountCancelAboveCanceledFails) {
    ExploreRound r = good_round();
    ExploreRequest any = req(8, ExploreKind::cancel);
    any.key = ExploreCancelKey::any;
    r.requests.push_back(any);
    r.cqes.push_back(cqe(8, 3));  // only two requests ended by cancelation
    EXPECT_EQ(rule_of(r), "cancel-consistent");
}

TEST(ExploreOracle, ClosedFdCancelMayReturnEbadf) {
    ExploreRound r = good_round();
    ExploreRequest byfd = req(8, ExploreKind::cancel);
    byfd.key = ExploreCancelKey::fd_all;
    byfd.file = 1;
    byfd.fd_closed = true;
    r.requests.push_back(byfd);
    r.cqes.push_back(cqe(8, -EBADF));
    EXPECT_EQ(rule_of(r), "ok");
}

TEST(ExploreOracle, BufferHandedOutTwiceFails) {
    ExploreRound r = good_round();
    r.requests.push_back(req(8, ExploreKind::recv_multishot, 2));
    r.requests.push_back(req(9, ExploreKind::write, 2, 20));
    r.provides = {{0, 0, 64}, {0, 1, 64}};
    uint32_t buf0 = IORING_CQE_F_BUFFER | (0u << IORING_CQE_BUFFER_SHIFT) | IORING_CQE_F_MORE;
    r.cqes.push_back(cqe(9, 20));
    r.cqes.push_back(cqe(8, 10, buf0));
    r.cqes.push_back(cqe(8, 10, buf0));  // bid 0 again, never provided again
    r.cqes.push_back(cqe(8, -ECANCELED));
    EXPECT_EQ(rule_of(r), "buffer-ownership");
    r.provides.push_back({r.cqes.size() - 2, 0, 64});  // refilled between the two
    EXPECT_EQ(rule_of(r), "ok");
}

TEST(ExploreOracle, BytesLostFails) {
    ExploreRound r = good_round();
    r.cqes[2].res = 5;  // 10 written, 4 + 5 read, none left
    EXPECT_EQ(rule_of(r), "bytes-conserved");
    r.streams[0].leftover = 1;
    EXPECT_EQ(rule_of(r), "ok");
}

TEST(ExploreOracle, MultishotTimeoutExpiriesCarryEtimeWithMore) {
    ExploreRound r = good_round();
    r.requests.push_back(req(8, ExploreKind::timeout_multishot));
    r.cqes.push_back(cqe(8, -ETIME, IORING_CQE_F_MORE));
    r.cqes.push_back(cqe(8, -ETIME));
    EXPECT_EQ(rule_of(r), "ok");
    r.cqes.back().res = 0;
    EXPECT_EQ(rule_of(r), "result-allowed");
}

// ---- on the kernel: the whole pipeline on a rule broken on purpose ----

explore::Program ghost_program() {
    explore::Program p;
    p.setup = XSETUP_NONE;
    auto step = [&](uint8_t op, uint32_t id, uint32_t target = 0) {
        xstep s{};
        s.op = op;
        s.id = id;
        s.target = target;
        s.len = 8;
        p.steps.push_back(s);
    };
    step(XOP_WRITE, 0);
    step(XOP_NOP, 1);
    step(XOP_READ, 2);
    step(XOP_WAIT, 3);
    step(XOP_SELFTEST_GHOST, 4, 1);  // a second CQE under user_data of #1
    step(XOP_NOP, 5);
    return p;
}

TEST(ExploreSelftest, GhostStepIsFoundShrunkAndEmittedAsReproducerThatExits1) {
    unsigned caps = 0;
    char why[200];
    if (xprobe(&caps, why, sizeof why) != 0) GTEST_SKIP() << "io_uring unusable: " << why;
    explore::Program program = ghost_program();
    explore::Executor executor(2000);
    explore::RoundResult round = executor.run(program);
    ASSERT_FALSE(round.error) << *round.error;
    ASSERT_TRUE(round.violation);
    EXPECT_EQ(round.violation->rule_id, "completion-contract") << round.violation->check.describe();

    explore::ReplayOptions replay;
    explore::ShrinkResult shrunk = explore::shrink(program, "completion-contract", replay, 30);
    // The NOP and the ghost reusing its user_data are all it takes.
    ASSERT_EQ(shrunk.program.steps.size(), 2u);
    EXPECT_EQ(shrunk.program.steps[0].op, XOP_NOP);
    EXPECT_EQ(shrunk.program.steps[1].op, XOP_SELFTEST_GHOST);

    explore::Finding finding{1, 0, "completion-contract", round.violation->check.describe(), "test", program.steps.size(),
                             shrunk.program, "test"};
    std::string dir = testing::TempDir();
    std::string c_path = dir + "/" + explore::reproducer_name(finding), bin = c_path + ".bin";
    std::ofstream(c_path) << explore::reproducer_source(finding);
    std::string cc = "cc -std=c11 -Wall -Werror -o " + bin + " " + c_path + " -luring";
    ASSERT_EQ(std::system(cc.c_str()), 0) << cc;
    int status = std::system((bin + " -n 5 > " + bin + ".out").c_str());
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 1);
    std::ifstream out(bin + ".out");
    std::string line;
    std::getline(out, line);
    EXPECT_EQ(line.rfind("reproduced: attempt 1: completion-contract", 0), 0u) << line;
}

}  // namespace
}  // namespace uc
