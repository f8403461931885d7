/* parse.c — the IR text format, reader side (spec: docs/ir.md).
 *
 * A hand-written recursive-descent parser over a one-token lexer.  The
 * format is line oriented: a node is one line, and end of line is a token
 * (T_NL), so junk at the end of a line is caught where it is.  The lexer
 * knows four kinds of word-like tokens: identifiers (ops, keys, dtypes,
 * symbols), numbers, `%values` and `@names`.  Graph and output names use
 * the wider name charset; where one is expected the parser rescans the
 * current token as a name (take_name), which keeps the lexer context-free.
 *
 * Nodes are built with ir_node_new, so the op's shape and dtype rules run
 * on every line; the written type is then compared with the inferred one.
 * Each graph and fusion body has its own scope of `%` names (a hash table
 * over slices of the source text); a name must be defined on an earlier
 * line of the same block, which also rules out cycles.  ir_verify runs on
 * the finished graph.
 *
 * Robustness: parsing stops at the first error, which is recorded with its
 * file:line:col and a hint; everything allocated lives in the graph's arena
 * (freed with the graph) or in the scopes (freed on every path).  Nesting
 * of bodies and of dim expressions is bounded, and integer literals and
 * dim arithmetic report overflow instead of wrapping.
 */
#include "ir.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_BODY_DEPTH 8   /* fusion bodies inside fusion bodies */
#define MAX_DIM_DEPTH  32  /* parentheses and unary minus in one dim */
#define MAX_SYM_LEN    63
#define MAX_NUM_LEN    64

/* ---------------------------------------------------------------- tokens */

typedef enum TokKind { T_EOF, T_NL, T_IDENT, T_NUM, T_STR, T_VALUE, T_NAME, T_PUNCT } TokKind;

typedef struct Tok {
    TokKind kind;
    const char *s;  /* T_NAME: the name (bare) or its opening quote (quoted) */
    int len;
    int line, col;
    bool quoted;
} Tok;

typedef struct Parser {
    const char *file;
    const char *p;           /* the first byte not yet lexed */
    const char *line_start;
    int line;
    Tok tok;                 /* the current token */
    IrError *err;
    bool failed;
    int depth;               /* nesting of bodies */
    const char *graph_name;  /* of the top-level graph, for hints */
    char desc[80];
} Parser;

/* ---------------------------------------------------------------- errors */

