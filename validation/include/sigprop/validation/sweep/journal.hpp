#pragma once
// The journal of a sweep: what lets an interrupted sigprop-validate run resume.
//
// A text file of JSON lines. The first line identifies the run (its `identity`); every
// further line is the JSON record of one finished point, handed to the kernel as the point
// finishes (so a killed process loses at most the line it was writing, left torn). A
// resumed run checks that the journal's identity equals its own, takes the records over
// verbatim (their JSON text, so the final output is byte for byte that of an uninterrupted
// run) and measures only the points the journal lacks.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "sigprop/validation/sweep/record.hpp"
#include "sigprop/validation/sweep/run.hpp"

namespace sigprop::validation {

namespace detail {

/// FNV-1a, 64 bits: a fingerprint of the planned points, not a security measure.
inline std::uint64_t fnv1a(const std::string& s) {
    std::uint64_t h = 14695981039346656037ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

}  // namespace detail

/// What must match for a journal to be resumed: the filters and settings as given, and a
/// fingerprint of every planned point (index, component, sample count, parameters), which
/// catches a grid file edited in between. `backend` names the measuring code (cpu, cuda,
/// cuda-tf32), which rounds differently.
inline nlohmann::json journal_identity(const std::string& grid, const std::string& component,
                                       const std::vector<planned_point>& pts, const sweep_options& o,
                                       const std::string& backend) {
    std::string plan;
    char buf[64];
    for (const auto& pt : pts) {
        plan += std::to_string(pt.index) + ' ' + pt.grid->component + ' ' + std::to_string(pt.grid->sequences);
        for (const auto& [name, value] : pt.p) {
            std::snprintf(buf, sizeof buf, " %.17g", value);
            plan += ' ' + name + buf;
        }
        plan += '\n';
    }
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(detail::fnv1a(plan)));
    nlohmann::json where = nlohmann::json::object();
    for (const auto& [name, values] : o.where) where[name] = values;
    return {{"journal", "sigprop-validate"}, {"version", 1},          {"grid", grid},
            {"component", component},       {"where", where},         {"seed", o.seed},
            {"shard", {o.shard_index, o.shard_count}}, {"max_blocks", o.max_blocks},
            {"backend", backend},           {"points", pts.size()},   {"plan", buf}};
}

/// The finished points of a journal, as the JSON of their records, in file order; nothing
/// if there is no journal or not even its first line is complete (start afresh). Throws
/// sweep_error (one line) if the journal belongs to another run or is damaged. A torn last
/// line (no newline: the process died while writing it) is cut off the file.
inline std::optional<std::vector<nlohmann::json>> read_journal(const std::string& path,
                                                               const nlohmann::json& identity) {
    std::ifstream in(path, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::size_t complete = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    std::vector<nlohmann::json> records;
    std::size_t pos = 0;
    const auto foreign = [&](const std::string& why) {
        return sweep_error("journal '" + path + "' belongs to another run (" + why +
                           "); rerun without --resume to start afresh");
    };
    const auto damaged = [&](const std::string& why) {
        return sweep_error("journal '" + path + "' " + why + "; delete it to start afresh");
    };
    while (pos < complete) {
        const std::size_t end = text.find('\n', pos);
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(text.substr(pos, end - pos));
        } catch (const nlohmann::json::exception&) {
            throw damaged("is damaged at byte " + std::to_string(pos));
        }
        if (pos == 0) {
            // The named settings first, as they make the clearer message; then the points.
            for (const auto& [key, value] : identity.items())
                if (key != "plan" && (!j.contains(key) || j[key] != value))
                    throw foreign("its " + key + " is " + (j.contains(key) ? j[key].dump() : "missing") +
                                  ", this run's " + value.dump());
            if (j.value("plan", "") != identity["plan"])
                throw foreign("its points differ from this run's: was the grid file changed?");
        } else {
            try {
                record_from_json(j);
            } catch (const nlohmann::json::exception&) {
                throw damaged("holds a line that is not a point's record at byte " + std::to_string(pos));
            }
            records.push_back(std::move(j));
        }
        pos = end + 1;
    }
    if (complete == 0) return std::nullopt;
    if (complete < text.size() && ::truncate(path.c_str(), static_cast<off_t>(complete)) != 0)
        throw damaged("cannot be cut back to its last complete line");
    return records;
}

/// Appends records to a journal, one line per point; safe to call from several threads.
class journal_writer {
public:
    /// A fresh journal (identity as its first line) or, with `append`, the existing one.
    journal_writer(const std::string& path, const nlohmann::json& identity, bool append)
        : path_(path), appended_(append) {
        fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
        if (fd_ < 0) throw sweep_error("cannot write the journal '" + path + "'");
        if (!append && !write_line(identity.dump())) throw sweep_error("cannot write the journal '" + path + "'");
    }
    journal_writer(const journal_writer&) = delete;
    journal_writer& operator=(const journal_writer&) = delete;
    /// A fresh journal that got no point (the run failed before measuring any) goes too.
    ~journal_writer() {
        if (fd_ < 0) return;
        ::close(fd_);
        if (!appended_) std::remove(path_.c_str());
    }

    /// Called from inside the parallel sweep, so it does not throw: a failure shows in ok().
    void append(const point_record& r) {
        const std::string line = to_json(r).dump();
        std::lock_guard<std::mutex> lock(m_);
        if (!write_line(line)) failed_ = true;
        appended_ = true;
    }

    /// Whether every line so far reached the file.
    bool ok() {
        std::lock_guard<std::mutex> lock(m_);
        return !failed_;
    }

    /// The run is complete and its output in place: the journal goes.
    void remove() {
        ::close(fd_);
        fd_ = -1;
        std::remove(path_.c_str());
    }

private:
    // Straight to the kernel, no user-space buffer: what write(2) took survives the process.
    bool write_line(std::string line) {
        line += '\n';
        std::size_t done = 0;
        while (done < line.size()) {
            const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
            if (n < 0) return false;
            done += std::size_t(n);
        }
        return true;
    }

    std::string path_;
    int fd_{-1};
    std::mutex m_;
    bool failed_{false};
    bool appended_;  ///< holds a point (or held some before this run): kept on failure
};

}  // namespace sigprop::validation
