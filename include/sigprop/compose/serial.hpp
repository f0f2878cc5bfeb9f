#pragma once
// serial(a, b, c): components applied one after the other. It is a component itself:
// the forward pass folds left, the backward pass folds right, each part's backward using
// the forward moments at that part's own input.
#include <array>
#include <cstddef>
#include <limits>
#include <tuple>
#include <utility>

#include "sigprop/core/errors.hpp"
#include "sigprop/core/moments.hpp"

namespace sigprop {

template <class... Parts>
struct serial_t {
    static_assert(sizeof...(Parts) >= 1, "serial needs at least one component");
    std::tuple<Parts...> parts;
};

/// The composition parts[0], then parts[1], ...
template <class... Parts>
serial_t<Parts...> serial(Parts... parts) {
    return {std::tuple<Parts...>(std::move(parts)...)};
}

/// Checks every part's own parameters.
template <class... Parts>
void validate(const serial_t<Parts...>& s) {
    std::apply([](const auto&... p) { (validate(p), ...); }, s.parts);
}

namespace detail {

// Overflow inside a chain. A part whose output variance (or mean) overflowed hands +inf
// to the next part, whose checked entry point would reject it as input. The combinators
// therefore saturate: once the forward moments are not finite, every later output is
// {mean, +inf, corr} (the configuration exploded there), and the backward through a part
// whose input overflowed, or that receives an infinite gradient, is {+inf, corr}. The
// result is +infinity, never NaN and never an exception for valid input. (The mirror
// case, a residual stream whose variance underflows, is kept positive by the residual's
// sum, detail::add_weighted in residual.hpp, so a LayerNorm after it accepts it.)
template <class T>
bool overflowed(const signal<T>& x) noexcept {
    return !(is_finite(x.mean) && is_finite(x.var));
}

template <class T>
signal<T> saturated(const signal<T>& x) noexcept {
    return {x.mean, std::numeric_limits<T>::infinity(), x.corr};
}

template <class T>
gradient<T> saturated(const gradient<T>& g) noexcept {
    return {std::numeric_limits<T>::infinity(), g.corr};
}

template <class Part, class T>
signal<T> chain_forward(const Part& p, const signal<T>& x) {
    return overflowed(x) ? saturated(x) : forward(p, x);
}

template <class Part, class T>
gradient<T> chain_backward(const Part& p, const signal<T>& x, const gradient<T>& g) {
    return (overflowed(x) || !is_finite(g.var)) ? saturated(g) : backward(p, x, g);
}

// The forward moments at the input of every part (inputs[0] = x) and at the output.
template <class T, class... Parts>
std::array<signal<T>, sizeof...(Parts) + 1> serial_inputs(const serial_t<Parts...>& s,
                                                          const signal<T>& x) {
    std::array<signal<T>, sizeof...(Parts) + 1> m{};
    m[0] = x;
    std::size_t k = 0;
    std::apply([&](const auto&... p) { ((m[k + 1] = chain_forward(p, m[k]), ++k), ...); }, s.parts);
    return m;
}
}  // namespace detail

/// Forward moments of the last part's output. x is checked here (finite, var >= 0,
/// |corr| <= 1); each part checks its own further requirements (e.g. attention's mean 0).
template <class T, class... Parts>
signal<T> forward(const serial_t<Parts...>& s, const signal<T>& x) {
    detail::check_signal("serial", x);
    return detail::serial_inputs(s, x).back();
}

/// Gradient moments at the first part's input, given the gradient at the last output.
template <class T, class... Parts>
gradient<T> backward(const serial_t<Parts...>& s, const signal<T>& x, const gradient<T>& g) {
    detail::check_signal("serial", x);
    detail::check_gradient("serial", g);
    const auto m = detail::serial_inputs(s, x);
    gradient<T> out = g;
    // Right fold: the last part first, each with the moments at its own input.
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        constexpr std::size_t n = sizeof...(Parts);
        ((out = detail::chain_backward(std::get<n - 1 - I>(s.parts), m[n - 1 - I], out)), ...);
    }(std::index_sequence_for<Parts...>{});
    return out;
}

}  // namespace sigprop
