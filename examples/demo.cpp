// sigprop-demo: forward and backward moments through every component for one default
// input, then through an FFN block (Linear -> GeLU -> Linear -> Dropout).
//
// Each row gives the moments of the component's output for the input x, and the moments of
// the gradient at its input for the gradient g arriving at its output. Components that have
// the paper's formula as well as ours show both.
#include <cstdio>

#include <sigprop/sigprop.hpp>

using T = double;
using sigprop::form;
using sigprop::gradient;
using sigprop::signal;

namespace {

void header() {
    std::printf("%-34s %10s %10s %8s | %10s %8s\n", "component", "mean", "var", "corr", "g var", "g corr");
}

void row(const char* name, const signal<T>& y, const gradient<T>& gx) {
    std::printf("%-34s %10.4g %10.4g %8.4f | %10.4g %8.4f\n", name, y.mean, y.var, y.corr, gx.var, gx.corr);
}

template <class C>
void show(const char* name, const C& c, const signal<T>& x, const gradient<T>& g) {
    row(name, forward(c, x), backward(c, x, g));
}

}  // namespace

int main() {
    const int d = 768, d_ff = 3072, L = 512, d_head = 64;
    const T p = 0.1;
    const signal<T> x{0.0, 1.0, 0.2};  // a LayerNorm-like input: mean 0, var 1, token corr 0.2
    const gradient<T> g{1.0, 0.1};

    std::printf("sigprop %d.%d.%d - moments at initialisation\n\n", SIGPROP_VERSION_MAJOR, SIGPROP_VERSION_MINOR,
                SIGPROP_VERSION_PATCH);
    std::printf("Every component for the input x = (mean %g, var %g, corr %g) and g = (var %g, corr %g);\n"
                "d = %d, L = %d, weights with sigma^2 = 1/fan-in, dropout p = %g.\n\n",
                x.mean, x.var, x.corr, g.var, g.corr, d, L, p);
    header();
    const T xavier = 1 / std::sqrt(T(d));
    show("linear d -> d", sigprop::linear<T>{d, d, xavier}, x, g);
    show("relu", sigprop::relu<T>{}, x, g);
    show("gelu", sigprop::gelu<T>{}, x, g);
    show("layer_norm (ours)", sigprop::layer_norm<T>{d}, x, g);
    show("layer_norm (paper)", sigprop::layer_norm<T>{d, form::paper}, x, g);
    show("dropout", sigprop::dropout<T>{p}, x, g);
    show("softmax over L logits (ours)", sigprop::softmax<T>{L}, x, g);
    show("softmax over L logits (paper)", sigprop::softmax<T>{L, form::paper}, x, g);
    const sigprop::attention<T> head{d, d_head, L, 0.02, 0.02, xavier, p};
    show("attention head (ours)", head, x, g);
    auto paper_head = head;
    paper_head.form = form::paper;
    show("attention head (paper)", paper_head, x, g);
    const T q_word = sigprop::same_row_probability_zipf<T>(30522, 1.0);
    const auto emb = sigprop::bert_embedding<T>(q_word);
    row("embedding (BERT's 3 tables)", forward(emb), backward(emb, g));

    // The FFN block: each component's backward uses the forward moments at its own input.
    const sigprop::linear<T> up{d, d_ff, xavier};
    const sigprop::gelu<T> act{};
    const sigprop::linear<T> down{d_ff, d, 1 / std::sqrt(T(d_ff))};
    const sigprop::dropout<T> drop{p};
    const signal<T> x1 = forward(up, x), x2 = forward(act, x1), x3 = forward(down, x2), x4 = forward(drop, x3);
    const gradient<T> g3 = backward(drop, x3, g), g2 = backward(down, x2, g3), g1 = backward(act, x1, g2),
                      g0 = backward(up, x, g1);
    std::printf("\nFFN block d -> %d -> d for the same input; each row is one activation: its moments\n"
                "and the moments of the gradient at it\n\n",
                d_ff);
    header();
    row("input", x, g0);
    row("linear d -> d_ff", x1, g1);
    row("gelu", x2, g2);
    row("linear d_ff -> d", x3, g3);
    row("dropout", x4, g);
    return 0;
}
