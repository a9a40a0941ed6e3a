// Variant grids and ids: ids are the keys that join reports across kernels.
#include <gtest/gtest.h>

#include "params.h"
#include "compat/uapi.h"
#include "probe.h"
#include "scenario.h"

namespace {

TEST(Grid, IsTheCartesianProductWithSetupsSlowest) {
    auto variants = uc::grid({uc::Setup::none, uc::Setup::sqpoll}, {{"cq", {8, 256}}, {"mode", {"ring"}}});
    ASSERT_EQ(variants.size(), 4u);
    EXPECT_EQ(variants[0].suffix(), "[none,cq=8,mode=ring]");
    EXPECT_EQ(variants[1].suffix(), "[none,cq=256,mode=ring]");
    EXPECT_EQ(variants[3].suffix(), "[sqpoll,cq=256,mode=ring]");
    EXPECT_EQ(variants[3].num("cq"), 256);
    EXPECT_EQ(variants[3].text("mode"), "ring");
}

TEST(Grid, WithoutSetupsHasNoSetupKey) {
    auto variants = uc::grid({}, {{"threads", {2, 4}}});
    ASSERT_EQ(variants.size(), 2u);
    EXPECT_EQ(variants[0].suffix(), "[threads=2]");
    EXPECT_FALSE(variants[0].to_json().contains("setup"));
}

TEST(Params, EmptyHasNoSuffixAndUnknownKeysThrow) {
    uc::Params p;
    EXPECT_EQ(p.suffix(), "");
    EXPECT_THROW(p.num("cq"), std::out_of_range);
}

TEST(Selection, BracketsInAFilterMatchThemselves) {
    // The self-test scenarios have no variants; multishot ones are not linked here.
    EXPECT_EQ(uc::select_instances("selftest/crash-segv").size(), 1u);
    EXPECT_EQ(uc::select_instances("selftest/crash-*").size(), 2u);
    EXPECT_TRUE(uc::select_instances("selftest/crash-[s]egv").empty());
}

TEST(Requirements, RefusedSetupFlagIsASkipReasonNamingIt) {
    uc::Scenario scenario{.family = "f", .name = "s", .variants = uc::grid({uc::Setup::sqpoll})};
    uc::Instance instance{&scenario, scenario.variants[0], "f/s[sqpoll]"};
    uc::Probe probe;
    probe.setup_flags["SQPOLL"] = "EPERM";
    auto reason = uc::unmet_requirement(instance, probe);
    ASSERT_TRUE(reason.has_value());
    EXPECT_NE(reason->find("SQPOLL"), std::string::npos);
    EXPECT_NE(reason->find("EPERM"), std::string::npos);
    probe.setup_flags["SQPOLL"] = "ok";
    EXPECT_FALSE(uc::unmet_requirement(instance, probe).has_value());
}

}  // namespace

namespace {

// Names index the uapi enum: one slip shifts every name after it (and the
// compat opcodes too), so pin a few against liburing's own enumerators.
TEST(Probe, OpcodeNamesFollowTheUapiEnum) {
    EXPECT_EQ(uc::opcode_name(IORING_OP_RECV), "RECV");
    EXPECT_EQ(uc::opcode_name(IORING_OP_SEND_ZC), "SEND_ZC");
    EXPECT_EQ(uc::opcode_name(IORING_OP_SENDMSG_ZC), "SENDMSG_ZC");
    EXPECT_EQ(uc::opcode_name(compat::op_read_multishot), "READ_MULTISHOT");
    EXPECT_EQ(uc::opcode_name(compat::op_pipe), "PIPE");
    EXPECT_EQ(uc::opcode_name(compat::op_uring_cmd128), "URING_CMD128");
}

}  // namespace
