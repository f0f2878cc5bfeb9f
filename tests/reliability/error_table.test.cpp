// Every public entry point rejects each class of bad input with sigprop::invalid_argument
// whose message names the component and the parameter (DESIGN.md, "Errors"). The table
// of docs/RELIABILITY.md ("Bad input") is this test's output: with SIGPROP_RELIABILITY_OUT
// set it writes errors.md, which scripts/reliability-doc.sh splices into the doc.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "reliability/report.hpp"
#include "sigprop/sigprop.hpp"

namespace {

using namespace sigprop;

constexpr double nan = std::numeric_limits<double>::quiet_NaN();
constexpr double inf = std::numeric_limits<double>::infinity();

struct bad_input {
    std::string entry;      ///< the call, as a user writes it
    std::string what;       ///< the class of bad input
    std::string component;  ///< what the message must name
    std::string param;
    std::function<void()> call;
};

const signal<double> x0{0, 1, 0.5};
const gradient<double> g0{1, 0.5};

template <class C>
void both(std::vector<bad_input>& v, const std::string& name, const C& c, const std::string& what,
          const std::string& param, const signal<double>& x = x0, const gradient<double>& g = g0) {
    v.push_back({"forward(" + name + ")", what, name, param, [=] { (void)forward(c, x); }});
    v.push_back({"backward(" + name + ")", what, name, param, [=] { (void)backward(c, x, g); }});
}

/// The input classes every component with an input signal rejects.
template <class C>
void signal_classes(std::vector<bad_input>& v, const std::string& name, const C& c) {
    both(v, name, c, "x.var = NaN", "x.var", {0, nan, 0});
    both(v, name, c, "x.var = +inf", "x.var", {0, inf, 0});
    both(v, name, c, "x.var < 0", "x.var", {0, -1, 0});
    both(v, name, c, "x.corr > 1", "x.corr", {0, 1, 1.5});
    both(v, name, c, "x.corr = NaN", "x.corr", {0, 1, nan});
    v.push_back({"backward(" + name + ")", "g.var < 0", name, "g.var", [=] { (void)backward(c, x0, {-1, 0}); }});
    v.push_back({"backward(" + name + ")", "g.corr < -1", name, "g.corr", [=] { (void)backward(c, x0, {1, -2}); }});
}

std::vector<bad_input> all_bad_inputs() {
    std::vector<bad_input> v;
    signal_classes(v, "linear", linear<double>{4, 4, 1});
    both(v, "linear", linear<double>{0, 4, 1}, "d_in = 0", "d_in");
    both(v, "linear", linear<double>{4, 4, -1}, "sigma_w < 0", "sigma_w");
    both(v, "linear", linear<double>{4, 4, inf}, "sigma_w = +inf", "sigma_w");
    both(v, "linear", linear<double>{4, 4, 1}, "x.mean = NaN", "x.mean", {nan, 1, 0});
    signal_classes(v, "relu", relu<double>{});
    both(v, "relu", relu<double>{form::paper_large_l}, "form = paper_large_l", "form");
    both(v, "relu", relu<double>{form::paper}, "x.mean != 0 (form::paper)", "x.mean", {1, 1, 0});
    signal_classes(v, "gelu", gelu<double>{});
    both(v, "gelu", gelu<double>{}, "x.mean != 0", "x.mean", {1, 1, 0});
    signal_classes(v, "layer_norm", layer_norm<double>{8});
    both(v, "layer_norm", layer_norm<double>{1}, "d = 1", "d");
    both(v, "layer_norm", layer_norm<double>{8}, "x.var = 0", "x.var", {0, 0, 0});
    v.push_back({"unit_covariance(layer_norm)", "d = 1", "layer_norm", "d",
                 [] { (void)unit_covariance(layer_norm<double>{1}); }});
    signal_classes(v, "dropout", dropout<double>{0.1});
    both(v, "dropout", dropout<double>{1}, "p = 1", "p");
    both(v, "dropout", dropout<double>{-0.1}, "p < 0", "p");
    both(v, "dropout", dropout<double>{nan}, "p = NaN", "p");
    signal_classes(v, "softmax", softmax<double>{8});
    both(v, "softmax", softmax<double>{1}, "L = 1", "L");
    both(v, "softmax", softmax<double>{8, form(7)}, "form out of the enum", "form");
    signal_classes(v, "attention", attention<double>{8, 8, 8, 1, 1, 1, 0});
    both(v, "attention", attention<double>{8, 8, 8, 1, 1, 1, 0}, "x.mean != 0", "x.mean", {1, 1, 0});
    both(v, "attention", attention<double>{8, 8, 1, 1, 1, 1, 0}, "L = 1", "L");
    both(v, "attention", attention<double>{8, 0, 8, 1, 1, 1, 0}, "d_head = 0", "d_head");
    both(v, "attention", attention<double>{8, 8, 8, nan, 1, 1, 0}, "sigma_q = NaN", "sigma_q");
    both(v, "attention", attention<double>{8, 8, 8, 1, 1, 1, 1}, "p = 1", "p");
    using mha = multi_head_attention<double>;
    signal_classes(v, "multi_head_attention", mha{8, 2, 8, 1, 1, 1, 1, 0});
    both(v, "multi_head_attention", mha{8, 3, 8, 1, 1, 1, 1, 0}, "heads does not divide d_model", "heads");
    both(v, "multi_head_attention", mha{8, 2, 8, 1, 1, 1, -1, 0}, "sigma_o < 0", "sigma_o");
    both(v, "multi_head_attention", mha{8, 2, 8, 1, 1, 1, 1, 0, true, form::paper}, "causal with form::paper",
         "form");
    v.push_back({"variance_at(multi_head_attention)", "i = 0", "multi_head_attention", "i",
                 [] { (void)variance_at(mha{8, 2, 8, 1, 1, 1, 1, 0, true}, x0, 0); }});
    v.push_back({"covariance_at(multi_head_attention)", "i = j", "multi_head_attention", "j",
                 [] { (void)covariance_at(mha{8, 2, 8, 1, 1, 1, 1, 0, true}, x0, 2, 2); }});
    v.push_back({"forward(embedding)", "no tables", "embedding", "tables.size()",
                 [] { (void)forward(embedding<double>{}); }});
    v.push_back({"forward(embedding)", "sigma = NaN", "embedding", "tables[0].sigma",
                 [] { (void)forward(embedding<double>{{{nan, 0}}}); }});
    v.push_back({"forward(embedding)", "same_row > 1", "embedding", "tables[0].same_row",
                 [] { (void)forward(embedding<double>{{{1, 1.5}}}); }});
    v.push_back({"backward(embedding)", "g.var = +inf", "embedding", "g.var",
                 [] { (void)backward(embedding<double>{{{1, 0}}}, gradient<double>{inf, 0}); }});
    v.push_back({"weight_grad_sq_norm(embedding)", "table out of range", "embedding", "table",
                 [] { (void)weight_grad_sq_norm(embedding<double>{{{1, 0}}}, g0, 8, 8, 1); }});
    v.push_back({"weight_grad_sq_norm(embedding)", "g.corr < -1/(L - 1)", "embedding", "g.corr",
                 [] { (void)weight_grad_sq_norm(embedding<double>{{{1, 0}}}, gradient<double>{1, -0.5}, 8, 8, 0); }});
    v.push_back({"same_row_probability_zipf", "vocab = 0", "embedding", "vocab",
                 [] { (void)same_row_probability_zipf<double>(0, 1.0); }});
    v.push_back({"same_row_probability_unigram", "all weights 0", "embedding", "sum(weights)",
                 [] { (void)same_row_probability_unigram<double>(std::vector<double>{0, 0}); }});
    v.push_back({"same_row_probability_counts", "sum(counts) < 2", "embedding", "sum(counts)",
                 [] { (void)same_row_probability_counts<double>(std::vector<int>{1}); }});
    v.push_back({"same_row_probability_tokens", "size not a multiple of seq_len", "embedding", "tokens.size()",
                 [] { (void)same_row_probability_tokens<double>(std::vector<int>{1, 2, 3}, 2); }});
    v.push_back({"same_row_probability_two_segments", "a > 1", "embedding", "a",
                 [] { (void)same_row_probability_two_segments<double>(1.5); }});
    both(v, "residual", residual(linear<double>{4, 4, 1}, nan, 1.0), "lambda = NaN", "lambda");
    both(v, "residual", residual(linear<double>{4, 4, 1}, 1.0, inf), "beta = +inf", "beta");
    both(v, "repeat", repeat(0, linear<double>{4, 4, 1}), "n = 0", "n");
    both(v, "linear", serial(relu<double>{}, linear<double>{0, 4, 1}), "a part's bad parameter (serial)", "d_in");
    const auto spec = [](auto edit) {
        return [edit] {
            transformer_spec<double> s;
            s.layers = 2;
            s.sigmas.assign(2, layer_sigmas<double>{});
            edit(s);
            (void)predict(s);
        };
    };
    const std::string ts = "transformer_spec";
    v.push_back({"predict", "layers = 0", ts, "layers", spec([](auto& s) { s.layers = 0; })});
    v.push_back({"predict", "d_model < 4", ts, "d_model", spec([](auto& s) { s.d_model = 3; })});
    v.push_back({"predict", "heads does not divide d_model", ts, "heads", spec([](auto& s) { s.heads = 7; })});
    v.push_back({"predict", "seq_len = 1", ts, "seq_len", spec([](auto& s) { s.seq_len = 1; })});
    v.push_back({"predict", "source_len without encoder-decoder", ts, "source_len",
                 spec([](auto& s) { s.source_len = 4; })});
    v.push_back({"predict", "p_hidden = 1", ts, "p_hidden", spec([](auto& s) { s.p_hidden = 1; })});
    v.push_back({"predict", "lambda = 0", ts, "lambda", spec([](auto& s) { s.lambda = 0; })});
    v.push_back({"predict", "beta = NaN", ts, "beta", spec([](auto& s) { s.beta = nan; })});
    v.push_back({"predict", "wrong number of sigmas", ts, "sigmas.size()", spec([](auto& s) { s.sigmas.pop_back(); })});
    v.push_back({"predict", "a sigma = +inf", ts, "sigmas[1].ffn2", spec([](auto& s) { s.sigmas[1].ffn2 = inf; })});
    v.push_back({"predict", "input.var = 0", ts, "input.var", spec([](auto& s) { s.input.var = 0; })});
    v.push_back({"predict", "input.corr = NaN", ts, "input.corr", spec([](auto& s) { s.input.corr = nan; })});
    v.push_back({"predict", "output_gradient.var < 0", ts, "output_gradient.var",
                 spec([](auto& s) { s.output_gradient.var = -1; })});
    v.push_back({"predict", "embedding tables all sigma = 0", ts, "embed variance",
                 spec([](auto& s) { s.embed = embedding<double>{{{0, 0}}}; })});
    return v;
}

std::string escape(std::string s) {
    for (std::size_t i = 0; (i = s.find('|', i)) != std::string::npos; i += 2) s.replace(i, 1, "\\|");
    return s;
}

}  // namespace

TEST_CASE("reliability: every entry point rejects every class of bad input with a message naming it") {
    std::string table = "| entry point | bad input | message |\n| --- | --- | --- |\n";
    for (const bad_input& b : all_bad_inputs()) {
        std::string message = "(no exception)";
        try {
            b.call();
        } catch (const sigprop::invalid_argument& e) {
            message = e.what();
        } catch (const std::exception& e) {
            message = std::string("(other exception) ") + e.what();
        }
        INFO(b.entry << ", " << b.what << ": " << message);
        CHECK(message.rfind("sigprop::" + b.component + ": " + b.param + " = ", 0) == 0);
        CHECK(message.find("valid range") != std::string::npos);
        table += "| `" + b.entry + "` | " + b.what + " | `" + escape(message) + "` |\n";
    }
    reliability::write_fragment("errors.md", table);
}
