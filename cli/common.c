/* common.c — help, usage errors, model loading and output shared by
 * subcommands.  cli_write_out is the one way a command writes what it
 * prints to `-o FILE`: through ir/outfile.c, which replaces a regular file
 * atomically and writes a device, a FIFO or a terminal in place (it never
 * replaces what is not a regular file). */
#include "cli.h"
#include "ir/outfile.h"
#include "passes/pass.h"

#include <errno.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cli_is_help(const char *arg)
{
    return !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

int cli_help_spec(const CliSpec *s)
{
    fputs(s->usage, stdout);
    cli_print_flags(s->flags, stdout);
    printf("\n%s", s->tail);
    return 0;
}

int cli_help(const char *cmd)
{
    for (int i = 0; i < cli_ncommands; i++)
        if (!strcmp(cmd, cli_commands[i].name))
            return cli_help_spec(cli_commands[i].spec);
    fprintf(stderr, "gradc: error: no command named '%s'\n  hint: run `gradc --help`\n", cmd);
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gradc %s: error: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n  hint: run `gradc %s --help` for usage\n", cmd);
    va_end(ap);
    return 1;
}

int cli_fail(const IrError *err)
{
    ir_error_print(err, stderr);
    return 1;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static char *read_stdin(void)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len - 1, stdin)) > 0) {
        len += got;
        if (cap - len < 2)
            buf = realloc(buf, cap *= 2);
    }
    if (buf)
        buf[len] = 0;
    return buf;
}

bool cli_lora_apply(IrGraph *g, const PassLoraOpts *o, IrError *err)
{
    if (o->rank <= 0)
        return true;
    PassCtx ctx = pass_ctx_default(err);
    ctx.lora = *o;
    return pass_run_one(g, pass_lookup("lora"), &ctx);
}

static IrGraph *load_graph(const char *path, const CliModelArgs *m, FeModel **model,
                           IrError *err)
{
    if (!strcmp(path, "-")) {
        char *text = read_stdin();
        IrGraph *g = text ? ir_parse(text, "<stdin>", err) : NULL;
        free(text);
        return g;
    }
    if (ends_with(path, ".gir"))
        return ir_parse_file(path, err);
    FeOptions opt = {m->sets, m->nsets};
    *model = fe_load_file(path, &opt, err);
    return *model ? (*model)->graph : NULL;
}

IrGraph *cli_load(const char *path, const CliModelArgs *m, FeModel **model, IrError *err)
{
    *model = NULL;
    IrGraph *g = load_graph(path, m, model, err);
    if (g && !cli_lora_apply(g, &m->lora, err)) {
        ir_error_where(err, "%s", path);
        cli_unload(g, *model);
        *model = NULL;
        return NULL;
    }
    return g;
}

void cli_unload(IrGraph *g, FeModel *model)
{
    if (model)
        fe_model_free(model);
    else
        ir_graph_free(g);
}

/* ---------------------------------------------------------------- output */

int cli_write_out(const char *path, CliPrintFn print, const void *arg)
{
    IrError err = {0};
    if (!path || !strcmp(path, "-")) {
        print(stdout, arg);
        if (fflush(stdout) == 0)
            return 0;
        ir_error(&err, "cannot write '<stdout>': %s", strerror(errno));
        ir_error_hint(&err, "check that the directory exists and is writable");
        return cli_fail(&err);
    }
    IrOutFile o;
    FILE *f = ir_outfile_open(&o, path, "output", &err);
    if (!f)
        return cli_fail(&err);
    print(f, arg);
    return ir_outfile_commit(&o, &err) ? 0 : cli_fail(&err);
}
