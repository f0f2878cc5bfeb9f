// The sweep journal (sweep/journal.hpp): what a resumed sigprop-validate run takes over.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "sigprop/validation/sweep/journal.hpp"

namespace fs = std::filesystem;
using namespace sigprop::validation;

namespace {

struct journal_fixture {
    grid_set set = restrict_to(quick_grids(), "linear");
    sweep_options o{};
    std::vector<planned_point> pts = plan(set, o);
    nlohmann::json identity = journal_identity(set.name, "linear", pts, o, "cpu");
    std::string path = (fs::temp_directory_path() / ("sigprop-journal-" + std::to_string(::getpid()))).string();

    point_record record(std::size_t i) const {
        point_record r;
        r.index = pts[i].index;
        r.component = "linear";
        r.p = pts[i].p;
        r.sequences = 64;
        r.measured = {0.1 * double(i), 1.0 / 3, 2, 3, 4};
        return r;
    }
    ~journal_fixture() { fs::remove(path); }
};

}  // namespace

TEST_CASE_FIXTURE(journal_fixture, "journal: records come back as the exact JSON that was written") {
    CHECK_FALSE(read_journal(path, identity).has_value());  // none yet: start afresh
    {
        journal_writer w(path, identity, false);
        w.append(record(0));
        w.append(record(1));
        CHECK(w.ok());
    }
    const auto back = read_journal(path, identity);
    REQUIRE(back.has_value());
    REQUIRE(back->size() == 2);
    CHECK((*back)[1].dump() == to_json(record(1)).dump());
}

TEST_CASE_FIXTURE(journal_fixture, "journal: a torn last line is cut off and appending goes on after it") {
    {
        journal_writer w(path, identity, false);
        w.append(record(0));
    }
    const auto whole = fs::file_size(path);
    std::ofstream(path, std::ios::app) << R"({"index": 1, "compo)";
    CHECK(read_journal(path, identity)->size() == 1);
    CHECK(fs::file_size(path) == whole);
    {
        journal_writer w(path, identity, true);
        w.append(record(1));
    }
    CHECK(read_journal(path, identity)->size() == 2);
}

TEST_CASE_FIXTURE(journal_fixture, "journal: another run's or a damaged journal is refused") {
    {
        journal_writer w(path, identity, false);
        w.append(record(0));
    }
    sweep_options other = o;
    other.seed = 1;
    CHECK_THROWS_WITH_AS(read_journal(path, journal_identity(set.name, "linear", pts, other, "cpu")),
                         doctest::Contains("its seed is 20240311, this run's 1"), sweep_error);
    CHECK_THROWS_WITH_AS(read_journal(path, journal_identity(set.name, "linear", pts, o, "cuda")),
                         doctest::Contains("its backend"), sweep_error);
    // The same settings over other points (a grid file edited in between).
    std::vector<planned_point> edited = pts;
    edited.back().p["sigma_w"] += 1;
    CHECK_THROWS_WITH_AS(read_journal(path, journal_identity(set.name, "linear", edited, o, "cpu")),
                         doctest::Contains("its points differ"), sweep_error);
    std::ofstream(path, std::ios::app) << "{\"index\": \"x\"}\n";
    CHECK_THROWS_WITH_AS(read_journal(path, identity), doctest::Contains("not a point's record"), sweep_error);
}

TEST_CASE_FIXTURE(journal_fixture, "journal: a fresh journal that got no point is removed with its writer") {
    { journal_writer w(path, identity, false); }
    CHECK_FALSE(fs::exists(path));
    {
        journal_writer w(path, identity, false);
        w.append(record(0));
    }
    CHECK(fs::exists(path));
}
