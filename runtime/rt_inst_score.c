/* rt_inst_score.c — objective scores of instruction responses
 * (rt_inst_gen.h): exact match, SQuAD's token F1, and the model's loss on
 * the reference responses.
 *
 * The text scores follow SQuAD's evaluation script in what they compute
 * (normalize: lower case, drop punctuation, drop articles, collapse white
 * space; F1 over the multiset of common words); the words are ASCII-folded
 * only (bytes >= 0x80 are kept as they are).
 *
 * The loss is the eval forward of the fine-tuning loop (rt_graph_eval:
 * dropout off, mean cross-entropy over the targets that are not -100) at
 * B = 1 on the row that rt_inst_row builds with the prompt masked: exactly
 * the terms that --mask-prompt trains, summed back by their count.
 */
#include "runtime/rt_inst_gen.h"

#include "passes/pass.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- text */

static bool is_article(const char *w, size_t n)
{
    return (n == 1 && w[0] == 'a') || (n == 2 && !memcmp(w, "an", 2)) ||
           (n == 3 && !memcmp(w, "the", 3));
}

char *rt_score_normalize(const char *s)
{
    size_t len = strlen(s), n = 0;
    char *low = malloc(len + 1), *out = malloc(len + 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && ispunct(c))
            continue;
        low[n++] = (char)(c < 0x80 ? tolower(c) : c);
    }
    low[n] = 0;
    size_t m = 0;
    for (size_t i = 0; i < n;) {   /* words, articles dropped, one space between */
        while (i < n && isspace((unsigned char)low[i]))
            i++;
        size_t j = i;
        while (j < n && !isspace((unsigned char)low[j]))
            j++;
        if (j > i && !is_article(low + i, j - i)) {
            if (m)
                out[m++] = ' ';
            memcpy(out + m, low + i, j - i);
            m += j - i;
        }
        i = j;
    }
    out[m] = 0;
    free(low);
    return out;
}

/* s without leading and trailing white space, as [*b, *e). */
static void strip(const char *s, const char **b, const char **e)
{
    *b = s;
    *e = s + strlen(s);
    while (*b < *e && isspace((unsigned char)**b))
        (*b)++;
    while (*e > *b && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

int rt_score_exact(const char *response, const char *output, bool norm)
{
    if (norm) {
        char *a = rt_score_normalize(response), *b = rt_score_normalize(output);
        int r = !strcmp(a, b);
        free(a);
        free(b);
        return r;
    }
    const char *ab, *ae, *bb, *be;
    strip(response, &ab, &ae);
    strip(output, &bb, &be);
    return ae - ab == be - bb && !memcmp(ab, bb, (size_t)(ae - ab));
}

/* The words of a normalized text (split at its single spaces, in place). */
static int words(char *s, char ***w)
{
    int n = 0, cap = 8;
    *w = malloc(sizeof **w * (size_t)cap);
    for (char *p = s; *p;) {
        if (n == cap)
            *w = realloc(*w, sizeof **w * (size_t)(cap *= 2));
        (*w)[n++] = p;
        char *sp = strchr(p, ' ');
        if (!sp)
            break;
        *sp = 0;
        p = sp + 1;
    }
    return n;
}

double rt_score_f1(const char *response, const char *output)
{
    char *a = rt_score_normalize(response), *b = rt_score_normalize(output), **wa, **wb;
    int na = words(a, &wa), nb = words(b, &wb), common = 0;
    bool *used = calloc((size_t)nb + 1, 1);
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            if (!used[j] && !strcmp(wa[i], wb[j])) {
                used[j] = true;
                common++;
                break;
            }
    double f1 = na == 0 || nb == 0 ? (double)(na == nb)
                : common == 0     ? 0
                                  : 2.0 * common / (double)(na + nb);
    free(used);
    free(wa);
    free(wb);
    free(a);
    free(b);
    return f1;
}

/* ---------------------------------------------------------------- the loss */

struct RtScorer {
    IrGraph *g;
    RtExec *ex;
    int64_t T;
    int32_t *x, *y;
};

static bool compile(RtScorer *s, int threads, IrError *err)
{
    int64_t b[IR_MAX_SYMS] = {0};
    for (int k = 0; k < s->g->nsym; k++) {
        b[k] = !strcmp(s->g->sym[k], "B") ? 1 : !strcmp(s->g->sym[k], "T") ? s->T : 0;
        if (!b[k]) {
            ir_error(err, "model '%s' has a symbol '%s' that scoring cannot bind",
                     s->g->name ? s->g->name : "?", s->g->sym[k]);
            ir_error_hint(err, "gradc score takes a GPT's checkpoint (symbols B and T)");
            return false;
        }
    }
    PassCtx ctx = pass_ctx_default(err);
    ctx.binding = b;
    RtExecOptions eo = {.nthreads = threads};
    return pass_run_compile(s->g, NULL, false, &ctx) &&
           (s->ex = rt_exec_new(s->g, b, &eo, err)) != NULL;
}

RtScorer *rt_scorer_new(const IrGraph *model, const RtCkpt *c, int64_t T, int threads,
                        IrError *err)
{
    RtScorer *s = calloc(1, sizeof *s);
    s->T = T;
    s->x = calloc((size_t)T, sizeof *s->x);
    s->y = calloc((size_t)T, sizeof *s->y);
    if (!(s->g = rt_graph_eval(model, false, err)) || !compile(s, threads, err) ||
        !rt_exec_params_from_ckpt(s->ex, s->g, c, err)) {
        rt_scorer_free(s);
        return NULL;
    }
    return s;
}

void rt_scorer_free(RtScorer *s)
{
    if (!s)
        return;
    rt_exec_free(s->ex);
    ir_graph_free(s->g);
    free(s->x);
    free(s->y);
    free(s);
}

bool rt_scorer_entry(RtScorer *s, RtTokenizer *tok, const RtInstEntry *e, RtPromptStyle style,
                     double *sum, int64_t *count, IrError *err)
{
    RtInstExample ex = {0};
    if (!rt_inst_encode(tok, e, style, &ex, err))
        return false;
    int64_t n = ex.n < s->T ? ex.n : s->T;
    rt_inst_row(ex.ids, n, ex.prompt_n, true, rt_tokenizer_eot(tok), s->T, s->x, s->y);
    free(ex.ids);
    int64_t k = 0;
    for (int64_t t = 0; t < s->T; t++)
        k += s->y[t] != RT_IGNORE_INDEX;
    *sum = 0;
    *count = k;
    if (k == 0)
        return true;
    const IrNode *in = rt_graph_token_input(s->g);
    bool ok = in && rt_exec_set_input(s->ex, in->name, s->x, s->T * 4, err) &&
              rt_exec_set_input(s->ex, "targets", s->y, s->T * 4, err) &&
              rt_exec_run(s->ex, err);
    if (ok)
        *sum = (double)*(const float *)rt_exec_output(s->ex, "loss", NULL) * (double)k;
    return ok;
}
