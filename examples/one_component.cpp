// One component on its own: how much does a softmax over L logits shrink the signal, and
// how far off is the paper's closed form at short sequence lengths?
//
// A component is a value type (its parameters); forward(c, x) gives the moments of its
// output for input moments x, backward(c, x, g) the moments of the gradient at its input
// for a gradient g arriving at its output.
#include <cstdio>

#include <sigprop/sigprop.hpp>

int main() {
    using T = double;
    const sigprop::signal<T> logits{0.0, 0.5, 0.0};  // mean 0, variance 0.5, uncorrelated tokens
    const sigprop::gradient<T> g{1.0, 0.0};

    std::printf("%6s %14s %14s %14s\n", "L", "var (ours)", "var (paper)", "g var (ours)");
    for (int L : {2, 8, 64, 512}) {
        const sigprop::softmax<T> ours{L};
        const sigprop::softmax<T> paper{L, sigprop::form::paper};
        std::printf("%6d %14.6g %14.6g %14.6g\n", L, forward(ours, logits).var, forward(paper, logits).var,
                    backward(ours, logits, g).var);
    }

    // Bad parameters are reported, never silently used.
    try {
        (void)forward(sigprop::softmax<T>{1}, logits);
    } catch (const sigprop::invalid_argument& e) {
        std::printf("\nsoftmax over one logit: %s\n", e.what());
    }
    return 0;
}