__attribute__((format(printf, 4, 5)))
static bool fail_at(Parser *P, int line, int col, const char *fmt, ...)
{
    if (P->failed)
        return false;
    char msg[sizeof P->err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ir_error(P->err, "%s", msg);
    ir_error_where(P->err, "%s:%d:%d", P->file, line, col);
    ir_error_hint(P->err, "%s", "");
    P->failed = true;
    return false;
}

#define FAIL(P, t, ...) fail_at((P), (t)->line, (t)->col, __VA_ARGS__)

/* Adds a hint to the error just reported; returns false for `return`. */
__attribute__((format(printf, 2, 3)))
static bool hint(Parser *P, const char *fmt, ...)
{
    char msg[sizeof P->err->hint];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ir_error_hint(P->err, "%s", msg);
    return false;
}

/* A token as error messages quote it. */
static const char *describe(Parser *P, const Tok *t)
{
    unsigned char c = (unsigned char)t->s[0];
    if (t->kind == T_EOF)
        return "end of file";
    if (t->kind == T_NL)
        return "end of line";
    if (t->kind == T_PUNCT && (c < 0x20 || c >= 0x7f))
        snprintf(P->desc, sizeof P->desc, "byte 0x%02x", c);
    else
        snprintf(P->desc, sizeof P->desc, "'%.*s%s'", t->len > 40 ? 40 : t->len, t->s,
                 t->len > 40 ? "..." : "");
    return P->desc;
}

/* ---------------------------------------------------------------- lexer */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident_char(char c)
{
    return is_ident_start(c) || is_digit(c);
}

/* Bare names: [A-Za-z0-9_.-/:]+, stopping before a "//" comment. */
static bool is_name_char(const char *s)
{
    char c = *s;
    if (c == '/' && s[1] == '/')
        return false;
    return is_ident_char(c) || c == '.' || c == '-' || c == '/' || c == ':';
}

static void skip_blank(Parser *P)
{
    for (;;) {
        char c = *P->p;
        if (c == ' ' || c == '\t' || c == '\r')
            P->p++;
        else if (c == '/' && P->p[1] == '/')
            while (*P->p && *P->p != '\n')
                P->p++;
        else
            return;
    }
}

/* Checks a "..." literal starting at `open`; *end is set past its quote. */
static bool scan_string(Parser *P, const Tok *t, const char *open, const char **end)
{
    const char *q = open + 1;
    for (; *q != '"'; q++) {
        if (!*q || *q == '\n')
            return FAIL(P, t, "unterminated string"),
                   hint(P, "close it with '\"' on the same line; write a newline as \\n");
        if (*q == '\\') {
            if (q[1] != '"' && q[1] != '\\' && q[1] != 'n')
                return fail_at(P, t->line, t->col + (int)(q - t->s), "unknown escape in string"),
                       hint(P, "the escapes are \\\" \\\\ and \\n");
            q++;
        }
    }
    *end = q + 1;
    return true;
}

static bool lex_string(Parser *P, Tok *t)
{
    const char *end;
    if (!scan_string(P, t, P->p, &end))
        return false;
    t->kind = T_STR;
    t->len = (int)(end - P->p);
    P->p = end;
    return true;
}

static bool lex_value(Parser *P, Tok *t)
{
    const char *q = P->p + 1;
    if (is_digit(*q))
        while (is_digit(*q))
            q++;
    else if (is_ident_start(*q))
        while (is_ident_char(*q) || *q == '.')
            q++;
    else
        return FAIL(P, t, "expected a value name after '%%'"),
               hint(P, "values look like %%0 or %%x");
    t->kind = T_VALUE;
    t->len = (int)(q - P->p);
    P->p = q;
    return true;
}

static bool lex_at_name(Parser *P, Tok *t)
{
    const char *q = P->p + 1, *end;
    t->kind = T_NAME;
    if (*q == '"') {
        if (!scan_string(P, t, q, &end))
            return false;
        t->s = q, t->len = (int)(end - q), t->quoted = true;
        P->p = end;
        return true;
    }
    for (end = q; is_name_char(end); end++)
        ;
    if (end == q)
        return FAIL(P, t, "expected a name after '@'"),
               hint(P, "names use [A-Za-z0-9_.-/:]; quote others: @\"my name\"");
    t->s = q, t->len = (int)(end - q);
    P->p = end;
    return true;
}

/* [0-9]+ ('.' [0-9]*)? ([eE] [+-]? [0-9]+)? */
static void lex_number(Parser *P, Tok *t)
{
    const char *q = P->p;
    while (is_digit(*q))
        q++;
    if (*q == '.')
        for (q++; is_digit(*q); q++)
            ;
    if (*q == 'e' || *q == 'E') {
        const char *e = q + 1 + (q[1] == '+' || q[1] == '-');
        if (is_digit(*e))
            for (q = e; is_digit(*q); q++)
                ;
    }
    t->kind = T_NUM;
    t->len = (int)(q - P->p);
    P->p = q;
}

static void lex_ident(Parser *P, Tok *t)
{
    const char *q = P->p;
    while (is_ident_char(*q))
        q++;
    t->kind = T_IDENT;
    t->len = (int)(q - P->p);
    P->p = q;
}

static bool next(Parser *P)
{
    skip_blank(P);
    Tok *t = &P->tok;
    memset(t, 0, sizeof *t);
    t->s = P->p;
    t->line = P->line;
    t->col = (int)(P->p - P->line_start) + 1;
    char c = *P->p;
    if (!c) {
        t->kind = T_EOF;
    } else if (c == '\n') {
        t->kind = T_NL, t->len = 1;
        P->p++, P->line++, P->line_start = P->p;
    } else if (c == '"') {
        return lex_string(P, t);
    } else if (c == '%') {
        return lex_value(P, t);
    } else if (c == '@') {
        return lex_at_name(P, t);
    } else if (is_digit(c)) {
        lex_number(P, t);
    } else if (is_ident_start(c)) {
        lex_ident(P, t);
    } else {
        t->kind = T_PUNCT, t->len = 1;
        P->p++;
    }
    return true;
}

/* ---------------------------------------------------------------- token tests */

static bool is_punct(const Tok *t, char c)
{
    return t->kind == T_PUNCT && t->s[0] == c;
}

static bool is_word(const Tok *t, const char *w)
{
    return t->kind == T_IDENT && (int)strlen(w) == t->len && !memcmp(t->s, w, t->len);
}

static bool at_eol(const Tok *t)
{
    return t->kind == T_NL || t->kind == T_EOF;
}

static bool expect(Parser *P, char c, const char *context)
{
    if (!is_punct(&P->tok, c))
        return FAIL(P, &P->tok, "expected '%c' %s, got %s", c, context, describe(P, &P->tok));
    return next(P);
}

static bool skip_newlines(Parser *P)
{
    while (P->tok.kind == T_NL)
        if (!next(P))
            return false;
    return true;
}

static bool expect_eol(Parser *P, const char *what)
{
    if (!at_eol(&P->tok))
        return FAIL(P, &P->tok, "trailing junk %s after %s", describe(P, &P->tok), what),
               hint(P, "one node per line; comments start with //");
    return true;
}

/* ---------------------------------------------------------------- strings and names */

/* Decodes a checked "..." literal into the arena. */
static char *decode_string(IrArena *a, const char *open, int len)
{
    char *out = ir_arena_alloc(a, (size_t)len), *w = out;
    for (const char *q = open + 1; q < open + len - 1; q++) {
        if (*q == '\\') {
            q++;
            *w++ = *q == 'n' ? '\n' : *q;
        } else {
            *w++ = *q;
        }
    }
    *w = 0;
    return out;
}

static char *tok_name(IrArena *a, const Tok *t)
{
    return t->quoted ? decode_string(a, t->s, t->len) : ir_arena_strndup(a, t->s, (size_t)t->len);
}

/* A graph or output name where the lexer saw a word, a number or a quoted
 * string: the current token is rescanned with the name charset. */
static char *take_name(Parser *P, IrArena *a, const char *what)
{
    Tok *t = &P->tok;
    char *name;
    if (t->kind == T_STR) {
        name = decode_string(a, t->s, t->len);
    } else if (t->kind != T_EOF && t->kind != T_NL && t->kind != T_NAME && is_name_char(t->s)) {
        const char *q = t->s;
        while (is_name_char(q))
            q++;
        name = ir_arena_strndup(a, t->s, (size_t)(q - t->s));
        P->p = q;
    } else {
        FAIL(P, t, "expected %s, got %s", what, describe(P, t));
        return NULL;
    }
    return next(P) ? name : NULL;
}

/* ---------------------------------------------------------------- scopes */

/* Open addressing over slices of the source text: `%` values, names. */
typedef struct Slot {
    const char *s;
    int len;
    void *v;
    int line;
} Slot;

typedef struct Scope {
    Slot *slot;
    size_t cap, n;
} Scope;

static size_t hash_bytes(const char *s, int len)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return (size_t)h;
}

