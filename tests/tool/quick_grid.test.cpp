// The quick grid of sigprop-validate: every scored quantity of every point agrees with
// our formulas within a few standard errors of its measurement.
#include <doctest/doctest.h>

#include "sigprop/validation/sweep/run.hpp"
#include "support/agreement.hpp"

using namespace sigprop::validation;

TEST_CASE("validate: the quick grid agrees with the best formulas within standard errors") {
    const grid_set set = quick_grids();
    const auto records = run_sweep(plan(set, sweep_options{}), sweep_options{});
    REQUIRE(records.size() == set.size());
    for (const auto& r : records) {
        const driver& d = find_driver(r.component);
        for (quantity q : all_quantities) {
            if (!d.scored[int(q)]) continue;
            INFO(r.component << " point " << r.index << ", " << name_of(q));
            sigprop::test::check_agrees(name_of(q), r.best[int(q)], measured{r.measured[int(q)], r.se[int(q)]});
        }
    }
}

TEST_CASE("validate: sharding partitions the points and keeps their experiment ids") {
    const grid_set set = quick_grids();
    std::size_t total = 0;
    for (int i = 0; i < 3; ++i) {
        const auto pts = plan(set, sweep_options{1, i, 3, 16});
        for (const auto& pt : pts) CHECK(pt.index % 3 == std::size_t(i));
        total += pts.size();
    }
    CHECK(total == set.size());
    CHECK_THROWS_AS(plan(set, sweep_options{1, 3, 3, 16}), sweep_error);
}

TEST_CASE("validate: the error metric of the paper") {
    // A variance: plain relative error.
    CHECK(relative_error(quantity::x_var, 1.1, 1.0, 1.0) == doctest::Approx(0.1));
    // A mean near zero: relative to the predicted variance when that is smaller.
    CHECK(relative_error(quantity::x_mean, 0.0, 0.01, 2.0) == doctest::Approx(0.005));
    CHECK(relative_error(quantity::x_cov, 0.5, 0.4, 10.0) == doctest::Approx(0.01));
    // Percentiles interpolate between order statistics.
    CHECK(percentile({1, 2, 3, 4, 5}, 50) == 3);
    CHECK(percentile({1, 2, 3, 4, 5}, 90) == doctest::Approx(4.6));
}

TEST_CASE("validate: paper grid sizes match REFERENCE.md section 5") {
    const grid_set set = paper_grids();
    std::map<std::string, std::size_t> n;
    for (const auto& g : set.grids) n[g.component] += g.size();
    CHECK(n["linear"] == 13122);
    CHECK(n["relu"] == 450);
    CHECK(n["gelu"] == 450);
    CHECK(n["layer_norm"] == 4050);
    CHECK(n["dropout"] == 4374);
    CHECK(n["softmax"] == 625);
    CHECK(n["attention"] == 26244);
    // Every point of every paper grid is a valid input of its component.
    CHECK_NOTHROW(predict_all(plan(set, sweep_options{})));
}
