// predict()'s shortcuts for the linear layers, the hidden dropout and the gradient scaling
// (models/predict.hpp) against the components' overflow-safe forms, on the normal path
// and at its edges (zero, subnormal, huge and infinite moments); and the per-thread caches
// it reuses from one call to the next.
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "sigprop/models.hpp"

using namespace sigprop;

namespace {

// Equal to a few ulps, or to `units` of denorm_min where the product underflowed; exactly
// equal where the value is infinite.
void check_ulps(double a, double b, double units = 0) {
    INFO(a << " against " << b);
    if (std::isinf(b)) {
        CHECK(a == b);
        return;
    }
    const double dmin = std::numeric_limits<double>::denorm_min();
    CHECK(std::abs(a - b) <= 8 * std::numeric_limits<double>::epsilon() * std::abs(b) + units * dmin);
}

const double inf = std::numeric_limits<double>::infinity();
const double tiny = std::numeric_limits<double>::denorm_min() * 64;  // subnormal
const double huge = std::numeric_limits<double>::max() / 4;

}  // namespace

TEST_CASE("models: predict's linear, dropout and scaling shortcuts equal the components") {
    const std::vector<double> vars{0.0, tiny, 1e-300, 0.37, 1.0, 2.5e7, 1e300, huge, inf};
    const std::vector<double> means{0.0, tiny, 1e-200, -0.4, 3.0, 1e200, inf};
    const std::vector<double> sigmas{0.0, tiny, 1e-170, 0.02, 1.0, 1e160, huge};
    int fast = 0;
    for (double v : vars)
        for (double sigma : sigmas) {
            CAPTURE(v);
            CAPTURE(sigma);
            const gradient<double> g{v, 0.3};
            const auto got = detail::linear_backward(96, sigma, g);
            const auto want = detail::backward_impl(linear<double>{64, 96, sigma}, signal<double>{}, g);
            check_ulps(got.var, want.var, 96);  // sigma^2 v underflowed: the subnormal rounding, times d_out
            CHECK(got.corr == want.corr);
            const auto sg = detail::scale_gradient(sigma, g);
            const double s = detail::times0(sigma, std::sqrt(v));
            check_ulps(sg.var, s * s);
            for (double mu : means) {
                CAPTURE(mu);
                const signal<double> x{mu, v, -0.1};
                const auto y = detail::linear_forward(64, sigma, x);
                const auto w = detail::forward_impl(linear<double>{64, 96, sigma}, x);
                check_ulps(y.var, w.var);
                check_ulps(y.corr, w.corr);
                CHECK(y.mean == w.mean);
                fast += v >= 1e-300 && v <= 1e300 && std::abs(mu) <= 3 && sigma >= 0.02 && sigma <= 1;
            }
            const signal<double> f{0, v, 0.45};
            for (double p : {0.0, 0.1, 0.9}) {
                const auto d = detail::hidden_dropout(p, f);
                const auto e = detail::forward_impl(dropout<double>{p}, f);
                CHECK(d.mean == e.mean);
                CHECK(d.var == e.var);
                CHECK(d.corr == e.corr);
            }
            const signal<double> fm{0.5, v, 0.45};  // a mean takes the component's path
            const auto dm = detail::hidden_dropout(0.1, fm);
            const auto em = detail::forward_impl(dropout<double>{0.1}, fm);
            CHECK(dm.var == em.var);
            CHECK(dm.corr == em.corr);
        }
    CHECK(fast > 20);  // the normal path was exercised, not only the edges
}

TEST_CASE("models: predict's reused caches carry nothing from one call to the next") {
    // A call after calls on deeper models of other architectures and norm placements gives
    // bit-for-bit the result of the same call on a fresh thread, whose caches are empty.
    auto spec = [](architecture arch, norm_placement norm, int layers) {
        transformer_spec<double> s;
        s.layers = layers;
        s.arch = arch;
        s.norm = norm;
        s.d_model = 64;
        s.d_ff = 128;
        s.heads = 4;
        s.seq_len = 24;
        s.p_hidden = s.p_attention = 0.1;
        s.input = {0, 1.3, 0.2};
        s.sigmas.assign(std::size_t(arch == architecture::encoder_decoder ? 2 * layers : layers),
                        {0.1, 0.12, 0.11, 0.09, 0.1, 0.13, 0.1, 0.1, 0.1, 0.1});
        return s;
    };
    for (auto arch : {architecture::encoder, architecture::decoder, architecture::encoder_decoder})
        for (auto norm : {norm_placement::pre, norm_placement::post, norm_placement::none}) {
            CAPTURE(int(arch));
            CAPTURE(int(norm));
            const auto s = spec(arch, norm, 3);
            trajectory<double> first;
            std::thread([&] { first = predict(s); }).join();
            for (auto other : {architecture::encoder_decoder, architecture::decoder})
                for (auto onorm : {norm_placement::post, norm_placement::pre}) {
                    auto big = spec(other, onorm, 7);
                    big.input = {0.5, 40.0, 0.9};
                    (void)predict(big);
                }
            const auto again = predict(s);
            REQUIRE(again.points.size() == first.points.size());
            for (std::size_t i = 0; i < first.points.size(); ++i) {
                CHECK(again.points[i].x.var == first.points[i].x.var);
                CHECK(again.points[i].x.corr == first.points[i].x.corr);
                CHECK(again.points[i].g.var == first.points[i].g.var);
                CHECK(again.points[i].g.corr == first.points[i].g.corr);
            }
            for (std::size_t l = 0; l < first.weight_grads.size(); ++l) {
                CHECK(again.weight_grads[l].q == first.weight_grads[l].q);
                CHECK(again.weight_grads[l].ffn1 == first.weight_grads[l].ffn1);
                CHECK(again.weight_grads[l].cross_k == first.weight_grads[l].cross_k);
            }
        }
}

TEST_CASE("models: a model deeper than the reused caches gets its own, with the same results") {
    // Above detail::reused_cache_layers the caches are allocated per call (a thread keeps
    // nothing that large); the result equals the one on a fresh thread.
    transformer_spec<double> s;
    s.layers = detail::reused_cache_layers + 1;
    s.d_model = 32;
    s.d_ff = 64;
    s.heads = 2;
    s.seq_len = 8;
    s.sigmas.assign(std::size_t(s.layers), {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0, 0, 0, 0});
    trajectory<double> first;
    std::thread([&] { first = predict(s); }).join();
    auto small = s;
    small.layers = 5;
    small.sigmas.resize(5);
    (void)predict(small);  // warm this thread's caches with a different model
    const auto again = predict(s);
    REQUIRE(again.points.size() == first.points.size());
    CHECK(again.points.back().x.var == first.points.back().x.var);
    CHECK(again.points.front().g.var == first.points.front().g.var);
    CHECK(again.weight_grads.front().q == first.weight_grads.front().q);
    CHECK(again.weight_grads.back().ffn1 == first.weight_grads.back().ffn1);
}
