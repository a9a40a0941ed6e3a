#include "kmsg.h"

#include <algorithm>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace uc {
namespace {

constexpr size_t kMaxLogLines = 200;
constexpr size_t kMaxLogBytes = 32 * 1024;

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }
bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::optional<uint64_t> parse_u64(const std::string& text) {
    if (text.empty()) return std::nullopt;
    uint64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + uint64_t(c - '0');
    }
    return value;
}

}  // namespace

std::optional<KmsgRecord> parse_kmsg_record(const std::string& line) {
    size_t semicolon = line.find(';');
    if (semicolon == std::string::npos || line.empty() || line[0] == ' ') return std::nullopt;
    std::string fields[3];
    size_t start = 0;
    for (std::string& field : fields) {
        size_t comma = line.find(',', start);
        if (comma == std::string::npos || comma > semicolon) return std::nullopt;
        field = line.substr(start, comma - start);
        start = comma + 1;
    }
    auto prio = parse_u64(fields[0]), seq = parse_u64(fields[1]), ts = parse_u64(fields[2]);
    if (!prio || !seq || !ts) return std::nullopt;
    KmsgRecord record;
    // The prefix packs syslog facility and level: facility * 8 + level.
    record.facility = int(*prio >> 3);
    record.level = int(*prio & 7);
    record.seq = *seq;
    record.ts_usec = *ts;
    record.text = line.substr(semicolon + 1);
    while (!record.text.empty() && record.text.back() == '\n') record.text.pop_back();
    return record;
}

// Openings of the kernel's own reports: __warn() prints "WARNING: CPU:",
// lockdep "WARNING: possible circular locking dependency detected" and
// friends, KASAN/KFENCE "BUG: KASAN: ...", die() "Oops: ..." and on x86
// "general protection fault", the hung task detector "INFO: task ...
// blocked for more than N seconds", RCU "rcu: INFO: ... detected stalls".
// Not "traps: prog[123] general protection fault ip:...": that is a user
// process dying of SIGSEGV, which the runner reports as a crash itself.
// The same list, in the same order, is reports/kernel-splats.json, which the
// Python side reads (a unit test checks they agree); the first match wins.
const std::vector<SplatPattern>& kernel_splat_patterns() {
    static const std::vector<SplatPattern> patterns{
        {"cut-here", "------------[ cut here ]------------", {}},
        {"warn", "WARNING: CPU:", {}},
        {"warn", "WARNING: at ", {}},
        {"lockdep", "WARNING: ", {"lock"}},
        {"lockdep", "WARNING: ", {"RCU"}},
        {"warn", "WARNING: ", {}},
        {"lockdep", "INFO: possible irq lock inversion", {}},
        {"lockdep", "INFO: trying to register non-static key", {}},
        {"kasan", "BUG: KASAN:", {}},
        {"kfence", "BUG: KFENCE:", {}},
        {"bug", "BUG: ", {}},
        {"bug", "kernel BUG at ", {}},
        {"ubsan", "UBSAN: ", {}},
        {"gpf", "general protection fault", {}},
        {"gpf", "Oops: general protection fault", {}},
        {"oops", "Oops", {}},
        {"oops", "", {"Internal error: Oops"}},
        {"panic", "Kernel panic - not syncing", {}},
        {"call-trace", "Call Trace:", {}},
        {"hung-task", "INFO: task ", {"blocked for more than"}},
        {"rcu-stall", "", {"rcu: INFO:", "stall"}},
    };
    return patterns;
}

std::string classify_kernel_line(const std::string& text) {
    for (const SplatPattern& p : kernel_splat_patterns()) {
        if (!starts_with(text, p.prefix)) continue;
        if (std::all_of(p.contains.begin(), p.contains.end(), [&](const std::string& part) { return contains(text, part); }))
            return p.kind;
    }
    return "";
}

std::string taint_letters(uint64_t taint) {
    // Bit n of the taint word is the n-th letter (tainted-kernels.rst table).
    static const char kLetters[] = "PFSRMBUDAWCIOELKXTNJ";
    std::string out;
    for (size_t bit = 0; bit + 1 < sizeof(kLetters); ++bit)
        if (taint & (uint64_t(1) << bit)) out += kLetters[bit];
    if (taint >> (sizeof(kLetters) - 1)) out += "?";
    return out;
}

