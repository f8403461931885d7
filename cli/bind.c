/* bind.c — the values of a graph's symbols, as every command binds them.
 *
 * B comes from --batch, T from --seq, any symbol from --bind NAME=V (the
 * rows of CLI_FLAGS_BIND); an unbound symbol is an error that names it and
 * the flag.  A default T is capped at the config's context_length and at
 * the rows of a table gathered by positions (an iota over T); a value given
 * past either is an error, which names the table (ir_index_check_binding).
 * A binding past what gradc's 64-bit counts hold is refused with its
 * figures.  run, verify, bench, plan, dump, check, gradcheck and train
 * (before it starts, cli_check_seq) bind through here.
 */
#include "cli.h"
#include "ir/cost.h"

#include <stdio.h>
#include <string.h>

CliExecArgs cli_exec_args_default(void)
{
    return (CliExecArgs){.bind = {.batch = 2, .seq = 64}, .seed = 42};
}

/* ---------------------------------------------------------------- binding */

bool cli_config_int(const FeModel *m, const char *key, int64_t *v)
{
    double d;
    if (!m || !fe_config(m, key, &d) || d < 1)
        return false;
    *v = (int64_t)d;
    return true;
}

/* A symbol at its default: no larger than the rows of a table a gather
 * reads with an iota over it (and T no larger than context_length). */
static int64_t cap_default(const IrGraph *g, int s, const FeModel *m, int64_t v)
{
    int64_t ctx, lim = ir_index_sym_limit(g, s, NULL);
    if (!strcmp(g->sym[s], "T") && cli_config_int(m, "context_length", &ctx) && v > ctx)
        v = ctx;
    return lim > 0 && v > lim ? lim : v;
}

static bool bind_seq(const FeModel *m, const CliBindArgs *b, int64_t *T, IrError *err)
{
    int64_t ctx;
    *T = b->seq;
    if (!b->seq_given || !cli_config_int(m, "context_length", &ctx) || *T <= ctx)
        return true;
    ir_error(err, "--seq %lld is longer than the model's context_length (%lld)", b->seq,
             (long long)ctx);
    ir_error_hint(err, "use --seq %lld or less, or --set context_length=%lld", (long long)ctx,
                  b->seq);
    return false;
}

static bool bind_one(const IrGraph *g, int s, const FeModel *m, const CliBindArgs *b,
                     int64_t *binding, IrError *err)
{
    for (int k = 0; k < b->n; k++)
        if (!strcmp(b->name[k], g->sym[s]))
            return binding[s] = b->value[k], true;
    if (!strcmp(g->sym[s], "B"))
        return binding[s] = b->batch, true;
    bool seq = !strcmp(g->sym[s], "T") || b->others_seq;
    if (seq && !bind_seq(m, b, &binding[s], err))
        return false;
    if (seq && !b->seq_given)
        binding[s] = cap_default(g, s, m, binding[s]);
    if (seq)
        return true;
    ir_error(err, "symbol '%s' of the graph has no value", g->sym[s]);
    ir_error_hint(err, "give it one with --bind %s=VALUE (B and T come from --batch and --seq)",
                  g->sym[s]);
    return false;
}

static bool check_binds(const IrGraph *g, const CliBindArgs *b, IrError *err)
{
    for (int k = 0; k < b->n; k++)
        if (ir_graph_find_sym(g, b->name[k]) < 0) {
            ir_error(err, "--bind %s: the graph has no symbol '%s'", b->name[k], b->name[k]);
            ir_error_hint(err, "the graph's symbols are the open dims of its inputs (B, T, ...)");
            return false;
        }
    return true;
}

/* A binding past what gradc's 64-bit counts hold is refused with its
 * figures, rather than printed saturated (check said "ok" at 2^61) or
 * wrapped around (plan printed negative bytes).  The limits leave room for
 * a train step, which holds about 14 times the forward's values and 3
 * times its FLOPs: 2^56 bytes of values and 2^60 FLOPs in one forward. */
static bool check_sizes(const IrGraph *g, const int64_t *binding, IrError *err)
{
    double bytes = ir_cost_activation_bytes_f(g, binding), flops = ir_cost_flops_f(g, binding);
    if (bytes < 0x1p56 && flops < 0x1p60)
        return true;
    char at[300] = "";
    for (int s = 0, k = 0; s < g->nsym && k < 260; s++)
        k += snprintf(at + k, sizeof at - (size_t)k, "%s%s=%lld", s ? " " : "", g->sym[s],
                      (long long)binding[s]);
    ir_error(err, "at %s one forward holds %.3g bytes of values and takes %.3g FLOPs: more "
             "than gradc counts (2^56 bytes, 2^60 FLOPs)", at, bytes, flops);
    ir_error_hint(err, "use a smaller --batch, --seq or --bind value");
    return false;
}

/* No gather by position past its table; the hint names the flag to lower. */
static bool check_tables(const IrGraph *g, const int64_t *binding, IrError *err)
{
    int s;
    int64_t max;
    if (ir_index_check_binding(g, binding, &s, &max, err))
        return true;
    if (s >= 0 && (!strcmp(g->sym[s], "T") || !strcmp(g->sym[s], "B")))
        ir_error_hint(err, "use --%s %lld or less, or give the table more rows in the model",
                      g->sym[s][0] == 'T' ? "seq" : "batch", (long long)max);
    else if (s >= 0)
        ir_error_hint(err, "use --bind %s=%lld or less, or give the table more rows in the model",
                      g->sym[s], (long long)max);
    return false;
}

bool cli_bind(const IrGraph *g, const FeModel *m, const CliBindArgs *b, int64_t *binding,
              IrError *err)
{
    memset(binding, 0, sizeof(int64_t) * IR_MAX_SYMS);
    bool ok = check_binds(g, b, err);
    for (int s = 0; ok && s < g->nsym; s++)
        ok = bind_one(g, s, m, b, binding, err);
    ok = ok && check_tables(g, binding, err) && check_sizes(g, binding, err);
    if (!ok && m && m->path)
        ir_error_where(err, "%s", m->path);
    return ok;
}

int cli_check_seq(const char *path, const CliModelArgs *m, long long batch, long long seq)
{
    IrError err = {0};
    FeModel *model = NULL;
    IrGraph *g = cli_load(path, m, &model, &err);
    int64_t ctx = 0, binding[IR_MAX_SYMS];
    CliBindArgs b = {.batch = batch, .seq = seq, .seq_given = true};
    bool bindable = g && (seq > 0 || cli_config_int(model, "context_length", &ctx));
    for (int s = 0; bindable && s < g->nsym; s++)
        bindable = !strcmp(g->sym[s], "B") || !strcmp(g->sym[s], "T");
    if (bindable && seq <= 0)
        b.seq = ctx;
    /* what train cannot bind, or cannot load, it reports itself */
    bool ok = !bindable || cli_bind(g, model, &b, binding, &err);
    if (g)
        cli_unload(g, model);
    return ok ? -1 : cli_fail(&err);
}

/* "B=2 T=64" */
void cli_print_binding(const IrGraph *g, const int64_t *binding, FILE *f)
{
    for (int s = 0; s < g->nsym; s++)
        fprintf(f, "%s%s=%lld", s ? " " : "", g->sym[s], (long long)binding[s]);
    if (!g->nsym)
        fprintf(f, "(no symbols)");
}
