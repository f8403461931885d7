/* flags.c — the one argument loop of the `gradc` subcommands.
 *
 * cli_parse walks argv once.  An argument that starts with '-' (other than
 * "-", stdin) is a flag: its name is looked up in the command's table
 * (flags.h), its value taken from `--name=V` or from the next argument, and
 * stored by kind into the field the row names.  Anything else is a
 * positional argument.  Every error is a usage error of the command (exit
 * 1, with a pointer to --help); an unknown flag names the nearest one in
 * the table when it is a couple of edits away.  cli_print_flags prints the
 * same rows as the flags part of the help, each help line wrapped at 80
 * columns, so that what --help lists is exactly what the loop accepts.
 */
#include "cli.h"
#include "runtime/rt_data.h"
#include "runtime/rt_exec.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool takes_value(CliKind k)
{
    return k != CLI_TRUE && k != CLI_FALSE && k != CLI_HEAD && k != CLI_REFUSE;
}

/* the row named by arg up to its '=' (n chars), or NULL */
static const CliFlag *find(const CliFlag *flags, const char *arg, size_t n)
{
    for (const CliFlag *f = flags; f->kind != CLI_END; f++)
        if (f->name && strlen(f->name) == n && !strncmp(f->name, arg, n))
            return f;
    return NULL;
}

/* ---------------------------------------------------------------- unknown flags */

static size_t edits(const char *a, size_t na, const char *b)
{
    size_t nb = strlen(b), row[64];
    if (na >= 63 || nb >= 63)
        return SIZE_MAX;
    for (size_t j = 0; j <= nb; j++)
        row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            best = up + 1 < best ? up + 1 : best;
            best = row[j - 1] + 1 < best ? row[j - 1] + 1 : best;
            diag = up;
            row[j] = best;
        }
    }
    return row[nb];
}

static int unknown(const CliSpec *s, const char *arg, size_t n)
{
    const char *near = NULL;
    size_t best = 3;
    for (const CliFlag *f = s->flags; f->kind != CLI_END; f++) {
        size_t d = f->name && f->kind != CLI_REFUSE ? edits(arg, n, f->name) : SIZE_MAX;
        if (d < best)
            best = d, near = f->name;
    }
    if (near)
        return cli_usage_error(s->cmd, "unknown flag '%s' (did you mean '%s'?)", arg, near);
    return cli_usage_error(s->cmd, "unknown flag '%s'", arg);
}

/* ---------------------------------------------------------------- values */

bool cli_int_value(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno)
        return false;
    *out = v;
    return true;
}

static void store_int(const CliFlag *f, void *field, long long v)
{
    if (f->size == sizeof(int)) {
        int x = (int)v;
        memcpy(field, &x, sizeof x);
    } else {
        int64_t x = v;
        memcpy(field, &x, sizeof x);
    }
}

static int take_int(const char *cmd, const CliFlag *f, const char *v, void *field)
{
    long long x;
    long long max = f->size == sizeof(int) ? INT_MAX : LLONG_MAX;
    if (*v && !cli_int_value(v, &x))
        return cli_usage_error(cmd, "%s expects an integer, got '%s'", f->name, v);
    if (!*v || x < f->min || x > max)
        return cli_usage_error(cmd, "%s expects an integer >= %lld, got '%s'", f->name, f->min,
                               v);
    if (f->kind == CLI_THREADS && x > RT_MAX_THREADS)
        return cli_usage_error(cmd, "--threads %lld is more than gradc runs: at most %d (this "
                               "machine has %ld CPUs)", x, RT_MAX_THREADS,
                               sysconf(_SC_NPROCESSORS_ONLN));
    store_int(f, field, x);
    return 0;
}

static int take_num(const char *cmd, const CliFlag *f, const char *v, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(x) || x < 0 || (f->positive && !(x > 0)))
        return cli_usage_error(cmd, "%s expects %s, got '%s'", f->name,
                               f->positive ? "a positive number" : "a number >= 0", v);
    *out = x;
    return 0;
}

