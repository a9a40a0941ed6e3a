#include "report.h"

#include "expectations.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <stdexcept>

namespace uc {
namespace {

void write_all(int fd, const std::string& text, const std::string& what) {
    const char* p = text.data();
    size_t left = text.size();
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw std::runtime_error("cannot write " + what + ": " + std::strerror(errno));
        p += n;
        left -= size_t(n);
    }
}

// Parents were checked (and the default reports/local/ made) by check_output().
Fd open_for_writing(const std::string& path, int extra_flags) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC | extra_flags, 0644);
    if (fd < 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
    return Fd(fd);
}

// The .jsonl of a run belongs to that run alone: a second suite started with
// the same report path must not truncate or interleave with it.
Fd open_jsonl_locked(const std::string& path, size_t keep_bytes) {
    Fd fd = open_for_writing(path, O_CREAT | O_APPEND);
    if (flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            throw std::runtime_error(path + " is being written by another uring-conform run (choose another --report)");
        throw std::runtime_error("cannot lock " + path + ": " + std::strerror(errno));
    }
    if (ftruncate(fd.get(), off_t(keep_bytes)) < 0)
        throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
    return fd;
}

std::string read_whole_file(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
    Fd owner(fd);
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
        if (n == 0) return text;
        text.append(buf, size_t(n));
    }
}

std::string cqe_line(const Json& cqe) {
    std::string out = "cqe";
    if (cqe.contains("ring")) out += str(" ring=", cqe["ring"].dump());
    out += str(" user_data=", cqe.value("user_data", Json()).dump());
    out += " res=" + (cqe.contains("res") && cqe["res"].is_number_integer() ? res_text(cqe["res"].get<int>())
                                                                            : cqe.value("res", Json()).dump());
    out += " flags=" + (cqe.contains("flag_names") ? cqe["flag_names"].get<std::string>() : cqe.value("flags", Json()).dump());
    if (cqe.contains("t_us") && cqe["t_us"].is_number()) out += str(" t=", cqe["t_us"].get<double>(), "us");
    return out;
}

std::string as_text(const Json& value) { return value.is_string() ? value.get<std::string>() : dump_line(value); }

}  // namespace

std::string dump_line(const Json& value, int indent) {
    return value.dump(indent, ' ', false, Json::error_handler_t::replace);
}

std::string to_valid_utf8(std::string_view text) {
    static const char kReplacement[] = "\xEF\xBF\xBD";
    std::string out;
    out.reserve(text.size());
    size_t i = 0;
    while (i < text.size()) {
        auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
        unsigned char lead = byte(i);
        size_t length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
        bool valid = length > 0 && i + length <= text.size();
        for (size_t k = 1; valid && k < length; ++k) valid = (byte(i + k) & 0xC0) == 0x80;
        if (valid && length > 1) {
            uint32_t cp = lead & (0x7F >> length);
            for (size_t k = 1; k < length; ++k) cp = (cp << 6) | (byte(i + k) & 0x3F);
            static const uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
            valid = cp >= kMinimum[length] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
        }
        if (valid) {
            out.append(text.substr(i, length));
            i += length;
        } else {
            out += kReplacement;
            ++i;
        }
    }
    return out;
}

