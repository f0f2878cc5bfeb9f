// model_mc: runs the whole-model Monte-Carlo (validation/models/transformer.hpp) for a
// transformer given on the command line and writes the per-boundary moments and per-layer
// weight-gradient norms, each with its standard error, as CSV and/or JSON.
//
// The prediction of predict(spec) is printed next to every measurement, with the R^2 of
// log(quantity) over the boundaries / layers and the largest relative error.
//
//   model_mc --layers 12 --d-model 64 --d-ff 256 --heads 4 --seq-len 32 --norm pre
//            --arch encoder --init xavier --sequences 64 --threads 2 --csv out.csv
//
// Weight-gradient rows: one per spec.sigmas entry (an encoder-decoder: the N encoder layers,
// then the N decoder layers, with the cross-attention columns).
//
// The output files are opened (under temporary names) before the simulation and renamed
// into place once complete (validation/output_file.hpp): an unwritable path fails at once,
// and a failed or interrupted run leaves none. They hold no wall-clock time, so the same
// seed gives the same bytes at any thread count; the time is printed on stdout only.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "sigprop/models/predict.hpp"
#include "sigprop/models/resolved_backward.hpp"
#include "sigprop/models/schemes.hpp"
#include "sigprop/models/spec.hpp"
#include "sigprop/validation/output_file.hpp"
#include "sigprop/validation/models/transformer.hpp"

