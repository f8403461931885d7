/* cli.h — shared plumbing of the `gradc` subcommands.
 *
 * The CLI is thin: each subcommand lives in cli/cmd_NAME.c as
 *     int cmd_NAME(int argc, char **argv);    argv[0] is the command name
 * reads its flags with cli_parse against its flag table (flags.h), and
 * calls the library.  Exit codes: 0 success, 1 user error (message with a
 * place and a hint), 2 internal error.
 */
#ifndef GRADC_CLI_H
#define GRADC_CLI_H

#include "cli/flags.h"
#include "frontend/fe.h"
#include "ir/ir.h"
#include "passes/pass.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_MAX_SETS 64

typedef struct CliModelArgs {
    FeSet sets[CLI_MAX_SETS];
    char keys[CLI_MAX_SETS][128]; /* storage of sets[i].key */
    int nsets;
    bool bad;            /* a malformed --set was seen (already reported) */
    PassLoraOpts lora;   /* --lora-*: cli_load runs the lora pass when rank > 0 */
} CliModelArgs;

typedef struct CliCommand {
    const char *name;
    const char *summary;  /* one line, for `gradc --help` */
    const CliSpec *spec;  /* its flags, and the text of `gradc NAME --help` (flags.h) */
    int (*fn)(int argc, char **argv);
    bool blas;            /* runs compiled kernels, so OpenBLAS's core type matters (blas.c) */
} CliCommand;

extern const CliCommand cli_commands[];
extern const int cli_ncommands;

/* blas.c: re-executes gradc with OPENBLAS_CORETYPE set when OpenBLAS fell
 * back to kernels narrower than the CPU's (returns when nothing to do).
 * main calls it for the commands marked `blas` only: the exec costs about
 * 14 ms, which the others (check, dump, opt, ...) should not pay. */
void cli_blas_auto(char **argv);

bool cli_is_help(const char *arg);
/* Prints the help text of a command to stdout; returns 0. */
int cli_help(const char *cmd);
/* Prints the help text of a spec (a command's, or a task's: finetune instruct). */
int cli_help_spec(const CliSpec *s);
/* Reports a usage error: "gradc CMD: MSG" plus a pointer to --help; returns 1. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints an IrError to stderr; returns 1. */
int cli_fail(const IrError *err);

/* Loads a model: FILE.json through the frontend (with --set overrides), or
 * FILE.gir / "-" (stdin) through the IR parser.  *model receives the
 * frontend model (NULL for .gir) so callers can read its config; the
 * caller frees it with fe_model_free, or the graph with ir_graph_free when
 * *model is NULL.  Returns NULL and fills err on failure. */
IrGraph *cli_load(const char *path, const CliModelArgs *m, FeModel **model, IrError *err);
/* The lora pass with options o on a loaded model graph (nothing when
 * o->rank is 0), as cli_load runs it; false + err (a target glob that
 * matches nothing).  For commands that load models their own way. */
bool cli_lora_apply(IrGraph *g, const PassLoraOpts *o, IrError *err);
void cli_unload(IrGraph *g, FeModel *model);

/* What a command prints, to stdout when path is NULL or "-" (a failed
 * flush is reported), else to path through ir/outfile.c: atomically over a
 * regular file, in place into a device or FIFO, never replacing anything
 * that is not a regular file.  Returns 0, or 1 after reporting. */
typedef void (*CliPrintFn)(FILE *f, const void *arg);
int cli_write_out(const char *path, CliPrintFn print, const void *arg);
/* g as IR text through cli_write_out. */
int cli_write_ir(const IrGraph *g, const char *path);

/* ---------------------------------------------------------------- bind.c, inputs.c, exec.c
 * What run, verify and bench share: the flags that pick a binding and a
 * runtime, the binding itself (bind.c), seeded random inputs and output
 * summaries (inputs.c), the pipeline and the compiled program (exec.c). */

typedef struct RtExec RtExec;

/* What picks the values of a graph's symbols, in every command that binds
 * them: --batch (B), --seq (T), --bind NAME=V (any symbol). */
