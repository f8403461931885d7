/* flags.h — the flag tables of the `gradc` subcommands (cli/flags.c).
 *
 * Each command describes its flags once, as a table of CliFlag rows: the
 * name, the kind of value, the field of the command's argument struct that
 * receives it (an offset, so one table serves every call), the range, the
 * default as help prints it and the help line.  One loop (cli_parse) reads
 * argv against the table, and the flags part of `gradc CMD --help` is
 * printed from the same rows, so the parser, the help and the docs test
 * (tests/scripts/cli_docs.sh) cannot disagree.
 *
 *   typedef struct RunArgs { const char *in; CliExecArgs x; } RunArgs;
 *   static const CliFlag flags[] = {
 *       CLI_FLAG_SET(RunArgs, x.model),
 *       {"--seed", CLI_INT, CLI_AT(RunArgs, x.seed), .meta = "S", .def = "42",
 *        .help = "seed of the params and inputs"},
 *       {0}};
 *   const CliSpec cmd_run_spec = {"run", usage, flags, tail, CLI_ONE_INPUT(RunArgs, in)};
 *   ...
 *   int r = cli_parse(&cmd_run_spec, argc, argv, &args);   -1: go on, else an exit code
 */
#ifndef GRADC_CLI_FLAGS_H
#define GRADC_CLI_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum CliKind {
    CLI_END,        /* the row that ends a table */
    CLI_HEAD,       /* no flag: a heading in the help (help is its text) */
    CLI_TRUE,       /* a switch: the bool field becomes true */
    CLI_FALSE,      /* a switch: the bool field becomes false */
    CLI_INT,        /* an integer >= min into a 4- or 8-byte field */
    CLI_THREADS,    /* an integer in 1..RT_MAX_THREADS, checked before any thread starts */
    CLI_NUM,        /* a finite double >= 0, or > 0 with `positive` */
    CLI_STR,        /* a string (it points into argv, which lives for the whole run) */
    CLI_LIST,       /* a repeatable string: an array of const char *, its int count at `count` */
    CLI_CALL,       /* fn parses the value */
    CLI_REFUSE,     /* not a flag of this command: help is the error; not in --help */
} CliKind;

typedef struct CliFlag CliFlag;
/* A CLI_CALL parser: the value v into field; 0, or an exit code after reporting. */
typedef int (*CliFlagFn)(const char *cmd, const CliFlag *f, const char *v, void *field);

struct CliFlag {
    const char *name;      /* "--batch", "-o" */
    CliKind kind;
    size_t off, size;      /* the field: CLI_AT(T, member) */
    long long min;         /* CLI_INT: the least value */
    bool positive;         /* CLI_NUM: the value must be > 0 */
    size_t count;          /* CLI_LIST: offset of the int count */
    CliFlagFn fn;          /* CLI_CALL */
    const char *meta;      /* the value's name in --help ("B"); "=LIST" prints --passes=LIST */
    const char *def;       /* the default as --help prints it, or NULL */
    const char *help;      /* one line; --help wraps it */
};

#define CLI_AT(T, member) offsetof(T, member), sizeof(((T *)0)->member)

/* What a command's positional arguments are: by default one input at
 * `pos_off` (a const char *), and `twice` the error for a second one (with
 * the two names as %s); or `pos` takes each. */
typedef struct CliSpec {
    const char *cmd;
    const char *usage;     /* the usage lines and the description, up to the flags */
    const CliFlag *flags;  /* ends with {0} */
    const char *tail;      /* what --help prints after the flags: output, examples, exit codes */
    size_t pos_off;
    const char *twice;
    int (*pos)(const char *cmd, const char *arg, void *args);   /* 0 or an exit code */
} CliSpec;

#define CLI_ONE_INPUT(T, member)                                                              \
    offsetof(T, member), "more than one input file ('%s' and '%s')", NULL

/* Reads argv[1..] against spec into args.  Returns -1 to go on, 0 after
 * printing --help, or 1 after reporting a usage error. */
int cli_parse(const CliSpec *spec, int argc, char **argv, void *args);
/* The value of the last `name` in argv, read as cli_parse reads it (NULL
 * when absent or without a value): what a command needs before parsing,
 * as train's --resume, whose checkpoint gives the defaults. */
const char *cli_flag_last(const CliSpec *spec, int argc, char **argv, const char *name);
/* Prints the flags part of the help: the rows, wrapped to 80 columns. */
void cli_print_flags(const CliFlag *flags, FILE *f);
/* Parses an integer: the whole of s, in range of long long; false on junk. */
bool cli_int_value(const char *s, long long *out);

/* ---------------------------------------------------------------- shared rows
 * The flags several commands share, as rows to put in their tables.  Their
 * parsers live in flags.c; the binding's in bind.c. */

int cli_set_fn(const char *cmd, const CliFlag *f, const char *v, void *field);
int cli_bind_fn(const char *cmd, const CliFlag *f, const char *v, void *field);
int cli_seq_fn(const char *cmd, const CliFlag *f, const char *v, void *field);
/* --tokenizer gpt2|char into an RtTokKind */
int cli_tokenizer_fn(const char *cmd, const CliFlag *f, const char *v, void *field);

