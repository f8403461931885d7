/* commands.c — the table of `gradc` subcommands: the whole CLI surface.
 *
 * Each row's usage text lives next to its implementation in cli/cmd_NAME.c.
 * Adding a command is one row here, one declaration in cli.h and one file.
 * The table is apart from main.c so that the subcommands form a library
 * (gradc_cli) that other programs link: tests/fuzz/graphgen runs
 * `gradc verify` in-process through cmd_verify.
 */
#include "cli.h"

extern const char cmd_check_usage[], cmd_dump_usage[], cmd_opt_usage[], cmd_dot_usage[];
extern const char cmd_run_usage[], cmd_verify_usage[], cmd_bench_usage[];
extern const char cmd_train_usage[];
extern const char cmd_generate_usage[];
extern const char cmd_tokenize_usage[];
extern const char cmd_oracle_usage[];
extern const char cmd_gradcheck_usage[];
extern const char cmd_plan_usage[];
extern const char cmd_plot_usage[];

const CliCommand cli_commands[] = {
    {"check", "verify a model; print params, FLOPs/token and memory", cmd_check_usage, cmd_check,
     false},
    {"dump", "print the IR of a model or .gir file at a stage", cmd_dump_usage, cmd_dump, false},
    {"opt", "run passes over IR text: .gir in, .gir out", cmd_opt_usage, cmd_opt, false},
    {"gradcheck", "autodiff vs finite differences for every parameter", cmd_gradcheck_usage,
     cmd_gradcheck, false},
    {"plan", "kernels, peak and naive bytes, FLOPs and a kernel table, before anything runs",
     cmd_plan_usage, cmd_plan, false},
    {"dot", "Graphviz drawing of a model or .gir file", cmd_dot_usage, cmd_dot, false},
    {"run", "one forward of a model on random inputs, compiled to native code", cmd_run_usage,
     cmd_run, true},
    {"verify", "compiled graph vs the reference interpreter: worst errors", cmd_verify_usage,
     cmd_verify, true},
    {"bench", "tokens/s, per-kernel times, GFLOP/s and peak RSS", cmd_bench_usage, cmd_bench,
     true},
    {"train", "pretrain a model on a text file: progress, val loss, checkpoints, plot",
     cmd_train_usage, cmd_train, true},
    {"generate", "sample text from a checkpoint (greedy, temperature, top-k)",
     cmd_generate_usage, cmd_generate, true},
    {"tokenize", "text to GPT-2 BPE or char token ids, and back", cmd_tokenize_usage,
     cmd_tokenize, false},
    {"plot", "loss curves of CSV logs (gradc's, PyTorch's) as one SVG", cmd_plot_usage,
     cmd_plot, false},
    {"oracle-step", "diagnostic: forward and train steps on weights from a safetensors file",
     cmd_oracle_usage, cmd_oracle, true},
};
const int cli_ncommands = sizeof cli_commands / sizeof cli_commands[0];