typedef struct CliBindArgs {
    long long batch, seq;
    bool seq_given;
    bool others_seq;                      /* check: a symbol without --bind takes T's value */
    char name[IR_MAX_SYMS][32];           /* --bind NAME=V */
    long long value[IR_MAX_SYMS];
    int n;
} CliBindArgs;

typedef struct CliExecArgs {
    const char *in;
    CliModelArgs model;
    CliBindArgs bind;
    long long seed, threads;              /* threads 0: the runtime decides */
    bool no_cache;
    const char *passes;                   /* NULL: the default pipeline */
} CliExecArgs;

/* One random input: node, dims at the binding, data (f32, i32 or u8). */
typedef struct CliInput {
    const IrNode *node;
    int64_t dim[IR_MAX_RANK];
    int64_t numel, bytes;
    bool state;                           /* written back by an output */
    IrIndexUse use;                       /* i32: the rows or classes it selects */
    void *data;
} CliInput;

typedef struct CliInputs {
    int n;
    CliInput *in;
} CliInputs;

/* B=2, T=64, seed 42. */
CliExecArgs cli_exec_args_default(void);
/* binding[s] for every symbol of g: --bind NAME=V, B from --batch, T from
 * --seq, and with others_seq any other symbol from --seq; else an error.
 * A symbol left at its default is capped at what the model allows (T at
 * context_length, any symbol at the rows of a table that a gather reads
 * with an iota over it); one that was given and is too large is an error,
 * as is any binding that makes such a gather read past its table
 * (ir_index_check_binding).  Read g before `decompose`. */
bool cli_bind(const IrGraph *g, const FeModel *m, const CliBindArgs *b, int64_t *binding,
              IrError *err);
/* gradc train's check of its binding before it starts: loads the model at
 * `path` and binds B = batch, T = seq (0: the config's context_length) as
 * cli_bind does.  Returns -1 to go on, else an exit code after reporting. */
int cli_check_seq(const char *path, const CliModelArgs *m, long long batch, long long seq);
void cli_print_binding(const IrGraph *g, const int64_t *binding, FILE *f);
/* A config value of m >= 1 as an integer; false when m is NULL or has none. */
bool cli_config_int(const FeModel *m, const char *key, int64_t *v);
/* Seeded random values for every input of g (see inputs.c).  Call it on
 * g before `decompose`: an integer input's range comes from the gathers
 * and cross_entropy that read it. */
void cli_make_inputs(const IrGraph *g, const FeModel *m, const int64_t *binding, uint64_t seed,
                     bool state_random, CliInputs *out);
void cli_free_inputs(CliInputs *in);
/* Sets every input of ex; an i32 input holding a value outside the rows or
 * classes it selects (CliInput.use) is an error, before anything runs. */
bool cli_set_inputs(RtExec *ex, const CliInputs *in, IrError *err);
/* "  NAME: f32[2,64,256]", then mean/std/min/max and the first values. */
void cli_print_output(const IrGraph *g, const IrOutput *o, const int64_t *binding,
                      const void *data, int64_t numel, FILE *f);
/* Runs the pipeline (NULL: the default); -1 to go on, else an exit code. */
int cli_run_passes(IrGraph *g, const char *passes, const int64_t *binding, IrError *err);
RtExec *cli_exec_new(const IrGraph *g, const int64_t *binding, const CliExecArgs *a,
                     bool timing, IrError *err);
/* compile time and cache, memory, threads and OpenBLAS core */
void cli_print_exec(const RtExec *ex, FILE *f);
double cli_now_ms(void);
/* `gradc dump --stage=llvm|asm`: compiles g at the binding of `a` and
 * prints the optimized LLVM IR or the machine code to stdout, or to `out`
 * (atomically).  Returns an exit code. */
int cli_dump_kernels(const IrGraph *g, const FeModel *m, const CliExecArgs *a, bool want_asm,
                     const char *out);

/* Subcommands. */
int cmd_check(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_opt(int argc, char **argv);
int cmd_dot(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_finetune_instruct(int argc, char **argv);   /* cmd_finetune_inst.c */
int cmd_respond(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_oracle(int argc, char **argv);   /* oracle-step: tests/oracle/ */
int cmd_gradcheck(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_import_gpt2(int argc, char **argv);
int cmd_export_gpt2(int argc, char **argv);

#endif
