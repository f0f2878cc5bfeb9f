#pragma once
// serial(a, b, c): components applied one after the other. It is a component itself:
// the forward pass folds left, the backward pass folds right, each part's backward using
// the forward moments at that part's own input.
#include <array>
#include <cstddef>
#include <tuple>
#include <utility>

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
// The forward moments at the input of every part (inputs[0] = x) and at the output.
template <class T, class... Parts>
std::array<signal<T>, sizeof...(Parts) + 1> serial_inputs(const serial_t<Parts...>& s,
                                                          const signal<T>& x) {
    std::array<signal<T>, sizeof...(Parts) + 1> m{};
    m[0] = x;
    std::size_t k = 0;
    std::apply([&](const auto&... p) { ((m[k + 1] = forward(p, m[k]), ++k), ...); }, s.parts);
    return m;
}
}  // namespace detail

template <class T, class... Parts>
signal<T> forward(const serial_t<Parts...>& s, const signal<T>& x) {
    return detail::serial_inputs(s, x).back();
}

template <class T, class... Parts>
gradient<T> backward(const serial_t<Parts...>& s, const signal<T>& x, const gradient<T>& g) {
    const auto m = detail::serial_inputs(s, x);
    gradient<T> out = g;
    // Right fold: the last part first, each with the moments at its own input.
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        constexpr std::size_t n = sizeof...(Parts);
        ((out = backward(std::get<n - 1 - I>(s.parts), m[n - 1 - I], out)), ...);
    }(std::index_sequence_for<Parts...>{});
    return out;
}

}  // namespace sigprop