static Slot *scope_slot(const Scope *sc, const char *s, int len)
{
    size_t i = hash_bytes(s, len) & (sc->cap - 1);
    while (sc->slot[i].s && !(sc->slot[i].len == len && !memcmp(sc->slot[i].s, s, (size_t)len)))
        i = (i + 1) & (sc->cap - 1);
    return &sc->slot[i];
}

static Slot *scope_get(const Scope *sc, const char *s, int len)
{
    if (!sc->cap)
        return NULL;
    Slot *sl = scope_slot(sc, s, len);
    return sl->s ? sl : NULL;
}

static void scope_grow(Scope *sc)
{
    Scope big = {calloc(sc->cap ? 2 * sc->cap : 64, sizeof(Slot)), sc->cap ? 2 * sc->cap : 64, 0};
    IR_ASSERT(big.slot);
    for (size_t i = 0; i < sc->cap; i++)
        if (sc->slot[i].s)
            *scope_slot(&big, sc->slot[i].s, sc->slot[i].len) = sc->slot[i];
    big.n = sc->n;
    free(sc->slot);
    *sc = big;
}

static void scope_put(Scope *sc, const char *s, int len, void *v, int line)
{
    if (2 * (sc->n + 1) > sc->cap)
        scope_grow(sc);
    *scope_slot(sc, s, len) = (Slot){s, len, v, line};
    sc->n++;
}

/* One graph or body being parsed. */
typedef struct Block {
    IrGraph *g;
    Scope vals;   /* %id -> node */
    Scope names;  /* input and param names */
    Scope outs;   /* output names */
} Block;

static void block_free(Block *b)
{
    free(b->vals.slot);
    free(b->names.slot);
    free(b->outs.slot);
}

/* ---------------------------------------------------------------- integers */

/* Digits of a T_NUM token as an int64 (negated when `neg`); overflow and
 * fractions are errors. */
