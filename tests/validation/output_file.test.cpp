// output_file: written whole under a temporary name and renamed, or not at all (on an
// error, an exception, SIGINT or SIGTERM).
#include <doctest/doctest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include "sigprop/validation/output_file.hpp"

namespace fs = std::filesystem;
using sigprop::validation::output_error;
using sigprop::validation::output_file;

namespace {

/// A fresh empty directory of its own.
fs::path scratch_dir(const std::string& name) {
    const fs::path d = fs::temp_directory_path() / ("sigprop-output-file-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

std::string read(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::size_t entries(const fs::path& d) {
    return std::size_t(std::distance(fs::directory_iterator(d), fs::directory_iterator()));
}

}  // namespace

TEST_CASE("output_file: commit renames the complete temporary into place") {
    const fs::path d = scratch_dir("commit");
    const std::string path = (d / "out.txt").string();
    {
        output_file f(path);
        CHECK(f.temp_path() == path + ".tmp." + std::to_string(::getpid()));
        f.stream() << "whole\n";
        CHECK(fs::exists(f.temp_path()));
        CHECK_FALSE(fs::exists(path));
        f.commit();
    }
    CHECK(read(path) == "whole\n");
    CHECK(entries(d) == 1);
    fs::remove_all(d);
}

TEST_CASE("output_file: without commit the temporary goes and an old file stays") {
    const fs::path d = scratch_dir("abandon");
    const std::string path = (d / "out.txt").string();
    std::ofstream(path) << "old\n";
    try {
        output_file f(path);
        f.stream() << "half";
        throw std::runtime_error("failed midway");
    } catch (const std::runtime_error&) {
    }
    CHECK(read(path) == "old\n");
    CHECK(entries(d) == 1);
    fs::remove_all(d);
}

TEST_CASE("output_file: an unwritable path throws output_error and frees its cleanup slot") {
    const fs::path d = scratch_dir("unwritable");
    // More failures than the handler's table has slots: each must give its slot back.
    for (std::size_t i = 0; i < 2 * sigprop::validation::detail::cleanup_slots; ++i)
        CHECK_THROWS_AS(output_file((d / "absent" / "out.txt").string()), output_error);
    output_file ok((d / "out.txt").string());
    CHECK(fs::exists(ok.temp_path()));
    fs::remove_all(d);
}

TEST_CASE("output_file: SIGTERM and SIGINT remove the temporary and kill by the signal") {
    for (int sig : {SIGTERM, SIGINT}) {
        const fs::path d = scratch_dir("signal");
        const std::string path = (d / "out.txt").string();
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            // The child may not return into doctest: any way out but the signal is status 3.
            std::signal(sig, SIG_DFL);  // as a tool starts, whatever the test runner set
            output_file f(path);
            f.stream() << "half" << std::flush;
            std::raise(sig);
            ::_exit(3);
        }
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        CHECK(WIFSIGNALED(status));
        CHECK(WTERMSIG(status) == sig);
        CHECK(entries(d) == 0);
        fs::remove_all(d);
    }
}