static int take_list(const char *cmd, const CliFlag *f, const char *v, char *args)
{
    int n;
    memcpy(&n, args + f->count, sizeof n);
    if ((size_t)n >= f->size / sizeof(const char *))
        return cli_usage_error(cmd, "at most %zu %s flags", f->size / sizeof(const char *),
                               f->name);
    memcpy(args + f->off + (size_t)n * sizeof v, &v, sizeof v);
    n++;
    memcpy(args + f->count, &n, sizeof n);
    return 0;
}

static int take_value(const CliSpec *s, const CliFlag *f, const char *v, char *args)
{
    void *field = args + f->off;
    switch (f->kind) {
    case CLI_INT:
    case CLI_THREADS:
        return take_int(s->cmd, f, v, field);
    case CLI_NUM:
        return take_num(s->cmd, f, v, field);
    case CLI_STR:
        memcpy(field, &v, sizeof v);
        return 0;
    case CLI_LIST:
        return take_list(s->cmd, f, v, args);
    case CLI_CALL:
        return f->fn(s->cmd, f, v, field);
    default:
        return 1;
    }
}

/* argv[*i], a flag: 0 taken, else an exit code */
static int take_flag(const CliSpec *s, char **argv, int argc, int *i, char *args)
{
    const char *arg = argv[*i], *eq = strchr(arg, '=');
    size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
    const CliFlag *f = find(s->flags, arg, n);
    if (!f || f->kind == CLI_HEAD)
        return unknown(s, arg, n);
    if (f->kind == CLI_REFUSE)
        return cli_usage_error(s->cmd, "%s %s", f->name, f->help);
    if (!takes_value(f->kind)) {
        if (eq)
            return cli_usage_error(s->cmd, "%s takes no value, got '%s'", f->name, arg);
        bool on = f->kind == CLI_TRUE;
        memcpy(args + f->off, &on, sizeof on);
        return 0;
    }
    if (!eq && *i + 1 >= argc)
        return cli_usage_error(s->cmd, "%s needs a value", f->name);
    return take_value(s, f, eq ? eq + 1 : argv[++*i], args);
}

static int take_positional(const CliSpec *s, const char *arg, char *args)
{
    if (s->pos)
        return s->pos(s->cmd, arg, args);
    const char *first;
    memcpy(&first, args + s->pos_off, sizeof first);
    if (first)
        return cli_usage_error(s->cmd, s->twice, first, arg);
    memcpy(args + s->pos_off, &arg, sizeof arg);
    return 0;
}

static bool is_flag(const char *arg)
{
    return arg[0] == '-' && arg[1];
}

int cli_parse(const CliSpec *spec, int argc, char **argv, void *args)
{
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i]))
            return cli_help_spec(spec);
        int r = is_flag(argv[i]) ? take_flag(spec, argv, argc, &i, args)
                                 : take_positional(spec, argv[i], args);
        if (r)
            return r;
    }
    return -1;
}

const char *cli_flag_last(const CliSpec *spec, int argc, char **argv, const char *name)
{
    const char *last = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq = strchr(arg, '=');
        size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
        const CliFlag *f = is_flag(arg) ? find(spec->flags, arg, n) : NULL;
        const char *v = !f || !takes_value(f->kind) ? NULL : eq ? eq + 1
                      : i + 1 < argc ? argv[++i] : NULL;
        if (f && !strcmp(f->name, name))
            last = v;
    }
    return last;
}

/* ---------------------------------------------------------------- --help */

enum { HELP_WIDTH = 80, HELP_LABEL_MAX = 18 };

static int label(const CliFlag *f, char *buf, size_t cap)
{
    const char *m = f->meta ? f->meta : "";
    return snprintf(buf, cap, "%s%s%s", f->name, *m && *m != '=' ? " " : "", m);
}

