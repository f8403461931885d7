/* dim.c — symbolic dims as canonical polynomials.
 *
 * A dim is a sum of at most IR_MAX_TERMS terms coef * S0^e0 * S1^e1 ...
 * over the graph's symbols.  Canonical form: like terms merged, zero terms
 * dropped, terms sorted by total degree (highest first) and then by their
 * exponent vectors, unused bytes zero.  Then equality is a term-by-term
 * compare, and printing is deterministic: "B*T", "4*T+1", "768".
 * The dims of GPT-sized models need products (B*T) and small sums (a KV
 * cache's T+1); division is exact division by a constant (D/H with D known).
 */
#include "ir.h"

#include <string.h>

static int term_degree(const IrTerm *t)
{
    int d = 0;
    for (int i = 0; i < IR_MAX_SYMS; i++)
        d += t->exp[i];
    return d;
}

/* Orders terms: higher degree first, then larger exponents of earlier syms. */
static int term_cmp(const IrTerm *a, const IrTerm *b)
{
    int da = term_degree(a), db = term_degree(b);
    if (da != db)
        return db - da;
    return -memcmp(a->exp, b->exp, IR_MAX_SYMS);
}

/* Merges like terms, drops zeros and sorts; false if too many terms. */
static bool dim_canon(IrTerm *t, int n, IrDim *out)
{
    IrTerm merged[2 * IR_MAX_TERMS * IR_MAX_TERMS];
    int m = 0;
    for (int i = 0; i < n; i++) {
        int j = 0;
        while (j < m && memcmp(merged[j].exp, t[i].exp, IR_MAX_SYMS) != 0)
            j++;
        if (j == m)
            merged[m++] = t[i];
        else if (__builtin_add_overflow(merged[j].coef, t[i].coef, &merged[j].coef))
            return false;
    }
    memset(out, 0, sizeof *out);
    for (int i = 0; i < m; i++) {
        if (merged[i].coef == 0)
            continue;
        if (out->n == IR_MAX_TERMS)
            return false;
        int k = out->n++;
        while (k > 0 && term_cmp(&merged[i], &out->t[k - 1]) < 0) {
            out->t[k] = out->t[k - 1];
            k--;
        }
        out->t[k] = merged[i];
    }
    return true;
}

IrDim ir_dim_const(int64_t v)
{
    IrDim d;
    memset(&d, 0, sizeof d);
    if (v != 0) {
        d.n = 1;
        d.t[0].coef = v;
    }
    return d;
}

IrDim ir_dim_sym(int sym)
{
    IR_ASSERT(sym >= 0 && sym < IR_MAX_SYMS);
    IrDim d = ir_dim_const(1);
    d.t[0].exp[sym] = 1;
    return d;
}

/* add, sub, mul and div_const return false on coefficient overflow too. */
bool ir_dim_add(IrDim a, IrDim b, IrDim *out)
{
    IrTerm t[2 * IR_MAX_TERMS];
    memcpy(t, a.t, a.n * sizeof(IrTerm));
    memcpy(t + a.n, b.t, b.n * sizeof(IrTerm));
    return dim_canon(t, a.n + b.n, out);
}

bool ir_dim_sub(IrDim a, IrDim b, IrDim *out)
{
    for (int i = 0; i < b.n; i++)
        if (__builtin_sub_overflow((int64_t)0, b.t[i].coef, &b.t[i].coef))
            return false;
    return ir_dim_add(a, b, out);
}

bool ir_dim_mul(IrDim a, IrDim b, IrDim *out)
{
    IrTerm t[IR_MAX_TERMS * IR_MAX_TERMS];
    int n = 0;
    for (int i = 0; i < a.n; i++)
        for (int j = 0; j < b.n; j++, n++) {
            if (__builtin_mul_overflow(a.t[i].coef, b.t[j].coef, &t[n].coef))
                return false;
            for (int s = 0; s < IR_MAX_SYMS; s++) {
                int e = a.t[i].exp[s] + b.t[j].exp[s];
                if (e > 255)
                    return false;
                t[n].exp[s] = (uint8_t)e;
            }
        }
    return dim_canon(t, n, out);
}

bool ir_dim_div_const(IrDim a, int64_t c, IrDim *out)
{
    if (c == 0)
        return false;
    for (int i = 0; i < a.n; i++)
        if ((c == -1 && a.t[i].coef == INT64_MIN) || a.t[i].coef % c != 0)
            return false;
    for (int i = 0; i < a.n; i++)
        a.t[i].coef /= c;
    *out = a;
    return true;
}

