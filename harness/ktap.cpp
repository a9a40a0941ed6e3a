#include "ktap.h"

#include "result.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace uc {
namespace {

// ktap.rst directives: a hang is the TIMEOUT of the test, a setup problem
// outside the behaviour under test its ERROR; both "should be not ok".
std::string directive_for(Verdict verdict) {
    if (verdict == Verdict::skip) return "SKIP";
    if (verdict == Verdict::hang) return "TIMEOUT";
    if (verdict == Verdict::error) return "ERROR";
    return "";
}

// A known issue that happened as expected (run --expect): kselftest's
// "ok N name # XFAIL reason", the raw verdict's evidence still above it.
bool known_issue(const Json& result) {
    const Json expectation = result.value("expectation", Json());
    return expectation.is_object() && expectation.value("status", "") == "xfail";
}

}  // namespace

std::string ktap_safe(const std::string& text) {
    std::string out = to_valid_utf8(text);
    for (char& c : out)
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) c = ' ';
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

std::vector<std::string> ktap_result_lines(size_t number, const Json& result, const std::string& indent) {
    std::vector<std::string> lines;
    Verdict verdict = parse_verdict(result.value("verdict", "")).value_or(Verdict::error);
    std::string reason = result.value("reason", "");
    bool known = known_issue(result);
    std::string directive = known ? "XFAIL" : directive_for(verdict);
    if (known) reason = result["expectation"].value("reason", reason);
    // Diagnostics about a test go directly before its result line (ktap.rst).
    if (is_bad(verdict)) {
        const Json evidence = result.value("evidence", Json::object());
        bool reason_in_evidence = evidence.contains("failures") && evidence["failures"].is_array() &&
                                  std::find(evidence["failures"].begin(), evidence["failures"].end(), reason) !=
                                      evidence["failures"].end();
        if (directive.empty() && !reason.empty() && !reason_in_evidence)
            lines.push_back(indent + "# " + verdict_name(verdict) + ": " + ktap_safe(reason));
        for (const std::string& line : evidence_lines(evidence)) lines.push_back(indent + "# " + ktap_safe(line));
    }
    if (known) lines.push_back(indent + "# known issue: " + verdict_name(verdict) + ": " + ktap_safe(result.value("reason", "")));
    if (result.value("resumed", false)) lines.push_back(indent + "# resumed: result carried over from the interrupted run");
    std::string line = indent + (known || !is_bad(verdict) ? "ok " : "not ok ") + std::to_string(number) +
                       " " + ktap_safe(result.value("id", ""));
    if (!directive.empty()) {
        line += " # " + directive;
        if (!reason.empty()) line += " " + ktap_safe(reason);
    }
    lines.push_back(line);
    return lines;
}

KtapWriter::KtapWriter(const std::string& path) : path_(path) {
    if (path == "-") {
        fd_ = STDOUT_FILENO;
        return;
    }
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
    owned_.reset(fd);
    fd_ = fd;
}

void KtapWriter::emit(const std::string& text) {
    if (broken_) return;
    const char* p = text.data();
    size_t left = text.size();
    while (left > 0) {
        ssize_t n = write(fd_, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            // The JSON report is the record of the run; a KTAP reader that
            // went away must not stop it.
            std::fprintf(stderr, "uring-conform: warning: KTAP output to %s stopped: %s\n",
                         path_ == "-" ? "stdout" : path_.c_str(), std::strerror(errno));
            broken_ = true;
            return;
        }
        p += n;
        left -= size_t(n);
    }
}

void KtapWriter::begin(const std::vector<std::string>& diagnostics, const std::vector<KtapFamily>& families) {
    families_ = families;
    std::string text = "KTAP version 1\n";
    for (const std::string& line : diagnostics) text += "# " + ktap_safe(line) + "\n";
    text += "1.." + std::to_string(families.size()) + "\n";
    emit(text);
}

void KtapWriter::result(const Json& result) {
    if (family_ >= families_.size()) return;
    const KtapFamily& family = families_[family_];
    std::string text;
    if (in_family_ == 0) text += "  KTAP version 1\n  # Subtest: " + ktap_safe(family.name) + "\n  1.." +
                                 std::to_string(family.planned) + "\n";
    ++in_family_;
    for (const std::string& line : ktap_result_lines(in_family_, result, "  ")) text += line + "\n";
    Verdict verdict = parse_verdict(result.value("verdict", "")).value_or(Verdict::error);
    family_failed_ |= is_bad(verdict) && !known_issue(result);
    family_skipped_ += verdict == Verdict::skip;
    if (in_family_ == family.planned) {
        // "If one of the subtests fail ... the parent test should also fail" (ktap.rst).
        text += (family_failed_ ? "not ok " : "ok ") + std::to_string(family_ + 1) + " " + ktap_safe(family.name);
        if (family_skipped_ == family.planned) text += " # SKIP every variant skipped";
        text += "\n";
        ++family_;
        in_family_ = 0;
        family_failed_ = false;
        family_skipped_ = 0;
    }
    emit(text);
}

}  // namespace uc
