/* cmd_plot.c — `gradc plot`: loss curves from CSV logs as one SVG.
 *
 * Each CSV is a log with a header naming its columns, as `gradc train`
 * writes (step,epoch,tokens_seen,train_loss,val_loss,lr,elapsed_s) and as
 * the PyTorch reference curves are (step,epoch,tokens_seen,train_loss,
 * val_loss).  Columns are found by name, so order and extra columns do not
 * matter; tokens_seen and train_loss are required, val_loss is drawn when
 * present (an empty field is a point not measured).  Every file gives two
 * series, train solid and val dashed, in a color pair of its own, labelled
 * with --label or the file's name.  The drawing is runtime/rt_plot.c's, the
 * same as the plot `gradc train` writes.
 */
#include "cli.h"
#include "runtime/rt_train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: gradc plot LOG.csv [LOG.csv ...] -o OUT.svg [--label NAME ...] [--title TEXT]\n"
    "\n"
    "Draws the train and val loss of one or more CSV logs against tokens seen, in\n"
    "one SVG: a gradc run beside PyTorch's, or two gradc runs.  A log needs a\n"
    "header with the columns tokens_seen and train_loss, and may have val_loss (an\n"
    "empty field is skipped): `gradc train` writes such logs (log.csv), and the\n"
    "reference curves of the book's chapter 5 run have the same columns.\n"
    "\n";

/* --help prints the flags from the table here, then: */
static const char tail[] =
    "example:\n"
    "  gradc plot runs/book-ch5/log.csv ../shared/reference/book_ch5_seed123.csv \\\n"
    "      --label gradc --label 'PyTorch (seed 123)' -o ch5.svg\n"
    "\n"
    "exit codes: 0 success, 1 user error\n";

#define PLOT_MAX_LOGS 4
#define PLOT_MAX_ROWS 100000

typedef struct Log {
    const char *path, *label;
    double *x, *train, *val;
    int n;
} Log;

typedef struct PlotArgs {
    Log log[PLOT_MAX_LOGS];
    int nlog, nlabel;
    const char *labels[PLOT_MAX_LOGS];
    const char *out, *title;
} PlotArgs;

static int take_log(const char *cmd, const char *arg, void *args)
{
    PlotArgs *a = args;
    if (a->nlog == PLOT_MAX_LOGS)
        return cli_usage_error(cmd, "at most %d logs in one plot", PLOT_MAX_LOGS);
    a->log[a->nlog++].path = arg;
    return 0;
}

static const CliFlag flags[] = {
    {"-o", CLI_STR, CLI_AT(PlotArgs, out), .meta = "OUT.svg",
     .help = "where the plot goes (written atomically)"},
    {"--label", CLI_LIST, CLI_AT(PlotArgs, labels), .count = offsetof(PlotArgs, nlabel),
     .meta = "NAME", .def = "the file name",
     .help = "legend name of the next log without one, in order; repeatable"},
    {"--title", CLI_STR, CLI_AT(PlotArgs, title), .meta = "TEXT",
     .def = "the labels joined by ' vs '", .help = "the title"},
    {0}};

const CliSpec cmd_plot_spec = {"plot", usage, flags, tail, .pos = take_log};

/* ---------------------------------------------------------------- reading */

static int column(char *header, const char *name)
{
    int k = 0;
    for (char *tok = strtok(header, ",\r\n"); tok; tok = strtok(NULL, ",\r\n"), k++)
        if (!strcmp(tok, name))
            return k;
    return -1;
}

/* Field k of a CSV line (no quoting: logs hold numbers): NAN when empty. */
static bool field(const char *line, int k, double *v)
{
    const char *s = line;
    for (int i = 0; i < k && s; i++)
        s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL;
    if (!s)
        return false;
    if (*s == ',' || *s == '\n' || *s == '\r' || !*s)
        return *v = NAN, true;
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end != s && !errno && (*end == ',' || *end == '\n' || *end == '\r' || !*end);
}

static bool find_columns(const char *path, char *header, int col[3], IrError *err)
{
    static const char *const names[3] = {"tokens_seen", "train_loss", "val_loss"};
    for (int c = 0; c < 3; c++) {
        char copy[4096];
        snprintf(copy, sizeof copy, "%s", header);
        col[c] = column(copy, names[c]);
        if (col[c] < 0 && c < 2) {
            ir_error(err, "%s:1: the header has no column '%s'", path, names[c]);
            ir_error_hint(err, "a log needs the columns tokens_seen and train_loss (as gradc "
                          "train's log.csv has)");
            return false;
        }
    }
    return true;
}

