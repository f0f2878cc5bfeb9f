// A program written the way a user of the installed package writes one: it includes a
// public header, calls forward/backward on a linear layer, prints the moments, and fails
// (non-zero exit) if a value is not the one the closed form gives.
#include <cmath>
#include <cstdio>

#include <sigprop/components/linear.hpp>

int main() {
    // 100 inputs, 300 outputs, sigma_w = 0.1; input mean 2, variance 3, correlation 0.5.
    const sigprop::linear<double> layer{100, 300, 0.1};
    const sigprop::signal<double> x{2.0, 3.0, 0.5};
    const sigprop::gradient<double> g{2.0, 0.25};

    const auto y = forward(layer, x);
    const auto dx = backward(layer, x, g);
    std::printf("forward : mean %.6g var %.6g corr %.6g\n", y.mean, y.var, y.corr);
    std::printf("backward: var %.6g corr %.6g\n", dx.var, dx.corr);

    // var = d_in sigma_w^2 (s2 + mu^2) = 7; corr = (r s2 + mu^2) / (s2 + mu^2) = 5.5 / 7;
    // gradient var = d_out sigma_w^2 s2_g = 6, corr unchanged.
    auto near = [](double a, double b) { return std::abs(a - b) <= 1e-12 * std::abs(b); };
    int bad = 0;
    if (y.mean != 0.0) ++bad;
    if (!near(y.var, 7.0)) ++bad;
    if (!near(y.corr, 5.5 / 7.0)) ++bad;
    if (!near(dx.var, 6.0)) ++bad;
    if (dx.corr != 0.25) ++bad;

    // Bad input must throw the library's own exception type.
    try {
        (void)forward(layer, sigprop::signal<double>{0.0, 1.0, 1.5});
        ++bad;
    } catch (const sigprop::invalid_argument&) {
    }

    std::printf("%s\n", bad == 0 ? "sigprop consumer: OK" : "sigprop consumer: WRONG VALUES");
    return bad == 0 ? 0 : 1;
}