PreviousRun read_previous_run(const std::string& jsonl_path) {
    PreviousRun previous;
    previous.jsonl_path = jsonl_path;
    std::string text = read_whole_file(jsonl_path);
    // Everything after the last newline is a line cut short by a kill.
    size_t last_newline = text.rfind('\n');
    previous.complete_bytes = last_newline == std::string::npos ? 0 : last_newline + 1;
    std::map<std::string, size_t> index_of;
    size_t start = 0, line_number = 0;
    while (start < previous.complete_bytes) {
        size_t end = text.find('\n', start);
        std::string_view raw(text.data() + start, end - start);
        start = end + 1;
        ++line_number;
        if (raw.find_first_not_of(" \t\r") == std::string_view::npos) continue;
        std::string where = jsonl_path + ":" + std::to_string(line_number);
        Json line = Json::parse(raw, nullptr, false);
        if (line.is_discarded() || !line.is_object() || !line.contains("type") || !line["type"].is_string())
            throw std::runtime_error(where + ": not a uring-conform JSON line");
        std::string type = line["type"];
        line.erase("type");
        if (previous.header.is_null()) {
            if (type != "header" || !line.contains("run") || !line["run"].is_object() ||
                !line.contains("kernel") || !line["kernel"].value("release", Json()).is_string())
                throw std::runtime_error(where + ": the first line is not a uring-conform run header");
            previous.header = std::move(line);
        } else if (type == "result") {
            if (!line.value("id", Json()).is_string() || !line.value("verdict", Json()).is_string() ||
                !line.value("duration_ms", Json()).is_number())
                throw std::runtime_error(where + ": result line without id, verdict or duration_ms");
            Result result;
            try {
                result = Result::from_json(line);
            } catch (const std::exception& e) {
                throw std::runtime_error(where + ": " + e.what());
            }
            auto [it, inserted] = index_of.emplace(result.id, previous.results.size());
            if (inserted)
                previous.results.push_back(std::move(result));
            else
                previous.results[it->second] = std::move(result);  // a later line is the newer word on it
        } else if (type == "start") {
            continue;  // which scenario ran when the run was cut: the stream reader's business
        } else if (type == "end") {
            previous.ended = true;
        } else {
            throw std::runtime_error(where + ": unexpected line of type '" + type + "'");
        }
    }
    if (previous.header.is_null()) throw std::runtime_error(jsonl_path + ": no complete header line to resume from");
    return previous;
}

ReportWriter::ReportWriter(OutputTarget report, std::string stream_path)
    : report_(std::move(report)), jsonl_path_(jsonl_path_for(report_.path)) {
    jsonl_ = open_jsonl_locked(jsonl_path_, 0);
    if (!stream_path.empty()) stream_ = open_for_writing(stream_path, O_CREAT | O_NOCTTY | O_APPEND);
}

ReportWriter::ReportWriter(OutputTarget report, std::string stream_path, const PreviousRun& previous)
    : report_(std::move(report)), jsonl_path_(previous.jsonl_path), resuming_(true) {
    jsonl_ = open_jsonl_locked(jsonl_path_, previous.complete_bytes);
    if (!stream_path.empty()) stream_ = open_for_writing(stream_path, O_CREAT | O_NOCTTY | O_APPEND);
}

std::string jsonl_path_for(const std::string& report_path) { return report_path + ".jsonl"; }

void ReportWriter::append(const Json& line, bool to_jsonl) {
    std::string text = dump_line(line) + "\n";
    if (to_jsonl) {
        write_all(jsonl_.get(), text, jsonl_path_);
        fsync(jsonl_.get());
    }
    if (stream_) {
        write_all(stream_.get(), text, "stream");
        fsync(stream_.get());  // a tty answers EINVAL; the write itself went out
    }
}

void ReportWriter::header(const Json& header) {
    header_ = header;
    Json line = {{"type", "header"}};
    line.update(header);
    append(line, !resuming_);
}

void ReportWriter::result(const Result& result) {
    results_.push_back(result);
    Json line = {{"type", "result"}};
    line.update(result.to_json());
    append(line);
}

void ReportWriter::started(const std::string& id, size_t index, size_t planned) {
    append({{"type", "start"}, {"id", id}, {"index", index}, {"planned", planned}});
}

void ReportWriter::carried_over(const Result& result) {
    Result carried = result;
    carried.resumed = true;
    results_.push_back(carried);
    Json line = {{"type", "result"}};
    line.update(carried.to_json());
    append(line, false);
}

std::string ReportWriter::finish(double duration_s) {
    append({{"type", "end"}, {"duration_s", duration_s}});
    final_ = Json::object();
    for (const char* key : {"schema_version", "tool", "kernel", "liburing", "probe"}) final_[key] = header_[key];
    Json run = header_["run"];
    run["duration_s"] = duration_s;
    run["ended"] = "complete";
    if (resuming_) run["resumed"] = true;
    final_["run"] = run;
    final_["results"] = Json::array();
    for (const Result& r : results_) final_["results"].push_back(r.to_json());
    final_["summary"] = summarize(results_);
    write_output(report_, dump_line(final_, 2) + "\n");
    unlink(jsonl_path_.c_str());
    return report_.path;
}