namespace {

using sigprop::validation::measured;

/// R^2 of log(measured) explained by log(predicted), and the largest relative error.
struct agreement {
    double r2{NAN};
    double max_rel{NAN};
    int n{0};
};

agreement score(const std::vector<double>& pred, const std::vector<double>& meas) {
    agreement a;
    std::vector<double> lp, lm;
    double worst = 0;
    for (std::size_t i = 0; i < pred.size(); ++i) {
        if (!(pred[i] > 0) || !(meas[i] > 0) || !std::isfinite(pred[i]) || !std::isfinite(meas[i])) continue;
        lp.push_back(std::log(pred[i]));
        lm.push_back(std::log(meas[i]));
        worst = std::max(worst, std::abs(pred[i] - meas[i]) / std::abs(meas[i]));
    }
    a.n = int(lp.size());
    if (a.n < 2) return a;
    double mean = 0;
    for (double v : lm) mean += v;
    mean /= double(a.n);
    double ss_res = 0, ss_tot = 0;
    for (std::size_t i = 0; i < lm.size(); ++i) {
        ss_res += (lm[i] - lp[i]) * (lm[i] - lp[i]);
        ss_tot += (lm[i] - mean) * (lm[i] - mean);
    }
    // A quantity that does not change over the layers (Post-LN's unit variance) has no
    // spread for R^2 to explain: reported as NaN ("flat"); the relative error still counts.
    a.r2 = ss_tot > 1e-4 * double(a.n) ? 1 - ss_res / ss_tot : NAN;
    a.max_rel = worst;
    return a;
}

nlohmann::json to_json(const measured& m) { return {{"value", m.value}, {"se", m.se}}; }

measured measured_from(const nlohmann::json& j) { return {j.at("value").get<double>(), j.at("se").get<double>()}; }

/// The measurement of an earlier --json run. Its spec must be the one given now (the
/// sigmas are not stored, so the command line must repeat the run's options).
sigprop::validation::model_measurement load_measurement(const std::string& path, const sigprop::transformer_spec<double>& s) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read '" + path + "'");
    const nlohmann::json j = nlohmann::json::parse(in);
    const auto& sp = j.at("spec");
    if (sp.at("layers").get<int>() != s.layers || sp.at("d_model").get<int>() != s.d_model ||
        sp.at("d_ff").get<int>() != s.d_ff || sp.at("heads").get<int>() != s.heads || sp.at("seq_len").get<int>() != s.seq_len)
        throw std::runtime_error("'" + path + "' was measured for another model (layers, d_model, d_ff, heads or seq_len differ)");
    sigprop::validation::model_measurement m;
    m.sequences = j.at("run").at("sequences").get<int>();
    m.blocks = j.at("run").at("blocks").get<int>();
    for (const auto& b : j.at("boundaries")) {
        m.labels.push_back(b.at("label").get<std::string>());
        const auto& x = b.at("x");
        const auto& g = b.at("g");
        m.forward.push_back({measured_from(x.at("mean")), measured_from(x.at("var")), measured_from(x.at("cov")),
                             measured_from(x.at("corr"))});
        m.backward.push_back({{}, measured_from(g.at("var")), measured_from(g.at("cov")), measured_from(g.at("corr"))});
    }
    // The cross-attention entries are written for every layer (0 outside an encoder-decoder's
    // decoder layers); files from before they were written read as 0.
    const auto cross = [](const auto& w, const char* name) {
        return w.contains(name) ? measured_from(w.at(name)) : sigprop::validation::measured{};
    };
    for (const auto& w : j.at("weights"))
        m.weights.push_back({measured_from(w.at("q")), measured_from(w.at("k")), measured_from(w.at("v")),
                             measured_from(w.at("o")), measured_from(w.at("ffn1")), measured_from(w.at("ffn2")),
                             cross(w, "cross_q"), cross(w, "cross_k"), cross(w, "cross_v"), cross(w, "cross_o")});
    return m;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"sigprop whole-model Monte-Carlo"};
    sigprop::transformer_spec<double> s;
    s.layers = 12;
    s.d_model = 64;
    s.d_ff = 256;
    s.heads = 4;
    s.seq_len = 32;
    std::string norm = "pre", arch = "encoder", act = "gelu", init = "xavier", csv, json;
    double sigma = 0.02, sigma_qk = -1, decoder_lambda = NAN, decoder_beta = NAN;
    sigprop::validation::model_run_options o;
    o.sequences = 32;
    app.add_option("--layers", s.layers, "N")->capture_default_str();
    app.add_option("--d-model", s.d_model)->capture_default_str();
    app.add_option("--d-ff", s.d_ff)->capture_default_str();
    app.add_option("--heads", s.heads)->capture_default_str();
    app.add_option("--seq-len", s.seq_len)->capture_default_str();
    app.add_option("--norm", norm, "pre|post|none")->check(CLI::IsMember({"pre", "post", "none"}))->capture_default_str();
    app.add_option("--arch", arch, "encoder|decoder|encoder_decoder")
        ->check(CLI::IsMember({"encoder", "decoder", "encoder_decoder"}))
        ->capture_default_str();
    app.add_option("--source-len", s.source_len, "encoder length of an encoder_decoder (0 = --seq-len)")
        ->capture_default_str();
    app.add_option("--decoder-lambda", decoder_lambda, "encoder_decoder: the decoder's lambda (default --lambda)");
    app.add_option("--decoder-beta", decoder_beta, "encoder_decoder: the decoder's beta (default --beta)");
    app.add_option("--act", act, "relu|gelu")->check(CLI::IsMember({"relu", "gelu"}))->capture_default_str();
    app.add_flag("--final-norm", s.final_norm, "LayerNorm after the last layer");
    app.add_option("--init", init,
                   "sigma: every weight N(0, sigma^2); xavier: q, k, v, o sigma^2 = 1/d, FFN 2 / (d + d_ff); "
                   "bert, gpt2, deepnorm, tfixup, dslm: the scheme of models/schemes.hpp, which also sets "
                   "lambda and beta (--lambda and --beta are then ignored; tfixup implies --norm none)")
        ->check(CLI::IsMember({"sigma", "xavier", "bert", "gpt2", "deepnorm", "tfixup", "dslm"}))
        ->capture_default_str();
    double dslm_k = 1;
    app.add_option("--dslm-k", dslm_k, "DSLM's k in beta^2 = k/N")->capture_default_str();
    bool dslm_resolved = false;
    app.add_flag("--dslm-resolved", dslm_resolved,
                 "dslm: solve the sigmas on the position-resolved forward (O(L^2) per block; flattens a causal "
                 "decoder's real stream) instead of predict()'s");
    app.add_option("--sigma", sigma, "weight standard deviation for --init sigma")->capture_default_str();
    app.add_option("--sigma-qk", sigma_qk, "override the query/key standard deviation (if >= 0)");
    app.add_option("--lambda", s.lambda)->capture_default_str();
    app.add_option("--beta", s.beta)->capture_default_str();
    app.add_option("--p-hidden", s.p_hidden)->capture_default_str();
    app.add_option("--p-attention", s.p_attention)->capture_default_str();
    app.add_option("--input-var", s.input.var)->capture_default_str();
    app.add_option("--input-corr", s.input.corr)->capture_default_str();
    app.add_option("--sequences", o.sequences)->capture_default_str();
    app.add_option("--per-draw", o.sequences_per_draw, "sequences sharing one weight draw")->capture_default_str();
    app.add_option("--blocks", o.blocks, "jackknife blocks")->capture_default_str();
    app.add_option("--seed", o.seed)->capture_default_str();
    app.add_option("--threads", o.threads, "0 = OpenMP default")->capture_default_str();
    app.add_option("--csv", csv, "write the boundary and layer tables here (.csv; layers go to <name>.layers.csv)");
    app.add_option("--json", json, "write everything as JSON here");
    std::string replay;
    bool resolved = false;
    app.add_flag("--resolved", resolved,
                 "predictions from predict_resolved (position-resolved forward, backward and weight-gradient "
                 "norms, O(L^2) per block; docs/theory/models.md sections 8 and 10) instead of predict()");
    app.add_option("--replay", replay,
                   "score the measurement stored by an earlier --json run of the same model against this "
                   "build's predict() instead of simulating again");
    CLI11_PARSE(app, argc, argv);

    s.norm = norm == "pre" ? sigprop::norm_placement::pre
             : norm == "post" ? sigprop::norm_placement::post
                              : sigprop::norm_placement::none;
    s.arch = arch == "decoder"   ? sigprop::architecture::decoder
             : arch == "encoder" ? sigprop::architecture::encoder
                                 : sigprop::architecture::encoder_decoder;
    if (!std::isnan(decoder_lambda)) s.decoder_lambda = decoder_lambda;
    if (!std::isnan(decoder_beta)) s.decoder_beta = decoder_beta;
    s.act = act == "relu" ? sigprop::activation::relu : sigprop::activation::gelu;
    try {
        if (init == "sigma" || init == "xavier") {
            sigprop::layer_sigmas<double> sg;
            if (init == "sigma") {
                sg = {sigma, sigma, sigma, sigma, sigma, sigma, sigma, sigma, sigma, sigma};
            } else {
                const double dd = std::sqrt(1.0 / s.d_model), df = std::sqrt(2.0 / (s.d_model + s.d_ff));
                sg = {dd, dd, dd, dd, df, df, dd, dd, dd, dd};
            }
            s.sigmas.assign(std::size_t(s.arch == sigprop::architecture::encoder_decoder ? 2 * s.layers : s.layers), sg);
        } else if (init == "bert") {
            sigprop::apply_bert(s, sigma);
        } else if (init == "gpt2") {
            sigprop::apply_gpt2(s, sigma);
        } else if (init == "deepnorm") {
            sigprop::apply_deepnorm(s);
        } else if (init == "tfixup") {
            sigprop::apply_tfixup(s);
        } else {
            sigprop::apply_dslm(s, sigprop::dslm_options<double>{dslm_k, sigprop::dslm_depth::layers,
                                                                 dslm_resolved ? sigprop::dslm_forward::resolved
                                                                               : sigprop::dslm_forward::pooled});
        }
    } catch (const std::exception& e) {
        std::cerr << "model_mc: " << e.what() << "\n";
        return 2;
    }
    if (init == "tfixup") norm = "none";
    if (init == "dslm" && dslm_resolved) init = "dslm-resolved";  // what the header and the JSON record
    if (sigma_qk >= 0)
        for (auto& w : s.sigmas) w.q = w.k = w.cross_q = w.cross_k = sigma_qk;
    const std::size_t W = s.sigmas.size();  // weight-norm rows (2 * layers for an encoder-decoder)

    if (resolved && s.arch == sigprop::architecture::encoder_decoder) {
        std::cerr << "model_mc: --resolved describes encoder or decoder stacks, not an encoder-decoder\n";
        return 2;
    }

    std::optional<sigprop::validation::output_file> csv_out, layers_out, json_out;
    try {
        if (!csv.empty()) {
            csv_out.emplace(csv);
            layers_out.emplace(csv + ".layers.csv");
        }
        if (!json.empty()) json_out.emplace(json);
    } catch (const sigprop::validation::output_error& e) {
        std::cerr << "model_mc: " << e.what() << "\n";
        return 2;
    }

    sigprop::validation::model_measurement m;
    double seconds = 0;
    try {
        const auto t0 = std::chrono::steady_clock::now();
        m = replay.empty() ? sigprop::validation::measure_model(s, o) : load_measurement(replay, s);
        seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } catch (const std::exception& e) {
        std::cerr << "model_mc: " << e.what() << "\n";
        return 2;
    }
    const std::size_t B = m.forward.size();

    // Predictions (NaN if predict() does not describe the same boundaries).
    std::vector<double> px_var(B, NAN), px_corr(B, NAN), pg_var(B, NAN), pg_corr(B, NAN);
    constexpr int NF = 10;
    std::vector<std::array<double, NF>> pw(W);
    for (auto& row : pw) row.fill(NAN);
    bool have_pred = false;
    {
        const sigprop::trajectory<double> t = resolved ? sigprop::predict_resolved(s) : sigprop::predict(s);
        if (t.points.size() == B && t.weight_grads.size() == W) {
            have_pred = true;
            for (std::size_t i = 0; i < B; ++i) {
                px_var[i] = t.points[i].x.var;
                px_corr[i] = t.points[i].x.corr;
                pg_var[i] = t.points[i].g.var;
                pg_corr[i] = t.points[i].g.corr;
            }
            for (std::size_t l = 0; l < W; ++l) {
                const auto& w = t.weight_grads[l];
                pw[l] = {w.q, w.k, w.v, w.o, w.ffn1, w.ffn2, w.cross_q, w.cross_k, w.cross_v, w.cross_o};
            }
        } else {
            std::cerr << "model_mc: predict() returned " << t.points.size() << " points for " << B
                      << " boundaries; predictions not shown\n";
        }
    }

    std::printf("# %d layers, d=%d, d_ff=%d, heads=%d, L=%d, %s-LN %s, %s, init %s, lambda=%g beta=%g\n", s.layers,
                s.d_model, s.d_ff, s.heads, s.seq_len, norm.c_str(), arch.c_str(), act.c_str(), init.c_str(), s.lambda,
                s.beta);
    std::printf("# %d sequences, %d jackknife blocks, %d per weight draw: %.2f s\n", m.sequences, m.blocks,
                o.sequences_per_draw, seconds);
    std::printf("%-12s %24s %24s %24s %24s%s\n", "boundary", "x var", "x corr", "g var", "g corr",
                have_pred ? "   pred: x var   x corr    g var   g corr" : "");
    for (std::size_t i = 0; i < B; ++i) {
        const auto& f = m.forward[i];
        const auto& g = m.backward[i];
        std::printf("%-12s %12.5g +- %8.2g %12.5g +- %8.2g %12.5g +- %8.2g %12.5g +- %8.2g", m.labels[i].c_str(),
                    f.var.value, f.var.se, f.corr.value, f.corr.se, g.var.value, g.var.se, g.corr.value, g.corr.se);
        if (have_pred) std::printf("   %10.5g %8.4f %10.5g %8.4f", px_var[i], px_corr[i], pg_var[i], pg_corr[i]);
        std::printf("\n");
    }
    static const char* names[NF] = {"q", "k", "v", "o", "ffn1", "ffn2", "cross_q", "cross_k", "cross_v", "cross_o"};
    // Cross-attention columns only for an encoder-decoder.
    const int nf = s.arch == sigprop::architecture::encoder_decoder ? NF : 6;
    std::printf("%-6s", "layer");
    for (int j = 0; j < nf; ++j) std::printf(" %24s", (std::string("|dW_") + names[j] + "|^2").c_str());
    std::printf("\n");
    auto wget = [&](int l, int j) -> const measured& {
        const auto& w = m.weights[std::size_t(l)];
        const measured* p[NF] = {&w.q, &w.k, &w.v, &w.o, &w.ffn1, &w.ffn2,
                                 &w.cross_q, &w.cross_k, &w.cross_v, &w.cross_o};
        return *p[j];
    };
    for (int l = 0; l < int(W); ++l) {
        std::printf("%-6d", l + 1);
        for (int j = 0; j < nf; ++j) std::printf(" %12.5g +- %8.2g", wget(l, j).value, wget(l, j).se);
        std::printf("\n");
        if (have_pred) {
            std::printf("%-6s", " pred");
            for (int j = 0; j < nf; ++j) std::printf(" %24.5g", pw[std::size_t(l)][std::size_t(j)]);
            std::printf("\n");
        }
    }

    nlohmann::json metrics = nlohmann::json::object();
    if (have_pred) {
        auto report = [&](const char* what, const std::vector<double>& p, const std::vector<double>& q) {
            const agreement a = score(p, q);
            if (std::isnan(a.r2))
                std::printf("# %-12s R^2(log) =    flat   max relative error = %.4f   (%d points)\n", what, a.max_rel, a.n);
            else
                std::printf("# %-12s R^2(log) = %.5f   max relative error = %.4f   (%d points)\n", what, a.r2, a.max_rel, a.n);
            metrics[what] = {{"r2_log", std::isnan(a.r2) ? nlohmann::json() : nlohmann::json(a.r2)},
                             {"max_rel_error", a.max_rel},
                             {"points", a.n}};
        };
        std::vector<double> mx(B), mg(B), mxc(B), mgc(B);
        for (std::size_t i = 0; i < B; ++i) {
            mx[i] = m.forward[i].var.value;
            mg[i] = m.backward[i].var.value;
            mxc[i] = m.forward[i].corr.value;
            mgc[i] = m.backward[i].corr.value;
        }
        report("x_var", px_var, mx);
        report("x_corr", px_corr, mxc);
        report("g_var", pg_var, mg);
        report("g_corr", pg_corr, mgc);
        for (int j = 0; j < nf; ++j) {
            std::vector<double> p, q;
            for (int l = 0; l < int(W); ++l) {
                p.push_back(pw[std::size_t(l)][std::size_t(j)]);
                q.push_back(wget(l, j).value);
            }
            report((std::string("w_") + names[j]).c_str(), p, q);
        }
    } else {
        std::printf("# predict() not available in this build: measurements only\n");
    }

    if (csv_out) {
        std::ostream& f = csv_out->stream();
        f << "index,boundary,x_mean,x_mean_se,x_var,x_var_se,x_cov,x_cov_se,x_corr,x_corr_se,g_var,g_var_se,g_cov,"
             "g_cov_se,g_corr,g_corr_se,pred_x_var,pred_x_corr,pred_g_var,pred_g_corr\n";
        f.precision(10);
        for (std::size_t i = 0; i < B; ++i) {
            const auto& x = m.forward[i];
            const auto& g = m.backward[i];
            f << i << ',' << m.labels[i] << ',' << x.mean.value << ',' << x.mean.se << ',' << x.var.value << ','
              << x.var.se << ',' << x.cov.value << ',' << x.cov.se << ',' << x.corr.value << ',' << x.corr.se << ','
              << g.var.value << ',' << g.var.se << ',' << g.cov.value << ',' << g.cov.se << ',' << g.corr.value << ','
              << g.corr.se << ',' << px_var[i] << ',' << px_corr[i] << ',' << pg_var[i] << ',' << pg_corr[i] << '\n';
        }
        std::ostream& w = layers_out->stream();
        w.precision(10);
        w << "layer";
        for (int q = 0; q < nf; ++q) w << ',' << names[q] << ',' << names[q] << "_se,pred_" << names[q];
        w << '\n';
        for (int l = 0; l < int(W); ++l) {
            w << l + 1;
            for (int j = 0; j < nf; ++j) w << ',' << wget(l, j).value << ',' << wget(l, j).se << ',' << pw[std::size_t(l)][std::size_t(j)];
            w << '\n';
        }
    }
    if (json_out) {
        nlohmann::json j;
        j["spec"] = {{"layers", s.layers}, {"d_model", s.d_model}, {"d_ff", s.d_ff}, {"heads", s.heads},
                     {"seq_len", s.seq_len}, {"source_len", s.source_len}, {"norm", norm}, {"arch", arch}, {"act", act}, {"init", init},
                     {"sigma", sigma}, {"sigma_qk", sigma_qk}, {"lambda", s.lambda}, {"beta", s.beta},
                     {"p_hidden", s.p_hidden}, {"p_attention", s.p_attention}, {"final_norm", s.final_norm}};
        j["run"] = {{"sequences", m.sequences}, {"blocks", m.blocks}, {"per_draw", o.sequences_per_draw},
                    {"seed", o.seed}};
        for (std::size_t i = 0; i < B; ++i) {
            const auto& x = m.forward[i];
            const auto& g = m.backward[i];
            nlohmann::json b = {{"label", m.labels[i]},
                                {"x", {{"mean", to_json(x.mean)}, {"var", to_json(x.var)}, {"cov", to_json(x.cov)}, {"corr", to_json(x.corr)}}},
                                {"g", {{"var", to_json(g.var)}, {"cov", to_json(g.cov)}, {"corr", to_json(g.corr)}}}};
            if (have_pred) b["pred"] = {{"x_var", px_var[i]}, {"x_corr", px_corr[i]}, {"g_var", pg_var[i]}, {"g_corr", pg_corr[i]}};
            j["boundaries"].push_back(b);
        }
        for (int l = 0; l < int(W); ++l) {
            nlohmann::json w;
            for (int q = 0; q < nf; ++q) {
                w[names[q]] = to_json(wget(l, q));
                if (have_pred) w[std::string("pred_") + names[q]] = pw[std::size_t(l)][std::size_t(q)];
            }
            j["weights"].push_back(w);
        }
        j["metrics"] = metrics;
        json_out->stream() << j.dump(1) << '\n';
    }
    try {
        for (auto* f : {&csv_out, &layers_out, &json_out})
            if (*f) (*f)->commit();
    } catch (const sigprop::validation::output_error& e) {
        std::cerr << "model_mc: " << e.what() << "\n";
        return 2;
    }
    return 0;
}
