/* fe_expr.c — the expression language of model files.
 *
 * Config values, dims, attributes and repeat counts may be written as
 * expressions such as "4*emb_dim", "emb_dim // n_heads", "1/sqrt(head_dim)"
 * or "B*T".  The grammar, Python-like in precedence:
 *
 *   sum   := prod (('+' | '-') prod)*
 *   prod  := unary (('*' | '/' | '//' | '%') unary)*
 *   unary := ('-' | '+') unary | power
 *   power := atom ('**' unary)?                 right-associative
 *   atom  := NUMBER | NAME | NAME '(' sum (',' sum)* ')' | '(' sum ')'
 *   functions: sqrt(x), min(a, b, ...), max(a, b, ...)
 *
 * It is evaluated while it is parsed (no tree).  A value is a number or,
 * where the context allows graph symbols, a symbolic dim (an IrDim
 * polynomial): + - * work on dims, / and // divide a dim exactly by a
 * constant, ** raises it to a small constant power.  Names are config keys
 * (evaluated on demand, fe_config.c) or symbols; see FeCtx.
 */
#include "fe_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIM_LIMIT 4.0e18 /* coefficient bound: well inside int64 */

typedef struct P {
    Fe *fe;
    const char *src, *s;
    FeCtx ctx;
    const char *path;
    int depth;
} P;

static bool parse_sum(P *p, FeVal *v);
static bool parse_unary(P *p, FeVal *v);