std::vector<std::string> evidence_lines(const Json& evidence, size_t max_output_lines) {
    std::vector<std::string> lines;
    if (!evidence.is_object()) return lines;
    for (const auto& [key, value] : evidence.items()) {
        if (key == "cqe_tail" && value.is_array()) {
            for (const Json& cqe : value) lines.push_back(cqe.is_object() ? cqe_line(cqe) : "cqe " + as_text(cqe));
        } else if (key == "output_tail" && value.is_string()) {
            std::vector<std::string> output;
            std::string text = value;
            size_t start = 0;
            while (start < text.size()) {
                size_t end = text.find('\n', start);
                if (end == std::string::npos) end = text.size();
                output.push_back("output: " + text.substr(start, end - start));
                start = end + 1;
            }
            size_t from = output.size() > max_output_lines ? output.size() - max_output_lines : 0;
            if (from) lines.push_back(str("output: [", from, " earlier lines left out]"));
            lines.insert(lines.end(), output.begin() + long(from), output.end());
        } else if (key == "kernel_log" && value.is_array()) {
            for (const Json& line : value) lines.push_back("kernel: " + as_text(line));
        } else if (value.is_array()) {
            // failures, outstanding, notes: one line each, named by the singular
            std::string label = key == "failures" ? "failure" : key == "notes" ? "note" : key;
            for (const Json& item : value) lines.push_back(label + ": " + as_text(item));
        } else {
            lines.push_back(key + ": " + as_text(value));
        }
    }
    return lines;
}

void print_summary(std::FILE* out, const std::vector<Result>& results, const std::string& report_path) {
    std::map<std::string, std::map<Verdict, int>> by_family;
    for (const Result& r : results) by_family[r.family][r.verdict]++;
    std::fprintf(out, "\n%-14s", "family");
    for (Verdict v : all_verdicts()) std::fprintf(out, " %6s", verdict_name(v).c_str());
    std::fprintf(out, "\n");
    for (auto& [family, counts] : by_family) {
        std::fprintf(out, "%-14s", family.c_str());
        for (Verdict v : all_verdicts()) std::fprintf(out, " %6d", counts[v]);
        std::fprintf(out, "\n");
    }
    std::vector<const Result*> slowest;
    for (const Result& r : results)
        if (r.duration_ms > 0) slowest.push_back(&r);
    size_t shown = std::min<size_t>(5, slowest.size());
    std::partial_sort(slowest.begin(), slowest.begin() + long(shown), slowest.end(),
                      [](const Result* a, const Result* b) { return a->duration_ms > b->duration_ms; });
    if (shown) std::fprintf(out, "\nslowest:\n");
    for (size_t i = 0; i < shown; ++i) std::fprintf(out, "  %8.0f ms  %s\n", slowest[i]->duration_ms, slowest[i]->id.c_str());
    auto status = [](const Result& r) { return r.expectation.is_object() ? r.expectation.value("status", "") : ""; };
    auto section = [&](const char* title, auto&& wanted) {
        bool header = false;
        for (const Result& r : results) {
            if (!wanted(r)) continue;
            if (!header) std::fprintf(out, "\n%s:\n", title);
            header = true;
            std::fprintf(out, "  %-5s %s\n        %s\n", verdict_name(r.verdict).c_str(), r.id.c_str(), r.reason.c_str());
            if (!status(r).empty())
                std::fprintf(out, "        expected %s: %s\n", r.expectation.value("expected", "").c_str(),
                             r.expectation.value("reason", "").c_str());
        }
    };
    section("not passing", [](const Result& r) { return counts_as_failure(r); });
    section("known issues (xfail: the expected verdict happened)", [&](const Result& r) { return status(r) == "xfail"; });
    section("worth attention (xpass: a known issue did not show)", [&](const Result& r) { return status(r) == "xpass"; });
    std::fprintf(out, "\nreport: %s\n", report_path.c_str());
}

}  // namespace uc
