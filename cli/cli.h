/* cli.h — shared plumbing of the `gradc` subcommands.
 *
 * The CLI is thin: each subcommand lives in cli/cmd_NAME.c as
 *     int cmd_NAME(int argc, char **argv);    argv[0] is the command name
 * parses its flags with the helpers below and calls the library.  Exit
 * codes: 0 success, 1 user error (message with a place and a hint), 2
 * internal error.  Both `--flag value` and `--flag=value` are accepted.
 *
 *   for (int i = 1; i < argc; i++) {
 *       const char *v;
 *       if (cli_is_help(argv[i])) return cli_help("check");
 *       if (cli_take_set(argv, argc, &i, &common)) continue;
 *       if (cli_flag_value(argv, argc, &i, "--stage", &v)) { stage = v; continue; }
 *       ...
 *   }
 */
#ifndef GRADC_CLI_H
#define GRADC_CLI_H

#include "frontend/fe.h"
#include "ir/ir.h"

#include <stdbool.h>

#define CLI_MAX_SETS 64

typedef struct CliModelArgs {
    FeSet sets[CLI_MAX_SETS];
    int nsets;
    bool bad;            /* a malformed --set was seen (already reported) */
} CliModelArgs;

typedef struct CliCommand {
    const char *name;
    const char *summary;  /* one line, for `gradc --help` */
    const char *usage;    /* the full help text of `gradc NAME --help` */
    int (*fn)(int argc, char **argv);
} CliCommand;

extern const CliCommand cli_commands[];
extern const int cli_ncommands;

bool cli_is_help(const char *arg);
/* Prints the help text of a command to stdout; returns 0. */
int cli_help(const char *cmd);
/* Reports a usage error: "gradc CMD: MSG" plus a pointer to --help; returns 1. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints an IrError to stderr; returns 1. */
int cli_fail(const IrError *err);

/* Matches `--name value` (advancing *i) or `--name=value`.  A missing value
 * is reported and makes *value NULL (the caller returns 1). */
bool cli_flag_value(char **argv, int argc, int *i, const char *name, const char **value);
/* Matches `--set k=v` / `--set=k=v`, recording it in m. */
bool cli_take_set(char **argv, int argc, int *i, CliModelArgs *m);
/* Parses an integer flag value; reports and returns false on junk. */
bool cli_parse_int(const char *cmd, const char *flag, const char *s, long long *out);

/* Loads a model: FILE.json through the frontend (with --set overrides), or
 * FILE.gir / "-" (stdin) through the IR parser.  *model receives the
 * frontend model (NULL for .gir) so callers can read its config; the
 * caller frees it with fe_model_free, or the graph with ir_graph_free when
 * *model is NULL.  Returns NULL and fills err on failure. */
IrGraph *cli_load(const char *path, const CliModelArgs *m, FeModel **model, IrError *err);
void cli_unload(IrGraph *g, FeModel *model);

/* Subcommands. */
int cmd_check(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_opt(int argc, char **argv);
int cmd_dot(int argc, char **argv);

#endif
