// Variant grids and ids: ids are the keys that join reports across kernels.
#include <gtest/gtest.h>

#include "params.h"
#include "compat/uapi.h"
#include "probe.h"
#include "scenario.h"

namespace {

enum class Mode { ring, legacy };

struct GridParams {
    uc::Setup setup = uc::Setup::none;
    unsigned cq = 0;
    Mode mode = Mode::ring;
};

TEST(Grid, IsTheCartesianProductWithTheFirstAxisSlowest) {
    auto variants = uc::grid(uc::setups(&GridParams::setup, {uc::Setup::none, uc::Setup::sqpoll}),
                             uc::axis("cq", &GridParams::cq, {8u, 256u}),
                             uc::axis("mode", &GridParams::mode, {{Mode::ring, "ring"}}));
    ASSERT_EQ(variants.size(), 4u);
    EXPECT_EQ(variants[0].suffix(), "[none,cq=8,mode=ring]");
    EXPECT_EQ(variants[1].suffix(), "[none,cq=256,mode=ring]");
    EXPECT_EQ(variants[3].suffix(), "[sqpoll,cq=256,mode=ring]");
    EXPECT_EQ(variants[3].params.cq, 256u);
    EXPECT_EQ(variants[3].params.setup, uc::Setup::sqpoll);
    EXPECT_EQ(variants[3].setup, uc::Setup::sqpoll);
}

TEST(Grid, ReportParamsKeepNumbersAsNumbersAndNamesAsText) {
    auto variants = uc::grid(uc::setups(&GridParams::setup, {uc::Setup::defer_taskrun}),
                             uc::axis("cq", &GridParams::cq, {8u}),
                             uc::axis("mode", &GridParams::mode, {{Mode::legacy, "legacy"}}));
    ASSERT_EQ(variants.size(), 1u);
    EXPECT_EQ(variants[0].json.dump(), R"({"setup":"defer_taskrun","cq":8,"mode":"legacy"})");
    EXPECT_EQ(variants[0].params.mode, Mode::legacy);
}

TEST(Grid, WithoutASetupAxisTheVariantHasNoSetup) {
    auto variants = uc::grid(uc::axis("cq", &GridParams::cq, {2u, 4u}));
    ASSERT_EQ(variants.size(), 2u);
    EXPECT_EQ(variants[0].suffix(), "[cq=2]");
    EXPECT_FALSE(variants[0].setup.has_value());
    EXPECT_FALSE(variants[0].json.contains("setup"));
}

TEST(Grid, JoinKeepsBothGridsInOrder) {
    auto variants = uc::join(uc::grid(uc::axis("cq", &GridParams::cq, {1u})), uc::grid(uc::axis("cq", &GridParams::cq, {2u})));
    ASSERT_EQ(variants.size(), 2u);
    EXPECT_EQ(variants[1].suffix(), "[cq=2]");
}

TEST(Variant, WithoutAxesHasNoSuffix) { EXPECT_EQ(uc::Variant<uc::NoParams>{}.suffix(), ""); }

TEST(Selection, BracketsInAFilterMatchThemselves) {
    // The self-test scenarios have no variants; multishot ones are not linked here.
    EXPECT_EQ(uc::select_instances("selftest/crash-segv").size(), 1u);
    EXPECT_EQ(uc::select_instances("selftest/crash-*").size(), 2u);
    EXPECT_TRUE(uc::select_instances("selftest/crash-[s]egv").empty());
}

const uc::Family test_family{"f"};

TEST(Requirements, RefusedSetupFlagIsASkipReasonNamingIt) {
    uc::ScenarioEntry scenario = uc::make_entry<uc::SetupOnly>(
        {.family = test_family, .name = "refused-setup", .variants = uc::grid(uc::setups(&uc::SetupOnly::setup, {uc::Setup::sqpoll}))});
    uc::Instance instance{&scenario, &scenario.variants[0], "f/refused-setup[sqpoll]"};
    uc::Probe probe;
    probe.setup_flags["SQPOLL"] = "EPERM";
    auto reason = uc::unmet_requirement(instance, probe);
    ASSERT_TRUE(reason.has_value());
    EXPECT_NE(reason->find("SQPOLL"), std::string::npos);
    EXPECT_NE(reason->find("EPERM"), std::string::npos);
    probe.setup_flags["SQPOLL"] = "ok";
    EXPECT_FALSE(uc::unmet_requirement(instance, probe).has_value());
}

// A requirement that looks at the variant skips only the variants it names,
// in the parent, before any fork.
TEST(Requirements, AVariantAwareRequirementSkipsOnlyItsVariants) {
    uc::ScenarioEntry scenario = uc::make_entry<GridParams>(
        {.family = test_family,
         .name = "pool-needs",
         .needs = {uc::when(&GridParams::mode, Mode::legacy, uc::needs_op(IORING_OP_PROVIDE_BUFFERS))},
         .variants = uc::grid(uc::axis("mode", &GridParams::mode, {{Mode::ring, "ring"}, {Mode::legacy, "legacy"}}))});
    uc::Probe probe;  // no opcodes at all
    uc::Instance ring{&scenario, &scenario.variants[0], "f/pool-needs[mode=ring]"};
    uc::Instance legacy{&scenario, &scenario.variants[1], "f/pool-needs[mode=legacy]"};
    EXPECT_FALSE(uc::unmet_requirement(ring, probe).has_value());
    auto reason = uc::unmet_requirement(legacy, probe);
    ASSERT_TRUE(reason.has_value());
    EXPECT_NE(reason->find("PROVIDE_BUFFERS"), std::string::npos);
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