static bool fail(P *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool fail(P *p, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fe_fail(p->fe, p->path, "in expression '%.80s': %s (column %d)", p->src, msg,
                   (int)(p->s - p->src) + 1);
}

static void skip_ws(P *p)
{
    while (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')
        p->s++;
}

/* Consumes `tok` (after blanks) if it is next; "*" does not match "**". */
static bool accept(P *p, const char *tok)
{
    skip_ws(p);
    size_t n = strlen(tok);
    if (strncmp(p->s, tok, n) != 0)
        return false;
    if ((tok[0] == '*' || tok[0] == '/') && n == 1 && p->s[1] == tok[0])
        return false;
    p->s += n;
    return true;
}

double fe_dim_mag(IrDim d)
{
    double m = 0;
    for (int i = 0; i < d.n; i++)
        m += fabs((double)d.t[i].coef);
    return m;
}

/* ---------------------------------------------------------------- values */

static bool to_dim(P *p, const FeVal *v, IrDim *out)
{
    if (v->is_dim) {
        *out = v->dim;
        return true;
    }
    if (v->num != floor(v->num) || fabs(v->num) > 2147483647.0)
        return fail(p, "%g is not an integer that can be part of a dim", v->num);
    *out = ir_dim_const((int64_t)v->num);
    return true;
}

static bool as_int(P *p, const FeVal *v, const char *what, int64_t *out)
{
    if (v->is_dim || v->num != floor(v->num) || fabs(v->num) > 1e15)
        return fail(p, "%s must be a constant integer", what);
    *out = (int64_t)v->num;
    return true;
}

/* a OP b where at least one side is a symbolic dim. */
static bool dim_op(P *p, char op, FeVal *a, const FeVal *b)
{
    IrDim x, y, r;
    int64_t c = 1;
    bool ok = true;
    if (op == '+' || op == '-' || op == '*') {
        if (!to_dim(p, a, &x) || !to_dim(p, b, &y))
            return false;
        double mx = fe_dim_mag(x), my = fe_dim_mag(y);
        if ((op == '*' ? mx * my : mx + my) > DIM_LIMIT)
            return fail(p, "dim too large");
        ok = op == '+' ? ir_dim_add(x, y, &r) : op == '-' ? ir_dim_sub(x, y, &r)
                                                          : ir_dim_mul(x, y, &r);
    } else if (op == '/' || op == 'f') {
        if (!a->is_dim || !as_int(p, b, "the divisor of a symbolic dim", &c))
            return a->is_dim ? false : fail(p, "cannot divide by a symbolic dim");
        if (!ir_dim_div_const(a->dim, c, &r))
            return fail(p, "symbolic dim is not divisible by %lld", (long long)c);
    } else
        return fail(p, "operator '%s' does not work on symbolic dims", op == '%' ? "%" : "**");
    if (!ok)
        return fail(p, "dim expression has too many terms");
    a->is_dim = true;
    a->dim = r;
    return true;
}

static bool num_op(P *p, char op, FeVal *a, const FeVal *b)
{
    double x = a->num, y = b->num;
    if ((op == '/' || op == 'f' || op == '%') && y == 0)
        return fail(p, "division by zero");
    switch (op) {
    case '+': x += y; break;
    case '-': x -= y; break;
    case '*': x *= y; break;
    case '/': x /= y; break;
    case 'f': x = floor(x / y); break;
    case '%': x = x - y * floor(x / y); break;
    default: x = pow(x, y); break;
    }
    if (!isfinite(x))
        return fail(p, "the result is not a finite number");
    a->num = x;
    return true;
}

/* a ** b with a symbolic: repeated multiplication by a small power. */
static bool dim_pow(P *p, FeVal *a, const FeVal *b)
{
    int64_t e = 0;
    if (!as_int(p, b, "the exponent of a symbolic dim", &e))
        return false;
    if (e < 0 || e > 8)
        return fail(p, "a symbolic dim can only be raised to a power 0..8");
    FeVal base = *a;
    a->is_dim = false;
    a->num = 1;
    for (int64_t i = 0; i < e; i++)
        if (!dim_op(p, '*', a, &base))
            return false;
    return true;
}

static bool apply(P *p, char op, FeVal *a, const FeVal *b)
{
    if (!a->is_dim && !b->is_dim)
        return num_op(p, op, a, b);
    if (op == '^' && a->is_dim)
        return dim_pow(p, a, b);
    return dim_op(p, op, a, b);
}

/* ---------------------------------------------------------------- names */

static bool undefined(P *p, const char *name)
{
    Fe *fe = p->fe;
    FeNear n = fe_near(name);
    for (int i = 0; i < fe->nkey; i++)
        fe_near_add(&n, fe->key[i].key);
    for (int i = 0; fe->g && p->ctx != FE_NUM && i < fe->g->nsym; i++)
        fe_near_add(&n, fe->g->sym[i]);
    if (!strcmp(p->src, name))
        fe_fail(fe, p->path, "undefined name '%s'", name);
    else
        fail(p, "undefined name '%s'", name);
    fe_hint_near(fe, &n);
    return false;
}

/* A config key's value, or a symbol where the context allows symbols. */
static bool name_value(P *p, const char *name, FeVal *v)
{
    Fe *fe = p->fe;
    int k = fe_config_find(fe, name);
    memset(v, 0, sizeof *v);
    if (k >= 0)
        return fe_config_value(fe, k, &v->num);
    int sym = fe->g ? ir_graph_find_sym(fe->g, name) : -1;
    if (sym < 0 && p->ctx == FE_INPUT && fe->g) {
        sym = ir_graph_sym(fe->g, name);
        if (sym < 0)
            return fail(p, "too many symbols: a graph may use at most %d", IR_MAX_SYMS);
    }
    if (sym >= 0 && p->ctx == FE_NUM)
        return fail(p, "'%s' is a symbolic dim; a constant number is needed here", name);
    if (sym < 0)
        return undefined(p, name);
    v->is_dim = true;
    v->dim = ir_dim_sym(sym);
    return true;
}

static bool parse_name(P *p, char *buf, size_t cap)
{
    size_t n = 0;
    while (*p->s == '_' || (*p->s >= 'a' && *p->s <= 'z') || (*p->s >= 'A' && *p->s <= 'Z') ||
           (*p->s >= '0' && *p->s <= '9')) {
        if (n + 1 >= cap)
            return fail(p, "name too long");
        buf[n++] = *p->s++;
    }
    buf[n] = 0;
    return true;
}

/* sqrt(x), min(a, ...), max(a, ...) on numbers. */
static bool parse_call(P *p, const char *fn, FeVal *v)
{
    int nargs = 0;
    FeVal a;
    do {
        if (!parse_sum(p, &a))
            return false;
        if (a.is_dim)
            return fail(p, "%s() does not take symbolic dims", fn);
        if (nargs++ == 0)
            *v = a;
        else if (!strcmp(fn, "min") ? a.num < v->num : a.num > v->num)
            v->num = a.num;
    } while (accept(p, ","));
    if (!accept(p, ")"))
        return fail(p, "expected ')' after the arguments of %s()", fn);
    if (!strcmp(fn, "sqrt") && (nargs != 1 || v->num < 0))
        return fail(p, "sqrt() takes one argument that is not negative");
    if (!strcmp(fn, "sqrt"))
        v->num = sqrt(v->num);
    return true;
}

static bool parse_number(P *p, FeVal *v)
{
    const char *s = p->s;
    while ((*s >= '0' && *s <= '9') || *s == '.')
        s++;
    if ((*s == 'e' || *s == 'E') && (s[1] == '-' || s[1] == '+' || (s[1] >= '0' && s[1] <= '9'))) {
        s += 2;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    char buf[64], *end;
    if (s - p->s >= (int)sizeof buf)
        return fail(p, "number too long");
    memcpy(buf, p->s, s - p->s);
    buf[s - p->s] = 0;
    memset(v, 0, sizeof *v);
    v->num = strtod(buf, &end);
    if (*end || !isfinite(v->num))
        return fail(p, "malformed number '%s'", buf);
    p->s = s;
    return true;
}

static bool parse_atom(P *p, FeVal *v)
{
    skip_ws(p);
    char c = *p->s, name[64];
    if ((c >= '0' && c <= '9') || c == '.')
        return parse_number(p, v);
    if (accept(p, "(")) {
        if (!parse_sum(p, v))
            return false;
        return accept(p, ")") ? true : fail(p, "expected ')'");
    }
    if (!c)
        return fail(p, "expected a number, a name or '('");
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
        return fail(p, "unexpected '%c'", c);
    if (!parse_name(p, name, sizeof name))
        return false;
    if (!accept(p, "("))
        return name_value(p, name, v);
    if (strcmp(name, "sqrt") && strcmp(name, "min") && strcmp(name, "max"))
        return fail(p, "unknown function '%s' (there are sqrt, min and max)", name);
    return parse_call(p, name, v);
}

static bool parse_power(P *p, FeVal *v)
{
    if (!parse_atom(p, v))
        return false;
    if (!accept(p, "**"))
        return true;
    FeVal e;
    return parse_unary(p, &e) && apply(p, '^', v, &e);
}

static bool parse_unary(P *p, FeVal *v)
{
    if (++p->depth > FE_MAX_EXPR_DEPTH)
        return fail(p, "expression nested too deeply");
    bool ok;
    if (accept(p, "-")) {
        FeVal zero = {0};
        ok = parse_unary(p, v);
        if (ok) {
            FeVal x = *v;
            *v = zero;
            ok = apply(p, '-', v, &x);
        }
    } else if (accept(p, "+"))
        ok = parse_unary(p, v);
    else
        ok = parse_power(p, v);
    p->depth--;
    return ok;
}

static bool parse_prod(P *p, FeVal *v)
{
    if (!parse_unary(p, v))
        return false;
    for (;;) {
        char op = accept(p, "//") ? 'f' : accept(p, "*") ? '*' : accept(p, "/") ? '/'
                                          : accept(p, "%") ? '%' : 0;
        FeVal b;
        if (!op)
            return true;
        if (!parse_unary(p, &b) || !apply(p, op, v, &b))
            return false;
    }
}

static bool parse_sum(P *p, FeVal *v)
{
    if (++p->depth > FE_MAX_EXPR_DEPTH)
        return fail(p, "expression nested too deeply");
    bool ok = parse_prod(p, v);
    while (ok) {
        char op = accept(p, "+") ? '+' : accept(p, "-") ? '-' : 0;
        FeVal b;
        if (!op)
            break;
        ok = parse_prod(p, &b) && apply(p, op, v, &b);
    }
    p->depth--;
    return ok;
}

bool fe_eval(Fe *fe, const char *src, FeCtx ctx, const char *path, FeVal *out)
{
    P p = {fe, src, src, ctx, path, 0};
    if (!parse_sum(&p, out))
        return false;
    skip_ws(&p);
    if (*p.s)
        return fail(&p, "unexpected '%c'", *p.s);
    return true;
}
