// A custom block built with the combinators: a Pre-LN FFN block with a ReLU, as a residual
// y = lambda x + beta F(x), repeated over depth. Compares the standard residual
// (lambda = beta = 1) with DeepScaleLM's scaling (lambda^2 + beta^2 = 1, beta^2 = 1/N).
#include <cmath>
#include <cstdio>

#include <sigprop/sigprop.hpp>

int main() {
    using T = double;
    const int d = 512, d_ff = 2048, N = 96;

    // F(x) = Linear(ReLU(Linear(LN(x)))) with fan-in initialisation (unit branch variance).
    const auto ffn = sigprop::serial(sigprop::layer_norm<T>{d},                                 //
                                     sigprop::linear<T>{d, d_ff, std::sqrt(T(2) / T(d))},       //
                                     sigprop::relu<T>{},                                        //
                                     sigprop::linear<T>{d_ff, d, std::sqrt(T(1) / T(d_ff))});

    const sigprop::signal<T> x{0.0, 1.0, 0.1};
    const sigprop::gradient<T> g{1.0, 0.0};
    const T beta = std::sqrt(T(1) / T(N)), lambda = std::sqrt(T(1) - beta * beta);

    std::printf("%6s | %30s | %30s\n", "", "standard (lambda = beta = 1)", "DSLM");
    std::printf("%6s | %10s %8s %10s | %10s %8s %10s\n", "depth", "var", "corr", "g var in", "var", "corr",
                "g var in");
    for (int n : {1, 12, 48, N}) {
        const auto standard = sigprop::repeat(n, sigprop::residual(ffn));
        const auto dslm = sigprop::repeat(n, sigprop::residual(ffn, lambda, beta));
        const auto ys = forward(standard, x), yd = forward(dslm, x);
        std::printf("%6d | %10.4g %8.4f %10.4g | %10.4g %8.4f %10.4g\n", n, ys.var, ys.corr,
                    backward(standard, x, g).var, yd.var, yd.corr, backward(dslm, x, g).var);
    }
    return 0;
}
