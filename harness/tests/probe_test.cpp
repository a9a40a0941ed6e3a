// Capability evidence and the requirements it decides: a capability is absent
// only when the kernel refused it the documented way, so a kernel that takes
// a flag and then does the wrong thing runs the scenario (and fails its
// check), while a refusal skips with the kernel's answer in the reason.
#include <gtest/gtest.h>

#include <cerrno>

#include "checks.h"
#include "probe.h"
#include "scenario.h"

namespace {

const uc::Family probe_family{"probe-test"};

// cancel/cancel-op-matches-opcode's requirement, on a scenario of its own.
struct NeedsCancelOp {
    uc::ScenarioEntry entry = uc::make_entry<uc::NoParams>(
        {.family = probe_family, .name = "needs-cancel-op", .needs = {uc::needs_capability("cancel_op")}});
    uc::Instance instance{&entry, &entry.variants[0], "probe-test/needs-cancel-op"};
};

uc::Probe probe_with(const std::string& name, const uc::CapabilityEvidence& evidence) {
    uc::Probe probe;
    probe.capabilities[name] = evidence.present;
    probe.capability_evidence[name] = evidence;
    return probe;
}

const char* const kTried = "IORING_ASYNC_CANCEL_OP on a cancel of a pending pipe read";

TEST(CapabilityEvidence, OnlyEinvalAndEopnotsuppAreRefusals) {
    EXPECT_FALSE(uc::answered(kTried, -EINVAL).present);
    EXPECT_FALSE(uc::answered(kTried, -EOPNOTSUPP).present);
    // Taken, whatever it then did: found nothing, found it, failed otherwise, still pending.
    for (int res : {-ENOENT, 0, 1, -ETIME, -EALREADY, -EBADF, -ENOBUFS}) EXPECT_TRUE(uc::answered(kTried, res).present) << res;
    EXPECT_TRUE(uc::answered(kTried, uc::SqeAnswer{std::nullopt, 100}).present);
}

TEST(CapabilityEvidence, AnswerSaysWhatTheKernelReturned) {
    EXPECT_EQ(uc::answered(kTried, -EINVAL).answer, "-EINVAL");
    EXPECT_EQ(uc::answered(kTried, 1).answer, "res 1");
    EXPECT_EQ(uc::answered(kTried, uc::SqeAnswer{std::nullopt, 100}).answer, "pending after 100 ms");
    EXPECT_EQ(uc::answered(kTried, 0).tried, kTried);
}

TEST(CapabilityEvidence, MissingOpcodeIsAbsentNamingIt) {
    uc::Probe probe;  // IORING_REGISTER_PROBE listed nothing
    auto missing = uc::lacks_op(probe, IORING_OP_SEND_ZC);
    ASSERT_TRUE(missing.has_value());
    EXPECT_FALSE(missing->present);
    EXPECT_NE(missing->answer.find("SEND_ZC"), std::string::npos);
    probe.opcodes.assign(IORING_OP_SEND_ZC + 1, true);
    EXPECT_FALSE(uc::lacks_op(probe, IORING_OP_SEND_ZC).has_value());
}

// The committed 6.1 report's case: the kernel took IORING_ASYNC_CANCEL_OP and
// the cancel found nothing. That is not "kernel lacks cancel_op": the
// scenario runs and its own check fails.
TEST(CapabilityRequirement, AcceptedButMisbehavingKernelRunsTheScenario) {
    NeedsCancelOp scenario;
    uc::Probe probe = probe_with("cancel_op", uc::answered(kTried, -ENOENT));
    EXPECT_FALSE(uc::unmet_requirement(scenario.instance, probe).has_value());
    EXPECT_FALSE(probe.capability_missing("cancel_op").has_value());
}

// What such a kernel then posts: the cancel by opcode finds nothing and the
// read stays pending. The scenario's check ("cancel CQE 0") fails on it.
TEST(CapabilityRequirement, ThatKernelsCqesFailTheScenarioCheck) {
    constexpr uint64_t kTarget = 1, kCancel = 2;
    std::vector<uc::Cqe> cqes = {{kCancel, -ENOENT, 0, 0, 0}};
    uc::Check check = uc::single_completion(cqes, kCancel, {0});
    EXPECT_FALSE(check.ok);
    EXPECT_NE(check.describe().find("ENOENT"), std::string::npos) << check.describe();
    EXPECT_FALSE(uc::single_completion(cqes, kTarget, {-ECANCELED}).ok);  // the read never ended
    EXPECT_TRUE(uc::single_completion({{kCancel, 0, 0, 0, 0}, {kTarget, -ECANCELED, 0, 0, 0}}, kCancel, {0}).ok);
}

TEST(CapabilityRequirement, RefusalSkipsQuotingTheKernelsAnswer) {
    NeedsCancelOp scenario;
    uc::Probe probe = probe_with("cancel_op", uc::answered(kTried, -EINVAL));
    EXPECT_TRUE(uc::unmet_requirement(scenario.instance, probe).has_value());
    auto reason = probe.capability_missing("cancel_op");
    ASSERT_TRUE(reason.has_value());
    EXPECT_EQ(*reason, std::string("kernel lacks cancel_op: ") + kTried + " -> -EINVAL (probe)");
}

TEST(CapabilityRequirement, UntriedIsNotCalledAKernelRefusal) {
    uc::Probe probe = probe_with("recv_multishot", uc::untried("IORING_OP_RECV ...", "socketpair: EMFILE"));
    auto reason = probe.capability_missing("recv_multishot");
    ASSERT_TRUE(reason.has_value());
    EXPECT_EQ(reason->find("kernel lacks"), std::string::npos) << *reason;
    EXPECT_NE(reason->find("socketpair: EMFILE"), std::string::npos) << *reason;
}

TEST(CapabilityRequirement, EvidenceIsInTheProbeJson) {
    uc::Probe probe = probe_with("cancel_op", uc::answered(kTried, 0));
    auto j = probe.to_json();
    EXPECT_EQ(j["capabilities"]["cancel_op"], true);
    EXPECT_EQ(j["capability_evidence"]["cancel_op"]["tried"], kTried);
    EXPECT_EQ(j["capability_evidence"]["cancel_op"]["answer"], "res 0");
    EXPECT_EQ(j["capability_evidence"]["cancel_op"]["present"], true);
}

// Ring::Ring's skip: only a flag the probe saw refused; the rest is an error.
TEST(SetupRefusal, NamesTheRefusedFlagOnlyForRingsThatAskForIt) {
    uc::Probe probe;
    probe.setup_flags["CQSIZE"] = "ok";
    probe.setup_flags["SQPOLL"] = "EPERM";
    probe.setup_flags["SQ_AFF"] = "EPERM";
    EXPECT_FALSE(probe.setup_refused(IORING_SETUP_CQSIZE).has_value());
    auto reason = probe.setup_refused(IORING_SETUP_SQPOLL | IORING_SETUP_CQSIZE);
    ASSERT_TRUE(reason.has_value());
    EXPECT_EQ(*reason, "io_uring_setup refused IORING_SETUP_SQPOLL: EPERM (probe)");
    EXPECT_FALSE(probe.setup_refused(0).has_value());
}

}  // namespace