KernelWatch::KernelWatch(const std::string& kmsg_path, const std::string& taint_path) {
    int fd = open(kmsg_path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        notes_.push_back("kernel log check skipped: cannot open " + kmsg_path + ": " + std::strerror(errno) +
                         (errno == EPERM || errno == EACCES ? " (kernel.dmesg_restrict?)" : ""));
    } else {
        kmsg_.reset(fd);
        // Only what the run causes matters: start at the end of the log.
        if (lseek(fd, 0, SEEK_END) < 0) {
            notes_.push_back("kernel log check skipped: cannot seek " + kmsg_path + ": " + std::strerror(errno));
            kmsg_.reset();
        }
    }
    fd = open(taint_path.c_str(), O_RDONLY | O_CLOEXEC);
    int open_error = errno;
    if (fd >= 0) taint_.reset(fd);
    last_taint_ = read_taint();
    if (!last_taint_) {
        notes_.push_back("taint check skipped: cannot read " + taint_path +
                         (fd < 0 ? std::string(": ") + std::strerror(open_error) : std::string(": not a number")));
        taint_.reset();
    }
}

std::optional<uint64_t> KernelWatch::read_taint() {
    if (!taint_) return std::nullopt;
    char buf[32];
    ssize_t n = pread(taint_.get(), buf, sizeof(buf) - 1, 0);
    if (n <= 0) return std::nullopt;
    std::string text(buf, size_t(n));
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return parse_u64(text);
}

KernelFindings KernelWatch::collect() {
    KernelFindings found;
    if (kmsg_) {
        // Every read of /dev/kmsg returns one record; a regular file (tests)
        // returns many, so records are split on newlines either way.
        char buf[16384];  // more than the longest record /dev/kmsg formats (CONSOLE_EXT_LOG_MAX, 8 KiB)
        std::vector<std::string> window;
        // Where the first splat starts, and its first telling line (the
        // WARNING: after a "cut here" marker) that names it in the reason.
        std::optional<size_t> splat_at, telling_at;
        for (;;) {
            ssize_t n = read(kmsg_.get(), buf, sizeof(buf));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EPIPE) {  // overwritten before we read them: go on with the next
                found.lost_records = true;
                continue;
            }
            if (n < 0 && errno == EINVAL) {  // a record longer than buf: it would block every later read
                found.lost_records = true;
                lseek(kmsg_.get(), 0, SEEK_END);
                break;
            }
            if (n <= 0) break;  // EAGAIN: nothing more; 0: end of a regular file
            partial_.append(buf, size_t(n));
            size_t start = 0, newline;
            while ((newline = partial_.find('\n', start)) != std::string::npos) {
                std::string line = partial_.substr(start, newline - start);
                start = newline + 1;
                auto record = parse_kmsg_record(line);
                // Userspace can write anything to /dev/kmsg; only the kernel's own records count.
                if (!record || record->facility != 0) continue;
                std::string kind = classify_kernel_line(record->text);
                if (!kind.empty() && !splat_at) splat_at = window.size();
                if (!kind.empty() && kind != "cut-here" && !telling_at) telling_at = window.size();
                window.push_back(std::move(record->text));
            }
            partial_.erase(0, start);
        }
        // Evidence: from the first splat on (the whole window when only the taint changed).
        if (splat_at) found.first_splat = window[telling_at.value_or(*splat_at)];
        size_t log_bytes = 0;
        for (size_t i = splat_at.value_or(0); i < window.size() && found.log.size() < kMaxLogLines; ++i) {
            log_bytes += window[i].size();
            if (log_bytes > kMaxLogBytes) break;
            found.log.push_back(std::move(window[i]));
        }
    }
    if (taint_) {
        found.taint_before = last_taint_;
        found.taint_after = read_taint();
        if (found.taint_after) last_taint_ = found.taint_after;
    }
    if (!found.splat() && !found.taint_changed()) found.log.clear();
    return found;
}

}  // namespace uc
