/* main.c — the `gradc` command: dispatch to subcommands.
 *
 * The subcommands and their table (cli/commands.c, the whole CLI surface)
 * form the library gradc_cli; this file only dispatches to them, and then
 * checks that what they printed reached standard output.
 */
#include "cli.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void main_usage(FILE *f)
{
    fprintf(f, "usage: gradc COMMAND [ARGS...]\n\n"
               "gradc compiles dataflow graphs written as JSON model files: it checks them,\n"
               "prints their IR at any stage, runs passes over IR text and draws them.\n\n"
               "commands:\n");
    for (int i = 0; i < cli_ncommands; i++)
        fprintf(f, "  %-10s %s\n", cli_commands[i].name, cli_commands[i].summary);
    fprintf(f, "\nRun `gradc COMMAND --help` for the flags of a command.\n"
               "Exit codes: 0 success, 1 user error, 2 internal error.\n");
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        main_usage(stderr);
        return 1;
    }
    if (cli_is_help(argv[1]) || !strcmp(argv[1], "help")) {
        if (argc > 2 && strcmp(argv[1], "help") == 0)
            return cli_help(argv[2]);
        main_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("gradc 0.1.0\n");
        return 0;
    }
    for (int i = 0; i < cli_ncommands; i++)
        if (!strcmp(argv[1], cli_commands[i].name)) {
            if (cli_commands[i].blas)
                cli_blas_auto(argv);
            return cli_commands[i].fn(argc - 1, argv + 1);
        }
    fprintf(stderr, "gradc: error: unknown command '%s'\n", argv[1]);
    fprintf(stderr, "  hint: run `gradc --help` for the list of commands\n");
    return 1;
}

/* What a command printed must have arrived: a write error on standard
 * output (a full disk, a closed pipe) is exit 1, whatever the command. */
static int check_stdout(int rc)
{
    errno = 0;
    bool failed = fflush(stdout) != 0, earlier = ferror(stdout);
    if (!(failed || earlier) || rc != 0)    /* a failed command has reported already */
        return rc;
    fprintf(stderr, "gradc: error: cannot write to standard output: %s\n",
            failed && errno ? strerror(errno) : "a write failed");
    fprintf(stderr, "  hint: the output is incomplete; check the disk or the pipe it goes to\n");
    return 1;
}

int main(int argc, char **argv)
{
    return check_stdout(dispatch(argc, argv));
}