/* --set k=v into the CliModelArgs `m` of T */
#define CLI_FLAG_SET(T, m)                                                                    \
    {"--set", CLI_CALL, CLI_AT(T, m), .fn = cli_set_fn, .meta = "k=v",                        \
     .help = "override a config value of a JSON model (repeatable)"}
/* --lora-scale alpha/r|alpha into a PassLoraScale */
int cli_lora_scale_fn(const char *cmd, const CliFlag *f, const char *v, void *field);
/* The LoRA flags into the PassLoraOpts `lo` of T (passes/pass.h): rank,
 * alpha, scale and target globs of the lora pass.  In a CliModelArgs
 * (CLI_FLAGS_LORA(T, model.lora)) cli_load applies the pass to the model;
 * opt puts them in its PassCtx (ctx.lora) for --passes=lora. */
#define CLI_FLAGS_LORA(T, lo)                                                                 \
    {"--lora-rank", CLI_INT, CLI_AT(T, lo.rank), .min = 0, .meta = "R", .def = "0: no LoRA",  \
     .help = "add LoRA adapters of rank R to the linear layers and freeze every other "       \
             "param"},                                                                        \
    {"--lora-alpha", CLI_NUM, CLI_AT(T, lo.alpha), .positive = true, .meta = "A",             \
     .def = "the rank", .help = "LoRA's alpha"},                                              \
    {"--lora-scale", CLI_CALL, CLI_AT(T, lo.scale), .fn = cli_lora_scale_fn,                  \
     .meta = "alpha/r|alpha", .def = "alpha/r",                                               \
     .help = "the scale s of the low-rank path: alpha/r (PEFT) or alpha (the book's)"},      \
    {"--lora-targets", CLI_LIST, CLI_AT(T, lo.targets), .count = offsetof(T, lo.ntargets),    \
     .meta = "GLOB", .def = "every matmul by a 2-D param",                                    \
     .help = "adapt the weights whose names match GLOB, e.g. '*.att.W_*' (repeatable)"}
/* --batch, --seq and --bind into the CliBindArgs `b` of T, whose defaults
 * (the text of bdef and tdef) the command sets: the rows of every command
 * that runs a graph */
#define CLI_FLAGS_BIND(T, b, bdef, tdef)                                                      \
    {"--batch", CLI_INT, CLI_AT(T, b.batch), .min = 1, .meta = "B", .def = bdef,              \
     .help = "the value of symbol B"},                                                        \
    {"--seq", CLI_CALL, CLI_AT(T, b), .fn = cli_seq_fn, .meta = "T", .def = tdef,             \
     .help = "the value of symbol T; a default is capped at context_length and at the rows "  \
             "of a positional table, a value given past them is an error"},                   \
    {"--bind", CLI_CALL, CLI_AT(T, b), .fn = cli_bind_fn, .meta = "NAME=V",                   \
     .help = "the value of any other symbol of the graph (repeatable)"}
#define CLI_FLAG_THREADS(T, f, what)                                                          \
    {"--threads", CLI_THREADS, CLI_AT(T, f), .min = 1, .meta = "N",                           \
     .def = "$GRADC_THREADS, else the CPUs available", .help = what}
#define CLI_FLAG_NO_CACHE(T, f)                                                               \
    {"--no-cache", CLI_TRUE, CLI_AT(T, f),                                                    \
     .help = "compile even if the kernels are in the cache"}
/* what the commands that run compiled code share: the binding, --seed,
 * --threads and --no-cache into the CliExecArgs `x` of T (--set and
 * --passes, whose help differs, are the command's own rows) */
#define CLI_FLAGS_EXEC(T, x)                                                                  \
    CLI_FLAGS_BIND(T, x.bind, "2", "64"),                                                     \
    {"--seed", CLI_INT, CLI_AT(T, x.seed), .meta = "S", .def = "42",                          \
     .help = "seed of the params and inputs"},                                                \
    CLI_FLAG_THREADS(T, x.threads, "threads of the runtime and OpenBLAS"),                    \
    CLI_FLAG_NO_CACHE(T, x.no_cache)
/* the pass flags of dump and opt: the PassCtx `ctx` of T */
#define CLI_FLAGS_PASS_PRINT(T, ctx)                                                          \
    {"--print-after", CLI_STR, CLI_AT(T, ctx.print_after), .meta = "=P",                      \
     .help = "also print the IR after pass P, or after every pass (all)"},                    \
    {"--print-before", CLI_STR, CLI_AT(T, ctx.print_before), .meta = "=P",                    \
     .help = "also print the IR before pass P, or before every pass (all)"},                  \
    {"--explain", CLI_TRUE, CLI_AT(T, ctx.explain),                                           \
     .help = "print each fusion made and refused, as // fuse: lines"}

#endif