bool ir_dim_eq(IrDim a, IrDim b)
{
    if (a.n != b.n)
        return false;
    for (int i = 0; i < a.n; i++)
        if (a.t[i].coef != b.t[i].coef || memcmp(a.t[i].exp, b.t[i].exp, IR_MAX_SYMS) != 0)
            return false;
    return true;
}

bool ir_dim_is_const(IrDim a, int64_t *v)
{
    if (a.n == 0) {
        if (v)
            *v = 0;
        return true;
    }
    if (a.n != 1 || term_degree(&a.t[0]) != 0)
        return false;
    if (v)
        *v = a.t[0].coef;
    return true;
}

bool ir_dim_is_one(IrDim a)
{
    int64_t v;
    return ir_dim_is_const(a, &v) && v == 1;
}

int64_t ir_dim_eval(IrDim a, const int64_t *binding)
{
    int64_t sum = 0;
    for (int i = 0; i < a.n; i++) {
        int64_t v = a.t[i].coef;
        for (int s = 0; s < IR_MAX_SYMS; s++)
            for (int e = 0; e < a.t[i].exp[s]; e++)
                v *= binding[s];
        sum += v;
    }
    return sum;
}

/* Appends one term, e.g. "4*B*T" or "T^2"; `first` omits the sign. */
static int term_str(const IrTerm *t, bool first, const char *const *syms, char *buf, size_t cap)
{
    int64_t c = t->coef;
    int len = 0;
    if (!first)
        len += snprintf(buf + len, cap > (size_t)len ? cap - len : 0, c < 0 ? "-" : "+");
    else if (c < 0)
        len += snprintf(buf + len, cap > (size_t)len ? cap - len : 0, "-");
    uint64_t mag = c < 0 ? -(uint64_t)c : (uint64_t)c;
    bool wrote = false;
    if (mag != 1 || term_degree(t) == 0) {
        len += snprintf(buf + len, cap > (size_t)len ? cap - len : 0, "%llu",
                        (unsigned long long)mag);
        wrote = true;
    }
    for (int s = 0; s < IR_MAX_SYMS; s++)
        for (int e = 0; e < t->exp[s]; e++) {
            len += snprintf(buf + len, cap > (size_t)len ? cap - len : 0, "%s%s",
                            wrote ? "*" : "", syms && syms[s] ? syms[s] : "?");
            wrote = true;
        }
    return len;
}

int ir_dim_str(IrDim a, const char *const *syms, char *buf, size_t cap)
{
    if (a.n == 0)
        return snprintf(buf, cap, "0");
    int len = 0;
    if (cap)
        buf[0] = 0;
    for (int i = 0; i < a.n; i++)
        len += term_str(&a.t[i], i == 0, syms, buf + len, cap > (size_t)len ? cap - len : 0);
    return len;
}

IrShape ir_shape_of(int rank, const IrDim *dims)
{
    IR_ASSERT(rank >= 0 && rank <= IR_MAX_RANK);
    IrShape s;
    memset(&s, 0, sizeof s);
    s.rank = (uint8_t)rank;
    for (int i = 0; i < rank; i++)
        s.d[i] = dims[i];
    return s;
}

IrShape ir_shape_ints(int rank, const int64_t *dims)
{
    IrDim d[IR_MAX_RANK];
    IR_ASSERT(rank >= 0 && rank <= IR_MAX_RANK);
    for (int i = 0; i < rank; i++)
        d[i] = ir_dim_const(dims[i]);
    return ir_shape_of(rank, d);
}

bool ir_shape_eq(const IrShape *a, const IrShape *b)
{
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (!ir_dim_eq(a->d[i], b->d[i]))
            return false;
    return true;
}

bool ir_shape_numel(const IrShape *s, IrDim *out)
{
    IrDim n = ir_dim_const(1);
    for (int i = 0; i < s->rank; i++)
        if (!ir_dim_mul(n, s->d[i], &n))
            return false;
    *out = n;
    return true;
}

int ir_shape_str(const IrShape *s, const char *const *syms, char *buf, size_t cap)
{
    int len = snprintf(buf, cap, "[");
    for (int i = 0; i < s->rank; i++) {
        if (i)
            len += snprintf(buf + len, cap > (size_t)len ? cap - len : 0, ",");
        len += ir_dim_str(s->d[i], syms, buf + len, cap > (size_t)len ? cap - len : 0);
    }
    len += snprintf(buf + len, cap > (size_t)len ? cap - len : 0, "]");
    return len;
}
