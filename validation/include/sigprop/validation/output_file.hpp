#pragma once
// Output files that appear whole or not at all, for every sigprop tool that writes one
// (sigprop-validate, sigprop-model-mc, sigprop-gpu-bench, sigprop init, predict --plot).
//
// An output_file writes to PATH.tmp.<pid> in the same directory and renames it to PATH on
// commit(): rename(2) within one file system replaces the name in one step, so a reader
// sees the old file or the new one, never half of one. Until then the temporary name is
// registered in a fixed table that a SIGINT/SIGTERM handler removes before the process
// dies of the signal; the destructor removes it after an error or exception. Only a
// SIGKILL (or a power cut) can leave a PATH.tmp.<pid> behind, never a partial PATH.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>

#include <unistd.h>

namespace sigprop::validation {

/// An output file could not be created, written or renamed into place.
struct output_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

namespace detail {

// The handler may run at any moment on any thread, so it reads only this fixed table: no
// allocation, no locks, only lock-free atomics and unlink(2), which POSIX lists as
// async-signal-safe (signal-safety(7)).
constexpr std::size_t cleanup_slots = 16;
constexpr std::size_t cleanup_path_max = 4096;

struct cleanup_slot {
    enum : int { free_slot = 0, filling = 1, armed = 2 };
    std::atomic<int> state{free_slot};
    char path[cleanup_path_max]{};
};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs lock-free atomics");

inline cleanup_slot cleanup_table[cleanup_slots];

extern "C" inline void remove_temporaries_and_die(int sig) {
    for (auto& slot : cleanup_table)
        if (slot.state.load(std::memory_order_acquire) == cleanup_slot::armed) ::unlink(slot.path);
    // The default action, so the parent sees death by this signal (a shell: status 128 + sig).
    // The signal is blocked while its handler runs: it is delivered as the handler returns.
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

/// Installs the handler for SIGINT and SIGTERM unless it is there already (checked each
/// time: a test harness may have put its own in between). A signal the parent set to be
/// ignored (nohup, a background job of a script) stays ignored.
inline void install_cleanup_handler() {
    for (int sig : {SIGINT, SIGTERM}) {
        struct sigaction now {};
        if (::sigaction(sig, nullptr, &now) != 0) continue;
        if (now.sa_handler == SIG_IGN || now.sa_handler == remove_temporaries_and_die) continue;
        struct sigaction act {};
        act.sa_handler = remove_temporaries_and_die;
        sigemptyset(&act.sa_mask);
        ::sigaction(sig, &act, nullptr);
    }
}

/// Registers `path` for removal by the handler; returns its slot.
inline cleanup_slot& register_temporary(const std::string& path) {
    if (path.size() >= cleanup_path_max) throw output_error("output path too long: '" + path + "'");
    for (auto& slot : cleanup_table) {
        int expected = cleanup_slot::free_slot;
        if (!slot.state.compare_exchange_strong(expected, cleanup_slot::filling)) continue;
        std::memcpy(slot.path, path.c_str(), path.size() + 1);
        slot.state.store(cleanup_slot::armed, std::memory_order_release);
        return slot;
    }
    throw output_error("more than " + std::to_string(cleanup_slots) + " output files open at once");
}

}  // namespace detail

/// A file written under a temporary name and renamed into place by commit(). Not committed
/// (an error, an exception, SIGINT, SIGTERM): the temporary is removed and PATH untouched.
class output_file {
public:
    /// Creates PATH.tmp.<pid>; throws output_error if it cannot.
    explicit output_file(std::string path)
        : path_(std::move(path)), temp_(path_ + ".tmp." + std::to_string(::getpid())) {
        detail::install_cleanup_handler();
        slot_ = &detail::register_temporary(temp_);
        out_.open(temp_, std::ios::binary | std::ios::trunc);
        if (!out_) {
            release();
            throw output_error("cannot write '" + path_ + "'");
        }
    }
    output_file(const output_file&) = delete;
    output_file& operator=(const output_file&) = delete;
    ~output_file() {
        if (slot_ == nullptr) return;
        out_.close();
        std::remove(temp_.c_str());
        release();
    }

    std::ostream& stream() { return out_; }
    /// The temporary's name, for a child process that writes the file itself (gnuplot).
    const std::string& temp_path() const { return temp_; }
    const std::string& path() const { return path_; }

    /// Flushes, closes and renames the temporary to PATH; throws output_error on failure
    /// (the temporary is then removed by the destructor).
    void commit() {
        out_.flush();
        const bool written = static_cast<bool>(out_);
        out_.close();
        if (!written || out_.fail()) throw output_error("cannot write '" + path_ + "'");
        if (std::rename(temp_.c_str(), path_.c_str()) != 0)
            throw output_error("cannot rename the output into '" + path_ + "'");
        release();
    }

private:
    void release() {
        slot_->state.store(detail::cleanup_slot::free_slot, std::memory_order_release);
        slot_ = nullptr;
    }

    std::string path_, temp_;
    detail::cleanup_slot* slot_{nullptr};
    std::ofstream out_;
};

/// Writes `text` to `path` through an output_file.
inline void write_file_atomically(const std::string& path, const std::string& text) {
    output_file f(path);
    f.stream() << text;
    f.commit();
}

}  // namespace sigprop::validation
