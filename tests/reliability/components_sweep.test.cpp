// Property sweep over every component at random valid inputs spanning the ranges of
// docs/RELIABILITY.md: no NaN, variances >= 0 (or +inf), |corr| <= 1, no exception. The
// point counts are shares of SIGPROP_SWEEP_POINTS (default 1e5 over all reliability
// sweeps); SIGPROP_SWEEP_POINTS=1e7 is the long run the doc records.
#include <doctest/doctest.h>

#include <algorithm>

#include "reliability/checks.hpp"
#include "reliability/sampling.hpp"
#include "sigprop/sigprop.hpp"

namespace {

using namespace sigprop;
using reliability::sampler;
using reliability::show;

/// Runs forward and backward of the component `make(rng)` builds at `n` random points.
template <class Make>
reliability::tally sweep(long long n, std::uint64_t seed, bool zero_mean, Make make) {
    sampler rng(seed);
    reliability::tally t;
    for (long long i = 0; i < n; ++i) {
        const auto c = make(rng);
        const signal<double> x = rng.any_signal(zero_mean);
        const gradient<double> g = rng.any_gradient();
        const signal<double> y = forward(c, x);
        const gradient<double> d = backward(c, x, g);
        t.record_lazy(reliability::good(y) && reliability::good(d), [&] {
            return "x " + show(x) + " g " + show(g) + " -> y " + show(y) + " dx " + show(d);
        });
    }
    return t;
}

void require(const reliability::tally& t) {
    INFO("first failure: " << t.first);
    CHECK(t.points > 0);
    CHECK(t.failures == 0);
}

}  // namespace

TEST_CASE("reliability: components keep their invariants over wide random inputs") {
    // Shares of the total point budget: cheap closed forms get most points, attention
    // (O(1) but heavier) fewer, causal attention (O(L)) the fewest.
    SUBCASE("linear") {
        require(sweep(reliability::points(0.1), 1, false, [](sampler& r) {
            return linear<double>{r.log_int(1e6), r.log_int(1e6), r.sigma()};
        }));
    }
    SUBCASE("relu, both forms") {
        require(sweep(reliability::points(0.1), 2, false, [](sampler&) { return relu<double>{}; }));
        require(sweep(reliability::points(0.02), 3, true, [](sampler&) { return relu<double>{form::paper}; }));
    }
    SUBCASE("gelu, both forms") {
        require(sweep(reliability::points(0.08), 4, true, [](sampler&) { return gelu<double>{}; }));
        require(sweep(reliability::points(0.02), 5, true, [](sampler&) { return gelu<double>{form::paper}; }));
    }
    SUBCASE("layer_norm, both forms") {
        // x.var = 0 is outside layer_norm's domain (0/0): the sampler's zero variances are
        // replaced by the smallest of the range.
        const auto ln = [](form f) {
            return [f](sampler& r) { return layer_norm<double>{std::max(2, r.log_int(1e6)), f}; };
        };
        for (form f : {form::best, form::paper}) {
            sampler rng(6);
            reliability::tally t;
            for (long long i = 0; i < reliability::points(0.05); ++i) {
                const auto c = ln(f)(rng);
                signal<double> x = rng.any_signal(false);
                x.var = std::max(x.var, 1e-12);
                const gradient<double> g = rng.any_gradient();
                const signal<double> y = forward(c, x);
                const gradient<double> d = backward(c, x, g);
                t.record_lazy(reliability::good(y) && reliability::good(d),
                              [&] { return "d " + std::to_string(c.d) + " x " + show(x) + " -> " + show(y) + show(d); });
            }
            require(t);
        }
    }
    SUBCASE("dropout") {
        require(sweep(reliability::points(0.1), 7, false, [](sampler& r) { return dropout<double>{r.drop()}; }));
    }
    SUBCASE("softmax, every form") {
        for (form f : {form::best, form::paper, form::paper_large_l})
            require(sweep(reliability::points(0.05), 8, false,
                          [f](sampler& r) { return softmax<double>{std::max(2, r.log_int(1e6)), f}; }));
    }
    SUBCASE("attention, both forms") {
        for (form f : {form::best, form::paper})
            require(sweep(reliability::points(0.05), 9, true, [f](sampler& r) {
                return attention<double>{r.log_int(1e6), r.log_int(1e6), std::max(2, r.log_int(1e6)), r.sigma(),
                                         r.sigma(), r.sigma(), r.drop(), f};
            }));
    }
    SUBCASE("multi_head_attention, bidirectional and causal") {
        const auto mha = [](bool causal, double max_L) {
            return [causal, max_L](sampler& r) {
                const int heads = r.log_int(64);
                return multi_head_attention<double>{heads * r.log_int(1e4), heads, std::max(2, r.log_int(max_L)),
                                                    r.sigma(), r.sigma(), r.sigma(), r.sigma(), r.drop(), causal};
            };
        };
        require(sweep(reliability::points(0.05), 10, true, mha(false, 1e6)));
        // Causal rows cost O(L): L up to 1e6 but fewer points.
        require(sweep(reliability::points(0.002), 11, true, mha(true, 1e6)));
    }
    SUBCASE("embedding") {
        sampler rng(12);
        reliability::tally t;
        for (long long i = 0; i < reliability::points(0.05); ++i) {
            embedding<double> e;
            for (int k = 1 + int(rng.uniform(0, 4)); k > 0; --k)
                e.tables.push_back({rng.sigma(), std::abs(rng.corr())});
            const gradient<double> g = rng.any_gradient();
            const int L = std::max(2, rng.log_int(1e6)), d = rng.log_int(1e6);
            gradient<double> gl = g;
            gl.corr = std::max(gl.corr, -1.0 / (L - 1));  // the least correlation L tokens can have
            const signal<double> y = forward(e);
            const double w = weight_grad_sq_norm(e, gl, L, d, 0);
            t.record(reliability::good(y) && reliability::good(backward(e, g)) && reliability::good_var(w),
                     "embedding " + show(y));
        }
        require(t);
    }
}
