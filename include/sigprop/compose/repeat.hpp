#pragma once
// repeat(n, block): the same block applied n times (n identical layers).
#include <cstddef>
#include <utility>
#include <vector>

#include "sigprop/compose/serial.hpp"
#include "sigprop/core/errors.hpp"
#include "sigprop/core/moments.hpp"

namespace sigprop {

template <class Block>
struct repeat_t {
    int n{1};
    Block block;
};

/// The block applied n >= 1 times; equal to serial(block, ..., block) with n copies.
template <class Block>
repeat_t<Block> repeat(int n, Block block) {
    return {n, std::move(block)};
}

template <class Block>
void validate(const repeat_t<Block>& r) {
    detail::require_size("repeat", "n", r.n);
    validate(r.block);
}

/// Forward moments after n applications; an overflow saturates as in serial.
template <class Block, class T>
signal<T> forward(const repeat_t<Block>& r, const signal<T>& x) {
    validate(r);
    detail::check_signal("repeat", x);
    signal<T> y = x;
    for (int i = 0; i < r.n && !detail::overflowed(y); ++i) y = forward(r.block, y);
    return detail::overflowed(y) ? detail::saturated(y) : y;
}

// The backward of layer i needs the forward moments at layer i's input: they are kept
// from one forward sweep (n records, the one allocation of this host-side entry point)
// and the gradient then runs from the last layer down.
template <class Block, class T>
gradient<T> backward(const repeat_t<Block>& r, const signal<T>& x, const gradient<T>& g) {
    validate(r);
    detail::check_signal("repeat", x);
    detail::check_gradient("repeat", g);
    std::vector<signal<T>> inputs(std::size_t(r.n));
    signal<T> y = x;
    for (int i = 0; i < r.n; ++i) {
        inputs[std::size_t(i)] = y;
        y = detail::chain_forward(r.block, y);
    }
    gradient<T> out = g;
    for (int i = r.n - 1; i >= 0; --i) out = detail::chain_backward(r.block, inputs[std::size_t(i)], out);
    return out;
}

}  // namespace sigprop