static bool tok_int(Parser *P, const Tok *t, bool neg, int64_t *out)
{
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (t->kind != T_NUM)
        return FAIL(P, t, "expected an integer, got %s", describe(P, t));
    for (int i = 0; i < t->len; i++) {
        if (!is_digit(t->s[i]))
            return FAIL(P, t, "expected an integer, got %s", describe(P, t));
        unsigned d = (unsigned)(t->s[i] - '0');
        if (v > (limit - d) / 10)
            return FAIL(P, t, "integer %s is out of range", describe(P, t)),
                   hint(P, "integers are 64-bit");
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

/* An optionally negative integer: ['-'] NUM. */
static bool parse_int(Parser *P, int64_t *out)
{
    bool neg = is_punct(&P->tok, '-');
    if (neg && !next(P))
        return false;
    return tok_int(P, &P->tok, neg, out) && next(P);
}

/* ---------------------------------------------------------------- dims */

static bool dim_expr(Parser *P, const IrGraph *g, int depth, IrDim *out);

static bool dim_symbol(Parser *P, const IrGraph *g, IrDim *out)
{
    const Tok *t = &P->tok;
    char name[MAX_SYM_LEN + 1];
    int sym = -1;
    if (t->len <= MAX_SYM_LEN) {
        memcpy(name, t->s, (size_t)t->len);
        name[t->len] = 0;
        sym = ir_graph_find_sym(g, name);
    }
    if (sym < 0) {
        char syms[160] = "";
        for (int i = 0; i < g->nsym; i++)
            snprintf(syms + strlen(syms), sizeof syms - strlen(syms), "%s, ", g->sym[i]);
        FAIL(P, t, "unknown symbol %s in a dim", describe(P, t));
        return hint(P, "declare it in the graph header: graph %s(%s%.*s)", P->graph_name, syms,
                    t->len > 40 ? 40 : t->len, t->s);
    }
    *out = ir_dim_sym(sym);
    return next(P);
}

/* factor := NUM | SYMBOL | '(' expr ')' | '-' factor */
static bool dim_factor(Parser *P, const IrGraph *g, int depth, IrDim *out)
{
    Tok t = P->tok;
    int64_t v;
    if (depth > MAX_DIM_DEPTH)
        return FAIL(P, &t, "dim expression nested too deeply");
    if (t.kind == T_NUM)
        return tok_int(P, &t, false, &v) && next(P) && (*out = ir_dim_const(v), true);
    if (t.kind == T_IDENT)
        return dim_symbol(P, g, out);
    if (is_punct(&t, '('))
        return next(P) && dim_expr(P, g, depth + 1, out) && expect(P, ')', "to close the dim");
    if (is_punct(&t, '-')) {
        IrDim d;
        if (!next(P) || !dim_factor(P, g, depth + 1, &d))
            return false;
        if (!ir_dim_sub(ir_dim_const(0), d, out))
            return FAIL(P, &t, "dim expression overflows");
        return true;
    }
    return FAIL(P, &t, "expected a dim (an integer, a symbol or an expression), got %s",
                describe(P, &t));
}

/* Applies one of + - * / to a and b; the operator token is for errors. */
static bool dim_apply(Parser *P, const IrGraph *g, const Tok *op, IrDim a, IrDim b, IrDim *out)
{
    char c = op->s[0];
    int64_t k;
    if (c == '+' && ir_dim_add(a, b, out))
        return true;
    if (c == '-' && ir_dim_sub(a, b, out))
        return true;
    if (c == '*' && ir_dim_mul(a, b, out))
        return true;
    if (c == '/') {
        if (!ir_dim_is_const(b, &k) || k <= 0)
            return FAIL(P, op, "a dim can only be divided by a positive integer");
        if (ir_dim_div_const(a, k, out))
            return true;
        char s[128];
        ir_dim_str(a, g->sym, s, sizeof s);
        return FAIL(P, op, "%s is not divisible by %lld", s, (long long)k);
    }
    return FAIL(P, op, "dim expression overflows or has more than %d terms", IR_MAX_TERMS);
}

/* term := factor { ('*' | '/') factor } */
static bool dim_term(Parser *P, const IrGraph *g, int depth, IrDim *out)
{
    if (!dim_factor(P, g, depth, out))
        return false;
    while (is_punct(&P->tok, '*') || is_punct(&P->tok, '/')) {
        Tok op = P->tok;
        IrDim b;
        if (!next(P) || !dim_factor(P, g, depth, &b) || !dim_apply(P, g, &op, *out, b, out))
            return false;
    }
    return true;
}

/* expr := term { ('+' | '-') term } */
static bool dim_expr(Parser *P, const IrGraph *g, int depth, IrDim *out)
{
    if (!dim_term(P, g, depth, out))
        return false;
    while (is_punct(&P->tok, '+') || is_punct(&P->tok, '-')) {
        Tok op = P->tok;
        IrDim b;
        if (!next(P) || !dim_term(P, g, depth, &b) || !dim_apply(P, g, &op, *out, b, out))
            return false;
    }
    return true;
}

static bool parse_dim(Parser *P, const IrGraph *g, IrDim *out)
{
    Tok t = P->tok;
    int64_t v;
    if (!dim_expr(P, g, 0, out))
        return false;
    if (ir_dim_is_const(*out, &v) && v < 0)
        return FAIL(P, &t, "dim is negative (%lld)", (long long)v);
    return true;
}

/* ---------------------------------------------------------------- types */

static bool parse_dtype(Parser *P, IrDType *dt)
{
    const Tok *t = &P->tok;
    char name[8] = "";
    if (t->kind == T_IDENT && t->len < (int)sizeof name)
        memcpy(name, t->s, (size_t)t->len);
    *dt = ir_dtype_lookup(name);
    if (*dt == DT_COUNT)
        return FAIL(P, t, "expected a dtype, got %s", describe(P, t)),
               hint(P, "the dtypes are f32, i32 and bool; a type reads f32[B,T]");
    return next(P);
}

/* DTYPE '[' [dim {',' dim}] ']' */
static bool parse_type(Parser *P, const IrGraph *g, IrDType *dt, IrShape *s)
{
    memset(s, 0, sizeof *s);
    if (!parse_dtype(P, dt) || !expect(P, '[', "to open the shape"))
        return false;
    if (is_punct(&P->tok, ']'))
        return next(P);
    for (;;) {
        if (s->rank == IR_MAX_RANK)
            return FAIL(P, &P->tok, "rank exceeds %d", IR_MAX_RANK);
        if (!parse_dim(P, g, &s->d[s->rank++]))
            return false;
        if (!is_punct(&P->tok, ','))
            return expect(P, ']', "or ',' in the shape");
        if (!next(P))
            return false;
    }
}

/* ---------------------------------------------------------------- attributes */

static int edit_distance(const char *a, int la, const char *b)
{
    int lb = (int)strlen(b), row[64], prev;
    if (la > 63 || lb > 63)
        return 99;
    for (int j = 0; j <= lb; j++)
        row[j] = j;
    for (int i = 1; i <= la; i++) {
        prev = row[0];
        row[0] = i;
        for (int j = 1; j <= lb; j++) {
            int sub = prev + (a[i - 1] != b[j - 1]), del = row[j] + 1, ins = row[j - 1] + 1;
            prev = row[j];
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    }
    return row[lb];
}

static const char *nearest_attr(const char *s, int len)
{
    const char *best = ir_attr_name(0);
    int bestd = 1 << 30;
    for (int k = 0; k < ATTR_COUNT; k++) {
        int d = edit_distance(s, len, ir_attr_name((IrAttrKey)k));
        if (d < bestd)
            bestd = d, best = ir_attr_name((IrAttrKey)k);
    }
    return best;
}

static bool wrong_kind(Parser *P, IrAttrKey key)
{
    static const char *kinds[] = {"an int", "a list of ints", "a float", "a string"};
    static const char *examples[] = {"1", "[0,1]", "0.5", "\"normal\""};
    IrAttrKind k = ir_attr_kind(key);
    FAIL(P, &P->tok, "attribute '%s' takes %s, got %s", ir_attr_name(key), kinds[k],
         describe(P, &P->tok));
    return hint(P, "write %s=%s", ir_attr_name(key), examples[k]);
}

/* ['-'] NUM | ['-'] 'inf' | 'nan' */
static bool parse_float(Parser *P, IrAttrKey key, double *out)
{
    bool neg = is_punct(&P->tok, '-');
    if (neg && !next(P))
        return false;
    const Tok *t = &P->tok;
    char buf[MAX_NUM_LEN + 1];
    if (is_word(t, "inf") || is_word(t, "nan")) {
        *out = t->s[0] == 'i' ? INFINITY : NAN;
    } else if (t->kind == T_NUM && t->len <= MAX_NUM_LEN) {
        memcpy(buf, t->s, (size_t)t->len);
        buf[t->len] = 0;
        *out = strtod(buf, NULL);
    } else {
        return t->kind == T_NUM ? FAIL(P, t, "number too long") : wrong_kind(P, key);
    }
    *out = neg ? -*out : *out;
    return next(P);
}

static bool parse_ints(Parser *P, IrAttrKey key, IrAttr *a)
{
    if (!is_punct(&P->tok, '['))
        return wrong_kind(P, key);
    if (!next(P))
        return false;
    while (!is_punct(&P->tok, ']')) {
        if (a->n && !expect(P, ',', "or ']' in the list"))
            return false;
        if (a->n == IR_MAX_RANK)
            return FAIL(P, &P->tok, "attribute '%s' has more than %d ints", ir_attr_name(key),
                        IR_MAX_RANK);
        if (!parse_int(P, &a->i[a->n++]))
            return false;
    }
    return next(P);
}

static bool parse_attr_value(Parser *P, IrGraph *g, IrAttrKey key, IrAttr *a)
{
    *a = ir_attr_int(key, 0);
    switch (ir_attr_kind(key)) {
    case AK_INT:
        if (P->tok.kind != T_NUM && !is_punct(&P->tok, '-'))
            return wrong_kind(P, key);
        return parse_int(P, &a->i[0]);
    case AK_INTS:
        return parse_ints(P, key, a);
    case AK_FLOAT:
        return parse_float(P, key, &a->f);
    case AK_STR:
        if (P->tok.kind != T_STR)
            return wrong_kind(P, key);
        a->s = decode_string(g->arena, P->tok.s, P->tok.len);
        return next(P);
    }
    return false;
}

/* KEY '=' VALUE, appended to attrs[*n] (keys unique, at most IR_MAX_ATTRS). */
static bool parse_attr(Parser *P, IrGraph *g, IrAttr *attrs, int *n)
{
    Tok t = P->tok;
    char name[32] = "";
    if (t.kind == T_IDENT && t.len < (int)sizeof name)
        memcpy(name, t.s, (size_t)t.len);
    IrAttrKey key = ir_attr_lookup(name);
    if (key == ATTR_COUNT)
        return FAIL(P, &t, "unknown attribute %s", describe(P, &t)),
               hint(P, "did you mean '%s'?", nearest_attr(t.s, t.len));
    for (int i = 0; i < *n; i++)
        if (attrs[i].key == key)
            return FAIL(P, &t, "attribute '%s' given twice", name);
    if (*n == IR_MAX_ATTRS)
        return FAIL(P, &t, "more than %d attributes", IR_MAX_ATTRS);
    if (!next(P) || !expect(P, '=', "after the attribute name"))
        return false;
    return parse_attr_value(P, g, key, &attrs[(*n)++]);
}

/* '{' [attr {',' attr}] '}' */
static bool parse_attrs(Parser *P, IrGraph *g, IrAttr *attrs, int *n)
{
    if (!next(P))
        return false;
    while (!is_punct(&P->tok, '}')) {
        if (*n && !expect(P, ',', "or '}' after an attribute"))
            return false;
        if (!parse_attr(P, g, attrs, n))
            return false;
    }
    return next(P);
}

/* ---------------------------------------------------------------- nodes */

/* The parts of one node line before the node is built. */
typedef struct NodeLine {
    Tok id, op_tok, type_tok;
    IrOp op;
    IrNode *in[IR_MAX_IN];
    int nin;
    IrAttr attr[IR_MAX_ATTRS];
    int nattr;
    IrDType dt;
    IrShape shape;
    Tok name;
    bool has_name;
} NodeLine;

static bool parse_block(Parser *P, Block *b, const Tok *open, const char *what);

/* '%ID' '=' : a fresh name in this block. */
static bool parse_def(Parser *P, Block *b, NodeLine *L)
{
    L->id = P->tok;
    Slot *prev = scope_get(&b->vals, L->id.s, L->id.len);
    if (prev)
        return FAIL(P, &L->id, "value %.*s is defined twice (first on line %d)", L->id.len,
                    L->id.s, prev->line);
    return next(P) && expect(P, '=', "after the value name");
}

static bool parse_op(Parser *P, NodeLine *L)
{
    char name[64] = "";
    L->op_tok = P->tok;
    if (P->tok.kind != T_IDENT)
        return FAIL(P, &P->tok, "expected an op name, got %s", describe(P, &P->tok));
    snprintf(name, sizeof name, "%.*s", P->tok.len, P->tok.s);
    L->op = ir_op_lookup(name);
    if (L->op == OP_COUNT)
        return FAIL(P, &P->tok, "unknown op %s", describe(P, &P->tok)),
               hint(P, "did you mean '%s'?", ir_op_nearest(name));
    return next(P);
}

static bool parse_use(Parser *P, const Block *b, IrNode **out)
{
    const Tok *t = &P->tok;
    Slot *sl = scope_get(&b->vals, t->s, t->len);
    if (!sl)
        return FAIL(P, t, "use of undefined value %.*s", t->len, t->s),
               hint(P, "a value must be defined on an earlier line of the same graph or body");
    *out = sl->v;
    return next(P);
}

/* %a, %b, ... (possibly none) */
static bool parse_operands(Parser *P, const Block *b, NodeLine *L)
{
    if (P->tok.kind != T_VALUE)
        return true;
    for (;;) {
        if (L->nin == IR_MAX_IN)
            return FAIL(P, &P->tok, "more than %d operands", IR_MAX_IN);
        if (!parse_use(P, b, &L->in[L->nin++]))
            return false;
        if (!is_punct(&P->tok, ','))
            return true;
        if (!next(P))
            return false;
        if (P->tok.kind != T_VALUE)
            return FAIL(P, &P->tok, "expected an operand after ',', got %s", describe(P, &P->tok));
    }
}

/* OPERANDS [{attrs}] ':' TYPE [@name] */
static bool parse_node_rest(Parser *P, Block *b, NodeLine *L)
{
    if (!parse_operands(P, b, L))
        return false;
    if (is_punct(&P->tok, '{') && !parse_attrs(P, b->g, L->attr, &L->nattr))
        return false;
    if (!is_punct(&P->tok, ':'))
        return FAIL(P, &P->tok, "expected ':' and the node's type, got %s", describe(P, &P->tok)),
               hint(P, "a node line reads %%ID = OP OPERANDS {ATTRS} : f32[B,T] @NAME");
    if (!next(P))
        return false;
    L->type_tok = P->tok;
    if (!parse_type(P, b->g, &L->dt, &L->shape))
        return false;
    if (P->tok.kind == T_NAME) {
        L->name = P->tok, L->has_name = true;
        return next(P);
    }
    return true;
}

static bool check_type(Parser *P, const IrGraph *g, const NodeLine *L, const IrNode *n)
{
    char want[256], got[256];
    if (n->dtype == L->dt && ir_shape_eq(&n->shape, &L->shape))
        return true;
    ir_shape_str(&L->shape, g->sym, want, sizeof want);
    ir_shape_str(&n->shape, g->sym, got, sizeof got);
    return FAIL(P, &L->type_tok, "type mismatch: written %s%s but %s gives %s%s",
                ir_dtype_name(L->dt), want, ir_op_name(n->op), ir_dtype_name(n->dtype), got),
           hint(P, "the type after ':' must be the one the op computes from its operands");
}

/* Inputs and params need a name, unique in the block. */
static bool check_name(Parser *P, Block *b, const NodeLine *L, IrNode *n)
{
    if (n->op != OP_INPUT && n->op != OP_PARAM)
        return true;
    if (!L->has_name)
        return FAIL(P, &P->tok, "%s %.*s needs a name", ir_op_name(n->op), L->id.len, L->id.s),
               hint(P, "end the line with @NAME");
    Slot *prev = scope_get(&b->names, n->name, (int)strlen(n->name));
    if (prev)
        return FAIL(P, &L->name, "name '%s' is used twice (first on line %d)", n->name,
                    prev->line);
    scope_put(&b->names, n->name, (int)strlen(n->name), n, L->name.line);
    return true;
}

static IrNode *build_node(Parser *P, Block *b, const NodeLine *L)
{
    IrError e = {0};
    IrNode *n = ir_node_new(b->g, L->op, L->in, L->nin, L->attr, L->nattr, &L->dt, &L->shape,
                            &e);
    if (!n) {
        FAIL(P, &L->op_tok, "%s", e.msg);
        hint(P, "see the op table in docs/ir.md for operands and attributes");
        return NULL;
    }
    if (L->has_name)
        n->name = tok_name(b->g->arena, &L->name);
    if (!check_type(P, b->g, L, n) || !check_name(P, b, L, n))
        return NULL;
    scope_put(&b->vals, L->id.s, L->id.len, n, L->id.line);
    return n;
}

/* The body's input nodes bind the node's operands in order. */
static bool check_body_inputs(Parser *P, const IrNode *n, const Tok *open)
{
    int k = 0;
    char a[256], c[256];
    for (int i = 0; i < n->body->nnodes; i++) {
        const IrNode *x = n->body->nodes[i];
        if (x->op != OP_INPUT)
            continue;
        if (k < n->nin &&
            (x->dtype != n->in[k]->dtype || !ir_shape_eq(&x->shape, &n->in[k]->shape))) {
            ir_shape_str(&x->shape, n->body->sym, a, sizeof a);
            ir_shape_str(&n->in[k]->shape, n->body->sym, c, sizeof c);
            return FAIL(P, open, "body input %%%d is %s%s but operand %d is %s%s", i,
                        ir_dtype_name(x->dtype), a, k, ir_dtype_name(n->in[k]->dtype), c);
        }
        k++;
    }
    if (k != n->nin)
        return FAIL(P, open, "the body has %d input%s for %d operand%s", k, k == 1 ? "" : "s",
                    n->nin, n->nin == 1 ? "" : "s"),
               hint(P, "the body's input nodes bind the node's operands in order");
    return true;
}

/* '{' NL block '}' after a node: its fusion body, a graph of its own. */
static bool parse_body(Parser *P, const Block *outer, IrNode *n)
{
    Tok open = P->tok;
    char name[256];
    if (P->depth >= MAX_BODY_DEPTH)
        return FAIL(P, &open, "bodies are nested more than %d deep", MAX_BODY_DEPTH);
    if (!next(P) || !expect_eol(P, "'{'"))
        return false;
    snprintf(name, sizeof name, "%s/%%%d", outer->g->name, n->index);
    n->body = ir_graph_new(name);
    for (int i = 0; i < outer->g->nsym; i++)
        ir_graph_sym(n->body, outer->g->sym[i]);
    Block b = {.g = n->body};
    P->depth++;
    bool ok = parse_block(P, &b, &open, "body");
    P->depth--;
    block_free(&b);
    return ok && check_body_inputs(P, n, &open);
}

static bool parse_node(Parser *P, Block *b)
{
    NodeLine L;
    memset(&L, 0, sizeof L);
    if (!parse_def(P, b, &L) || !parse_op(P, &L) || !parse_node_rest(P, b, &L))
        return false;
    IrNode *n = build_node(P, b, &L);
    if (!n)
        return false;
    if (is_punct(&P->tok, '{') && !parse_body(P, b, n))
        return false;
    return expect_eol(P, "the node");
}

/* ---------------------------------------------------------------- graphs */

/* NAME '=' %ID */
static bool parse_output(Parser *P, Block *b)
{
    Tok t = P->tok;
    IrNode *n = NULL;
    char *name = take_name(P, b->g->arena, "an output name");
    if (!name)
        return false;
    if (scope_get(&b->outs, name, (int)strlen(name)))
        return FAIL(P, &t, "output '%s' is returned twice", name);
    if (!expect(P, '=', "after the output name"))
        return false;
    if (P->tok.kind != T_VALUE)
        return FAIL(P, &P->tok, "expected a value like %%3, got %s", describe(P, &P->tok));
    if (!parse_use(P, b, &n))
        return false;
    ir_graph_add_output(b->g, name, n);
    scope_put(&b->outs, name, (int)strlen(name), n, t.line);
    return true;
}

/* 'return' [NAME=%ID {',' NAME=%ID}] */
static bool parse_return(Parser *P, Block *b)
{
    if (!next(P))
        return false;
    if (at_eol(&P->tok))
        return true;
    for (;;) {
        if (!parse_output(P, b))
            return false;
        if (!is_punct(&P->tok, ','))
            return expect_eol(P, "the return line");
        if (!next(P))
            return false;
    }
}

static bool unterminated(Parser *P, const Tok *open, const char *what)
{
    FAIL(P, &P->tok, "unterminated %s: expected '}' before end of file", what);
    return hint(P, "the block opened at line %d, column %d is not closed", open->line, open->col);
}

/* Node lines, then the return line, then '}'. */
static bool parse_block(Parser *P, Block *b, const Tok *open, const char *what)
{
    for (;;) {
        if (!skip_newlines(P))
            return false;
        if (P->tok.kind == T_EOF)
            return unterminated(P, open, what);
        if (is_word(&P->tok, "return"))
            break;
        if (is_punct(&P->tok, '}'))
            return FAIL(P, &P->tok, "missing return line before '}'"),
                   hint(P, "end every graph and body with: return NAME=%%ID, ...");
        if (P->tok.kind != T_VALUE)
            return FAIL(P, &P->tok, "expected a node (%%ID = ...) or 'return', got %s",
                        describe(P, &P->tok));
        if (!parse_node(P, b))
            return false;
    }
    if (!parse_return(P, b) || !skip_newlines(P))
        return false;
    if (P->tok.kind == T_EOF)
        return unterminated(P, open, what);
    if (!is_punct(&P->tok, '}'))
        return FAIL(P, &P->tok, "expected '}' after the return line, got %s", describe(P, &P->tok)),
               hint(P, "close the block opened at line %d, column %d", open->line, open->col);
    return next(P);
}

/* '(' [SYM {',' SYM}] ')' */
static bool parse_symbols(Parser *P, IrGraph *g)
{
    if (!expect(P, '(', "after the graph name"))
        return false;
    while (!is_punct(&P->tok, ')')) {
        const Tok *t = &P->tok;
        char name[MAX_SYM_LEN + 1];
        if (g->nsym && !expect(P, ',', "or ')' in the symbol list"))
            return false;
        if (t->kind != T_IDENT || t->len > MAX_SYM_LEN)
            return FAIL(P, t, "expected a symbol name, got %s", describe(P, t)),
                   hint(P, "symbols are identifiers of at most %d characters", MAX_SYM_LEN);
        snprintf(name, sizeof name, "%.*s", t->len, t->s);
        if (ir_graph_find_sym(g, name) >= 0)
            return FAIL(P, t, "symbol '%s' is declared twice", name);
        if (ir_graph_sym(g, name) < 0)
            return FAIL(P, t, "more than %d symbols", IR_MAX_SYMS);
        if (!next(P))
            return false;
    }
    return next(P);
}

/* 'graph' NAME '(' SYMS ')' '{' NL block '}' */
static bool parse_graph(Parser *P, IrGraph **out)
{
    if (!skip_newlines(P))
        return false;
    if (!is_word(&P->tok, "graph"))
        return FAIL(P, &P->tok, "expected 'graph', got %s", describe(P, &P->tok)),
               hint(P, "a file starts with: graph NAME(B, T) {");
    IrGraph *g = *out = ir_graph_new(NULL);
    if (!next(P) || !(g->name = take_name(P, g->arena, "a graph name")))
        return false;
    P->graph_name = g->name;
    if (!parse_symbols(P, g))
        return false;
    Tok open = P->tok;
    if (!expect(P, '{', "to open the graph") || !expect_eol(P, "'{'"))
        return false;
    Block b = {.g = g};
    char what[96];
    snprintf(what, sizeof what, "graph '%.80s'", g->name);
    bool ok = parse_block(P, &b, &open, what);
    block_free(&b);
    if (!ok || !skip_newlines(P))
        return false;
    if (P->tok.kind != T_EOF)
        return FAIL(P, &P->tok, "trailing junk %s after the graph", describe(P, &P->tok)),
               hint(P, "a file holds one graph");
    return true;
}

static bool verify_parsed(Parser *P, const IrGraph *g)
{
    IrError e = {0};
    if (ir_verify(g, &e))
        return true;
    ir_error(P->err, "%s", e.msg);
    ir_error_where(P->err, "%s", P->file);
    ir_error_hint(P->err, "%s", e.hint);
    return false;
}

IrGraph *ir_parse(const char *text, const char *file, IrError *err)
{
    Parser P;
    memset(&P, 0, sizeof P);
    P.file = file ? file : "<input>";
    P.p = P.line_start = text;
    P.line = 1;
    P.err = err;
    IrGraph *g = NULL;
    if (next(&P) && parse_graph(&P, &g) && verify_parsed(&P, g))
        return g;
    ir_graph_free(g);
    return NULL;
}

/* ---------------------------------------------------------------- files */

/* The whole file ("-": stdin), NUL-terminated; NULL and err on failure. */
static char *read_text(const char *path, IrError *err)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    struct stat st;
    if (f && f != stdin && fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);   /* fopen opens a directory; fread would then fail */
        f = NULL;
        errno = EISDIR;
    }
    if (!f) {
        ir_error(err, "cannot open '%s': %s", path, strerror(errno));
        ir_error_where(err, "%s", path);
        ir_error_hint(err, "%s", "check the path");
        return NULL;
    }
    size_t cap = 1 << 16, len = 0, got;
    char *buf = malloc(cap);
    IR_ASSERT(buf);
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0)
        if ((len += got) + 1 == cap) {
            buf = realloc(buf, cap *= 2);
            IR_ASSERT(buf);
        }
    buf[len] = 0;
    if (f != stdin)
        fclose(f);
    if (strlen(buf) != len) {
        ir_error(err, "'%s' contains a NUL byte at offset %zu", path, strlen(buf));
        ir_error_where(err, "%s", path);
        free(buf);
        return NULL;
    }
    return buf;
}

IrGraph *ir_parse_file(const char *path, IrError *err)
{
    char *text = read_text(path, err);
    if (!text)
        return NULL;
    IrGraph *g = ir_parse(text, path, err);
    free(text);
    return g;
}
