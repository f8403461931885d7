/* common.c — flag parsing, help and model loading shared by subcommands. */
#include "cli.h"
#include "passes/pass.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cli_is_help(const char *arg)
{
    return !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

int cli_help(const char *cmd)
{
    for (int i = 0; i < cli_ncommands; i++)
        if (!strcmp(cmd, cli_commands[i].name)) {
            fputs(cli_commands[i].usage, stdout);
            return 0;
        }
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

bool cli_flag_value(char **argv, int argc, int *i, const char *name, const char **value)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0)
        return false;
    if (a[n] == '=') {
        *value = a + n + 1;
        return true;
    }
    if (a[n] != 0)
        return false;
    if (*i + 1 >= argc) {
        fprintf(stderr, "gradc: error: %s needs a value\n", name);
        *value = NULL;
        return true;
    }
    *value = argv[++*i];
    return true;
}

bool cli_take_set(char **argv, int argc, int *i, CliModelArgs *m)
{
    const char *kv;
    if (!cli_flag_value(argv, argc, i, "--set", &kv))
        return false;
    const char *eq = kv ? strchr(kv, '=') : NULL;
    if (!kv || !eq || eq == kv || m->nsets == CLI_MAX_SETS ||
        (size_t)(eq - kv) >= sizeof m->keys[0]) {
        fprintf(stderr, "gradc: error: --set expects KEY=VALUE, got '%s'\n"
                        "  hint: for example --set n_layers=2\n", kv ? kv : "");
        m->bad = true;
        return true;
    }
    /* the value points into argv, which lives for the whole run */
    char *key = m->keys[m->nsets];
    memcpy(key, kv, eq - kv);
    key[eq - kv] = 0;
    m->sets[m->nsets].key = key;
    m->sets[m->nsets].value = eq + 1;
    m->nsets++;
    return true;
}

bool cli_parse_int(const char *cmd, const char *flag, const char *s, long long *out)
{
    char *end;
    if (!s || !*s)
        return false;
    long long v = strtoll(s, &end, 10);
    if (*end) {
        cli_usage_error(cmd, "%s expects an integer, got '%s'", flag, s);
        return false;
    }
    *out = v;
    return true;
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

IrGraph *cli_load(const char *path, const CliModelArgs *m, FeModel **model, IrError *err)
{
    *model = NULL;
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

void cli_unload(IrGraph *g, FeModel *model)
{
    if (model)
        fe_model_free(model);
    else
        ir_graph_free(g);
}

/* ---------------------------------------------------------------- pass flags */

static int store_flag(const char **dst, const char *v)
{
    if (!v)
        return 1; /* cli_flag_value reported the missing value */
    *dst = v;
    return 0;
}

int cli_pass_flag(char **argv, int argc, int *i, const char **passes, PassCtx *ctx)
{
    const char *v = NULL;
    if (!strcmp(argv[*i], "--explain"))
        return ctx->explain = true, 0;
    if (cli_flag_value(argv, argc, i, "--passes", &v))
        return store_flag(passes, v);
    if (cli_flag_value(argv, argc, i, "--print-after", &v))
        return store_flag(&ctx->print_after, v);
    if (cli_flag_value(argv, argc, i, "--print-before", &v))
        return store_flag(&ctx->print_before, v);
    return -1;
}
