// Fuzz target (c): every public formula entry point, with the component, its parameters,
// the scalar type and the input moments all decoded from the bytes. The entry points may
// only throw sigprop::invalid_argument; any result they return must satisfy the
// invariants of invariants.hpp.
#include <cstdint>
#include <vector>

#include "byte_reader.hpp"
#include "invariants.hpp"
#include "sigprop/sigprop.hpp"

namespace {

using sigprop::form;
using sigprop::fuzz::byte_reader;
using sigprop::fuzz::check;
using sigprop::fuzz::check_var;

// Causal attention and repeat cost O(L) and O(n) per call; these caps keep one execution
// well under a millisecond without hiding any code path (the bounds are far above the
// sizes where the formulas change regime).
constexpr int max_causal_L = 4096;
constexpr int max_repeat = 64;

form any_form(byte_reader& in) { return static_cast<form>(in.pick(4)); }  // 3: not a form

template <class T>
sigprop::signal<T> any_signal(byte_reader& in) {
    return {in.number<T>(), in.number<T>(), in.number<T>()};
}

template <class T>
sigprop::gradient<T> any_gradient(byte_reader& in) {
    return {in.number<T>(), in.number<T>()};
}

/// forward and backward of c at x, g; the invariants on whatever comes back.
template <class C, class T>
void both(const C& c, const sigprop::signal<T>& x, const sigprop::gradient<T>& g) {
    sigprop::fuzz::only_throws<sigprop::invalid_argument>([&] { check(forward(c, x)); });
    sigprop::fuzz::only_throws<sigprop::invalid_argument>([&] { check(backward(c, x, g)); });
}

template <class T>
sigprop::multi_head_attention<T> any_mha(byte_reader& in) {
    sigprop::multi_head_attention<T> m{in.size(), in.size(), in.size(), in.number<T>(), in.number<T>(),
                                       in.number<T>(), in.number<T>(), in.number<T>(), in.flag(), any_form(in)};
    if (m.causal && m.L > max_causal_L) m.L = max_causal_L;
    return m;
}

template <class T>
sigprop::embedding<T> any_embedding(byte_reader& in) {
    sigprop::embedding<T> e;
    const unsigned n = in.pick(5);
    for (unsigned t = 0; t < n; ++t) e.tables.push_back({in.number<T>(), in.number<T>()});
    return e;
}

template <class T>
void run(byte_reader& in) {
    using namespace sigprop;
    const unsigned which = in.pick(16);
    const signal<T> x = any_signal<T>(in);
    const gradient<T> g = any_gradient<T>(in);
    switch (which) {
        case 0: both(linear<T>{in.size(), in.size(), in.number<T>()}, x, g); break;
        case 1: both(relu<T>{any_form(in)}, x, g); break;
        case 2: both(gelu<T>{any_form(in)}, x, g); break;
        case 3: {
            const layer_norm<T> c{in.size(), any_form(in)};
            both(c, x, g);
            fuzz::only_throws<invalid_argument>([&] { fuzz::check_corr("unit_covariance", unit_covariance(c)); });
            break;
        }
        case 4: both(dropout<T>{in.number<T>()}, x, g); break;
        case 5: both(softmax<T>{in.size(), any_form(in)}, x, g); break;
        case 6:
            both(attention<T>{in.size(), in.size(), in.size(), in.number<T>(), in.number<T>(), in.number<T>(),
                              in.number<T>(), any_form(in)},
                 x, g);
            break;
        case 7: {
            const multi_head_attention<T> m = any_mha<T>(in);
            both(m, x, g);
            const int i = in.size(), j = in.size();
            fuzz::only_throws<invalid_argument>([&] { check_var("variance_at", variance_at(m, x, i)); });
            // A covariance is not a variance, but it must not be NaN.
            fuzz::only_throws<invalid_argument>([&] { fuzz::check_mean("covariance_at", covariance_at(m, x, i, j)); });
            break;
        }
        case 8: {
            const embedding<T> e = any_embedding<T>(in);
            fuzz::only_throws<invalid_argument>([&] { check(forward(e)); });
            fuzz::only_throws<invalid_argument>([&] { check(backward(e, g)); });
            const int L = in.size(), d = in.size();
            const std::size_t table = in.pick(6);
            fuzz::only_throws<invalid_argument>(
                [&] { check_var("weight_grad_sq_norm", weight_grad_sq_norm(e, g, L, d, table)); });
            break;
        }
        case 9: {
            // Same-row probabilities: each must be a probability.
            const auto vocab = in.raw<std::uint64_t>() >> in.pick(64);
            const T a = in.number<T>();
            fuzz::only_throws<invalid_argument>(
                [&] { fuzz::check_corr("zipf", same_row_probability_zipf<T>(vocab, a)); });
            std::vector<T> w(in.pick(5));
            for (auto& v : w) v = in.number<T>();
            fuzz::only_throws<invalid_argument>(
                [&] { fuzz::check_corr("unigram", same_row_probability_unigram<T>(w)); });
            std::vector<long long> counts(in.pick(5));
            for (auto& c : counts) c = in.size();
            fuzz::only_throws<invalid_argument>(
                [&] { fuzz::check_corr("counts", same_row_probability_counts<T>(counts)); });
            // same_row_probability_tokens is left out: clang 14 cannot compile its
            // std::ranges::subrange with libstdc++ 12; tests/reliability covers it with g++.
            fuzz::only_throws<invalid_argument>(
                [&] { fuzz::check_corr("two_segments", same_row_probability_two_segments<T>(a)); });
            break;
        }
        case 10: {
            // The FFN block of a pre-LN layer.
            const auto ffn = residual(serial(layer_norm<T>{in.size()}, linear<T>{in.size(), in.size(), in.number<T>()},
                                             gelu<T>{}, linear<T>{in.size(), in.size(), in.number<T>()},
                                             dropout<T>{in.number<T>()}),
                                      in.number<T>(), in.number<T>());
            both(ffn, x, g);
            break;
        }
        case 11: {
            // A stack of pre-LN attention blocks.
            const int n = in.size();
            const auto block = residual(serial(layer_norm<T>{in.size()}, any_mha<T>(in)), in.number<T>(), in.number<T>());
            both(repeat(n > max_repeat ? max_repeat : n, block), x, g);
            break;
        }
        case 12: both(serial(linear<T>{in.size(), in.size(), in.number<T>()}, relu<T>{any_form(in)},
                             dropout<T>{in.number<T>()}),
                      x, g);
            break;
        case 13: {
            // Post-LN: the norm after the residual sum.
            const auto post = serial(residual(serial(linear<T>{in.size(), in.size(), in.number<T>()}, relu<T>{}),
                                              in.number<T>(), in.number<T>()),
                                     layer_norm<T>{in.size()});
            const int n = in.size();
            both(repeat(n > max_repeat ? max_repeat : n, post), x, g);
            break;
        }
        case 14: both(residual(softmax<T>{in.size(), any_form(in)}, in.number<T>(), in.number<T>()), x, g); break;
        default: both(residual(attention<T>{in.size(), in.size(), in.size(), in.number<T>(), in.number<T>(),
                                            in.number<T>(), in.number<T>(), any_form(in)}),
                      x, g);
            break;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    byte_reader in(data, size);
    switch (in.pick(3)) {
        case 0: run<double>(in); break;
        case 1: run<float>(in); break;
        default: run<long double>(in); break;
    }
    return 0;
}