/* text from column col, wrapped at HELP_WIDTH, continuation lines at indent */
static void wrap(const char *text, int col, int indent, FILE *out)
{
    while (*text) {
        size_t n = strcspn(text, " ");
        if (col > indent && col + 1 + (int)n >= HELP_WIDTH) {
            fprintf(out, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', out);
            col++;
        }
        fwrite(text, 1, n, out);
        col += (int)n;
        text += n;
        text += strspn(text, " ");
    }
    fputc('\n', out);
}

static void print_row(const CliFlag *f, int width, FILE *out)
{
    char lab[128], text[1024];
    int n = label(f, lab, sizeof lab);
    const char *d = f->def;
    bool number = d && (strchr("0123456789-.", d[0]) != NULL);
    snprintf(text, sizeof text, "%s%s%s%s%s", f->help, d ? " (default" : "",
             d ? (number ? " " : ": ") : "", d ? d : "", d ? ")" : "");
    int pad = n + 2 <= width ? width - n : 2;
    fprintf(out, "  %s%*s", lab, pad, "");
    wrap(text, 2 + n + pad, 2 + width, out);
}

void cli_print_flags(const CliFlag *flags, FILE *out)
{
    char lab[128];
    int width = 0;
    for (const CliFlag *f = flags; f->kind != CLI_END; f++) {
        int n = f->name && f->kind != CLI_HEAD ? label(f, lab, sizeof lab) : 0;
        width = n > width && n <= HELP_LABEL_MAX ? n : width;
    }
    width += 3;
    if (flags->kind != CLI_HEAD)
        fprintf(out, "flags:\n");
    for (const CliFlag *f = flags; f->kind != CLI_END; f++) {
        if (f->kind == CLI_HEAD)
            wrap(f->help, 0, 0, out);
        else if (f->kind != CLI_REFUSE)
            print_row(f, width, out);
    }
}

/* ---------------------------------------------------------------- shared parsers */

int cli_set_fn(const char *cmd, const CliFlag *f, const char *kv, void *field)
{
    CliModelArgs *m = field;
    const char *eq = strchr(kv, '=');
    (void)cmd, (void)f;
    if (!eq || eq == kv || m->nsets == CLI_MAX_SETS || (size_t)(eq - kv) >= sizeof m->keys[0]) {
        fprintf(stderr, "gradc: error: --set expects KEY=VALUE, got '%s'\n"
                        "  hint: for example --set n_layers=2\n", kv);
        m->bad = true;
        return 1;
    }
    /* the value points into argv, which lives for the whole run */
    char *key = m->keys[m->nsets];
    memcpy(key, kv, (size_t)(eq - kv));
    key[eq - kv] = 0;
    m->sets[m->nsets].key = key;
    m->sets[m->nsets].value = eq + 1;
    m->nsets++;
    return 0;
}

int cli_bind_fn(const char *cmd, const CliFlag *f, const char *v, void *field)
{
    CliBindArgs *b = field;
    const char *eq = strchr(v, '=');
    long long x;
    (void)f;
    if (!eq || eq == v || b->n == IR_MAX_SYMS)
        return cli_usage_error(cmd, "--bind expects NAME=VALUE, got '%s'", v);
    if (!cli_int_value(eq + 1, &x) || x <= 0)
        return cli_usage_error(cmd, "--bind %s needs a positive integer value", v);
    snprintf(b->name[b->n], sizeof b->name[0], "%.*s", (int)(eq - v), v);
    b->value[b->n++] = x;
    return 0;
}

int cli_seq_fn(const char *cmd, const CliFlag *f, const char *v, void *field)
{
    CliBindArgs *b = field;
    CliFlag seq = *f;
    seq.kind = CLI_INT, seq.min = 1, seq.size = sizeof b->seq;
    b->seq_given = true;
    return take_int(cmd, &seq, v, &b->seq);
}

int cli_tokenizer_fn(const char *cmd, const CliFlag *f, const char *v, void *field)
{
    if (!rt_tok_kind_parse(v, field))
        return cli_usage_error(cmd, "%s expects gpt2 or char, got '%s'", f->name, v);
    return 0;
}

int cli_lora_scale_fn(const char *cmd, const CliFlag *f, const char *v, void *field)
{
    PassLoraScale s;
    if (!strcmp(v, "alpha/r"))
        s = PASS_LORA_ALPHA_R;
    else if (!strcmp(v, "alpha"))
        s = PASS_LORA_ALPHA;
    else
        return cli_usage_error(cmd, "%s expects alpha/r or alpha, got '%s'", f->name, v);
    memcpy(field, &s, sizeof s);
    return 0;
}
