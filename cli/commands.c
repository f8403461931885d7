/* commands.c — the table of `gradc` subcommands: the whole CLI surface.
 *
 * Each row's flag table and help text (a CliSpec) live next to its
 * implementation in cli/cmd_NAME.c.
 * Adding a command is one row here, one declaration in cli.h and one file.
 * The table is apart from main.c so that the subcommands form a library
 * (gradc_cli) that other programs link: tests/fuzz/graphgen runs
 * `gradc verify` in-process through cmd_verify.
 */
#include "cli.h"

extern const CliSpec cmd_check_spec, cmd_dump_spec, cmd_opt_spec, cmd_dot_spec;
extern const CliSpec cmd_run_spec, cmd_verify_spec, cmd_bench_spec;
extern const CliSpec cmd_train_spec;
extern const CliSpec cmd_generate_spec;
extern const CliSpec cmd_tokenize_spec;
extern const CliSpec cmd_oracle_spec;
extern const CliSpec cmd_gradcheck_spec;
extern const CliSpec cmd_plan_spec;
extern const CliSpec cmd_plot_spec;
extern const CliSpec cmd_import_gpt2_spec, cmd_export_gpt2_spec;
extern const CliSpec cmd_finetune_spec, cmd_classify_spec;
extern const CliSpec cmd_respond_spec, cmd_score_spec;

const CliCommand cli_commands[] = {
    {"check", "verify a model; print params, FLOPs/token and memory", &cmd_check_spec, cmd_check,
     false},
    {"dump", "print the IR of a model or .gir file at a stage", &cmd_dump_spec, cmd_dump, false},
    {"opt", "run passes over IR text: .gir in, .gir out", &cmd_opt_spec, cmd_opt, false},
    {"gradcheck", "autodiff vs finite differences for every parameter", &cmd_gradcheck_spec,
     cmd_gradcheck, false},
    {"plan", "kernels, peak and naive bytes, FLOPs and a kernel table, before anything runs",
     &cmd_plan_spec, cmd_plan, false},
    {"dot", "Graphviz drawing of a model or .gir file", &cmd_dot_spec, cmd_dot, false},
    {"run", "one forward of a model on random inputs, compiled to native code", &cmd_run_spec,
     cmd_run, true},
    {"verify", "compiled graph vs the reference interpreter: worst errors", &cmd_verify_spec,
     cmd_verify, true},
    {"bench", "tokens/s, per-kernel times, GFLOP/s and peak RSS", &cmd_bench_spec, cmd_bench,
     true},
    {"train", "pretrain a model on a text file: progress, val loss, checkpoints, plot",
     &cmd_train_spec, cmd_train, true},
    {"finetune", "fine-tune a pretrained GPT: classify (texts), instruct (instructions); LoRA",
     &cmd_finetune_spec, cmd_finetune, true},
    {"classify", "the label of each text, by a model of finetune classify",
     &cmd_classify_spec, cmd_classify, true},
    {"respond", "a model's response to each entry of an instruction file",
     &cmd_respond_spec, cmd_respond, true},
    {"score", "exact match, token F1 and reference loss of a responses file",
     &cmd_score_spec, cmd_score, true},
    {"generate", "sample text from a checkpoint (greedy, temperature, top-k)",
     &cmd_generate_spec, cmd_generate, true},
    {"tokenize", "text to GPT-2 BPE or char token ids, and back", &cmd_tokenize_spec,
     cmd_tokenize, false},
    {"plot", "loss curves of CSV logs (gradc's, PyTorch's) as one SVG", &cmd_plot_spec,
     cmd_plot, false},
    {"import-gpt2", "a Hugging Face GPT-2 (safetensors) into a gradc checkpoint",
     &cmd_import_gpt2_spec, cmd_import_gpt2, false},
    {"export-gpt2", "a gradc GPT-2 checkpoint to the Hugging Face layout (LoRA merged)",
     &cmd_export_gpt2_spec, cmd_export_gpt2, false},
    {"oracle-step", "diagnostic: forward and train steps on weights from a safetensors file",
     &cmd_oracle_spec, cmd_oracle, true},
};
const int cli_ncommands = sizeof cli_commands / sizeof cli_commands[0];
