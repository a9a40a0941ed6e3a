#include "executor.h"

#include "util.h"

namespace uc::explore {

ExploreRound oracle_round(const xround& r) {
    ExploreRound out;
    out.requests.reserve(r.nreq);
    for (uint32_t i = 0; i < r.nreq; ++i) {
        const xreq& q = r.req[i];
        ExploreRequest e;
        e.user_data = q.ud;
        e.kind = ExploreKind(q.kind);
        e.file = q.file == 0xff ? -1 : int(q.file);
        e.stream = e.kind != ExploreKind::cancel && q.file < XF_EVENTFD ? int(q.file / 2) : -1;
        e.len = q.len;
        e.count = q.count;
        e.key = ExploreCancelKey(q.key);
        e.target = q.target_ud;
        e.fd_closed = q.fd_closed;
        out.requests.push_back(e);
    }
    out.cqes.reserve(r.ncqe);
    for (uint32_t i = 0; i < r.ncqe; ++i) {
        Cqe c;
        c.user_data = r.cqe[i].ud;
        c.res = r.cqe[i].res;
        c.flags = r.cqe[i].flags;
        out.cqes.push_back(c);
    }
    for (unsigned s = 0; s < XS_COUNT; ++s) {
        ExploreStream st;
        if (r.closed_at[s] >= 0) st.closed_at = size_t(r.closed_at[s]);
        st.leftover = r.leftover[s];
        out.streams.push_back(st);
    }
    for (uint32_t i = 0; i < r.nprov; ++i) out.provides.push_back({r.prov[i].at_cqe, r.prov[i].bid, XBUF_LEN});
    return out;
}

static nlohmann::json evidence_of(const xround& r) {
    nlohmann::json reqs = nlohmann::json::array(), cqes = nlohmann::json::array();
    for (uint32_t i = 0; i < r.nreq; ++i)
        reqs.push_back(str("user_data=0x", std::hex, r.req[i].ud, std::dec, " ",
                           explore_kind_name(ExploreKind(r.req[i].kind)),
                           r.req[i].file == 0xff ? std::string() : " " + file_name(r.req[i].file)));
    for (uint32_t i = 0; i < r.ncqe; ++i) {
        Cqe c;
        c.user_data = r.cqe[i].ud;
        c.res = r.cqe[i].res;
        c.flags = r.cqe[i].flags;
        cqes.push_back(c.describe());
    }
    return {{"requests", reqs}, {"cqes", cqes}, {"cqes_not_recorded", r.cqe_lost}, {"drained", bool(r.drained)}};
}

RoundResult Executor::run(const Program& program, bool judge) {
    RoundResult result;
    xprogram view = program.view(drain_ms_);
    for (const xstep& s : program.steps) ++result.ops[s.op];
    uint64_t start = now_ns();
    int failed = xrun(&view, round_.get());
    result.exec_ns = now_ns() - start;
    if (failed != 0) {
        result.error = round_->error;
        return result;
    }
    result.requests = round_->nreq;
    result.cqes = round_->ncqe;
    if (!judge) return result;
    if (round_->cqe_lost) {
        result.error = str(round_->cqe_lost, " CQEs beyond the recorder's ", XMAX_CQE, ": round not judged");
        return result;
    }
    result.violation = explore_oracle(oracle_round(*round_));
    if (result.violation) result.evidence = evidence_of(*round_);
    return result;
}

nlohmann::json round_result_to_json(const RoundResult& r) {
    nlohmann::json j{{"requests", r.requests}, {"cqes", r.cqes}, {"exec_ns", r.exec_ns}, {"ops", r.ops}};
    if (r.error) j["error"] = *r.error;
    if (r.violation) {
        j["rule"] = r.violation->rule_id;
        j["check"] = r.violation->check.describe();
        j["evidence"] = r.evidence;
    }
    return j;
}

RoundResult round_result_from_json(const nlohmann::json& j) {
    RoundResult r;
    r.requests = j.at("requests");
    r.cqes = j.at("cqes");
    r.exec_ns = j.at("exec_ns");
    r.ops = j.at("ops").get<std::array<unsigned, XOP_COUNT>>();
    if (j.contains("error")) r.error = j["error"].get<std::string>();
    if (j.contains("rule")) {
        r.violation = ExploreViolation{j["rule"], Check::fail(j["check"])};
        r.evidence = j["evidence"];
    }
    return r;
}

}  // namespace uc::explore