static bool add_row(Log *l, const char *line, int lineno, const int col[3], IrError *err)
{
    double x, tr, va = NAN;
    if (!field(line, col[0], &x) || !field(line, col[1], &tr) ||
        (col[2] >= 0 && !field(line, col[2], &va)) || !isfinite(x)) {
        ir_error(err, "%s:%d: not a row of numbers: %.60s", l->path, lineno, line);
        ir_error_hint(err, "every row needs a number under tokens_seen and train_loss");
        return false;
    }
    l->x[l->n] = x, l->train[l->n] = tr, l->val[l->n] = va;
    l->n++;
    return true;
}

static bool read_log(Log *l, IrError *err)
{
    FILE *f = fopen(l->path, "r");
    if (!f) {
        ir_error(err, "cannot read '%s': %s", l->path, strerror(errno));
        return false;
    }
    char line[4096];
    int col[3], lineno = 1;
    bool ok = fgets(line, sizeof line, f) != NULL;
    if (!ok)
        ir_error(err, "%s: empty file, expected a CSV header", l->path);
    ok = ok && find_columns(l->path, line, col, err);
    l->x = malloc(sizeof(double) * 3 * PLOT_MAX_ROWS);
    l->train = l->x + PLOT_MAX_ROWS, l->val = l->x + 2 * PLOT_MAX_ROWS;
    while (ok && fgets(line, sizeof line, f) && ++lineno) {
        if (line[0] == '\n' || line[0] == '\r')
            continue;
        if (l->n == PLOT_MAX_ROWS) {
            ir_error(err, "%s: more than %d rows", l->path, PLOT_MAX_ROWS);
            ok = false;
        }
        ok = ok && add_row(l, line, lineno, col, err);
    }
    fclose(f);
    if (ok && l->n == 0) {
        ir_error(err, "%s: no rows after the header", l->path);
        ok = false;
    }
    return ok;
}

/* ---------------------------------------------------------------- drawing */

static const char *const colors[PLOT_MAX_LOGS][2] = {
    {"#1f77b4", "#ff7f0e"}, {"#7f7f7f", "#2ca02c"}, {"#9467bd", "#d62728"}, {"#8c564b", "#17becf"}};

static bool any_finite(const double *v, int n)
{
    for (int i = 0; i < n; i++)
        if (isfinite(v[i]))
            return true;
    return false;
}

static bool draw(PlotArgs *a, IrError *err)
{
    RtSeries s[2 * PLOT_MAX_LOGS];
    char names[2 * PLOT_MAX_LOGS][160], title[400] = "";
    int ns = 0;
    for (int k = 0; k < a->nlog; k++) {
        const Log *l = &a->log[k];
        snprintf(names[ns], sizeof names[ns], "%s train", l->label);
        s[ns] = (RtSeries){names[ns], colors[k][0], l->x, l->train, l->n, false};
        ns++;
        if (any_finite(l->val, l->n)) {
            snprintf(names[ns], sizeof names[ns], "%s val", l->label);
            s[ns] = (RtSeries){names[ns], colors[k][1], l->x, l->val, l->n, true};
            ns++;
        }
        size_t t = strlen(title);
        snprintf(title + t, sizeof title - t, "%s%s", k ? " vs " : "", l->label);
    }
    RtPlot p = {a->title ? a->title : title, "Tokens seen", "Loss", s, ns};
    return rt_plot_svg(&p, a->out, err);
}

/* ---------------------------------------------------------------- flags */

static int parse_args(int argc, char **argv, PlotArgs *a)
{
    int r = cli_parse(&cmd_plot_spec, argc, argv, a);
    if (r >= 0)
        return r;
    if (!a->nlog)
        return cli_usage_error("plot", "no log: name one or more CSV files");
    if (!a->out)
        return cli_usage_error("plot", "no output: pass -o OUT.svg");
    if (a->nlabel > a->nlog)
        return cli_usage_error("plot", "%d labels for %d logs", a->nlabel, a->nlog);
    for (int k = 0; k < a->nlog; k++) {
        const char *slash = strrchr(a->log[k].path, '/');
        a->log[k].label = k < a->nlabel ? a->labels[k] : slash ? slash + 1 : a->log[k].path;
    }
    return -1;
}

int cmd_plot(int argc, char **argv)
{
    PlotArgs a = {0};
    int r = parse_args(argc, argv, &a);
    if (r >= 0)
        return r;
    IrError err = {0};
    bool ok = true;
    for (int k = 0; k < a.nlog && ok; k++)
        ok = read_log(&a.log[k], &err);
    ok = ok && draw(&a, &err);
    for (int k = 0; k < a.nlog; k++)
        free(a.log[k].x);
    if (!ok)
        return cli_fail(&err);
    printf("wrote %s (%d log%s)\n", a.out, a.nlog, a.nlog > 1 ? "s" : "");
    return 0;
}
