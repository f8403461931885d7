/* print.c — the IR text format, writer side (spec: docs/ir.md).
 *
 * The printer is the definition of the canonical form: ir_parse accepts
 * more (comments, blank lines, any `%` identifiers, quoted names, any
 * spacing), but what this file writes is the one form the round-trip
 * contract print(parse(print(g))) == print(g) is about.  Canonical means:
 *
 *   - nodes are numbered by position (%0, %1, ...), computed here rather
 *     than read from n->index, which a pass may have left stale;
 *   - attributes in attrs.def key order, floats in the shortest %g form
 *     that reads back to the same double (see format_float);
 *   - dims through ir_dim_str, which prints canonical polynomials;
 *   - names bare when they only use [A-Za-z0-9_.-/:] (and no "//", which
 *     would start a comment), quoted otherwise;
 *   - two spaces of indentation per nesting level of fusion bodies.
 *
 * Fusion bodies print with the symbols of the top-level graph: a body
 * shares its parent's symbol list, so that is what its dims index.
 */
#include "ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Position of n in g: n->index when it is current, else found by a scan;
 * -1 when n is not in g (a broken graph prints, the verifier reports). */
static int node_pos(const IrGraph *g, const IrNode *n)
{
    if (n && n->index >= 0 && n->index < g->nnodes && g->nodes[n->index] == n)
        return n->index;
    for (int i = 0; n && i < g->nnodes; i++)
        if (g->nodes[i] == n)
            return i;
    return -1;
}

static void print_ref(const IrGraph *g, const IrNode *n, FILE *f)
{
    int pos = node_pos(g, n);
    if (pos >= 0)
        fprintf(f, "%%%d", pos);
    else
        fputs("%?", f);
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-' || c == '/' || c == ':';
}

static bool name_is_bare(const char *s)
{
    if (!*s || strstr(s, "//"))
        return false;
    for (; *s; s++)
        if (!is_name_char(*s))
            return false;
    return true;
}

/* "..." with \" \\ \n escaped; every other byte as it is. */
static void print_quoted(const char *s, FILE *f)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f), fputc(*s, f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void print_name(const char *s, FILE *f)
{
    if (name_is_bare(s))
        fputs(s, f);
    else
        print_quoted(s, f);
}

/* The shortest of %.1g ... %.17g that strtod reads back to exactly v: the
 * fewest digits, and fixed notation where that is shorter (100, not 1e+02). */
static void format_float(double v, char *buf, size_t cap)
{
    char cand[40];
    if (isnan(v) || isinf(v)) {
        snprintf(buf, cap, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
        return;
    }
    buf[0] = 0;
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(cand, sizeof cand, "%.*g", prec, v);
        if (strtod(cand, NULL) == v && (!buf[0] || strlen(cand) < strlen(buf)))
            snprintf(buf, cap, "%s", cand);
    }
}

static void print_attr_value(const IrAttr *a, FILE *f)
{
    char buf[64];
    switch (ir_attr_kind(a->key)) {
    case AK_INT:
        fprintf(f, "%lld", (long long)a->i[0]);
        break;
    case AK_INTS:
        fputc('[', f);
        for (int i = 0; i < a->n && i < IR_MAX_RANK; i++)
            fprintf(f, "%s%lld", i ? "," : "", (long long)a->i[i]);
        fputc(']', f);
        break;
    case AK_FLOAT:
        format_float(a->f, buf, sizeof buf);
        fputs(buf, f);
        break;
    case AK_STR:
        print_quoted(a->s ? a->s : "", f);
        break;
    }
}

/* Attributes in key order, whatever order the node stores them in. */
static void print_attrs(const IrNode *n, FILE *f)
{
    bool first = true;
    for (int k = 0; k < ATTR_COUNT; k++) {
        const IrAttr *a = ir_node_attr(n, (IrAttrKey)k);
        if (!a)
            continue;
        fputs(first ? " {" : ", ", f);
        fprintf(f, "%s=", ir_attr_name((IrAttrKey)k));
        print_attr_value(a, f);
        first = false;
    }
    if (!first)
        fputc('}', f);
}

/* One dim; long polynomials get a heap buffer rather than a cut. */
static void print_dim(IrDim d, const char *const *syms, FILE *f)
{
    char small[128];
    int len = ir_dim_str(d, syms, small, sizeof small);
    if (len < (int)sizeof small) {
        fputs(small, f);
        return;
    }
    char *big = malloc((size_t)len + 1);
    IR_ASSERT(big);
    ir_dim_str(d, syms, big, (size_t)len + 1);
    fputs(big, f);
    free(big);
}

static void print_type(const IrNode *n, const char *const *syms, FILE *f)
{
    fprintf(f, "%s[", ir_dtype_name(n->dtype));
    for (int i = 0; i < n->shape.rank && i < IR_MAX_RANK; i++) {
        if (i)
            fputc(',', f);
        print_dim(n->shape.d[i], syms, f);
    }
    fputc(']', f);
}

static void indent(int depth, FILE *f)
{
    for (int i = 0; i < depth; i++)
        fputs("  ", f);
}

static void print_block(const IrGraph *g, const char *const *syms, int depth, FILE *f);

/* `%ID = OP [operands] [{attrs}] : TYPE [@name] [{ body }]` */
static void print_node(const IrGraph *g, int pos, const char *const *syms, int depth, FILE *f)
{
    const IrNode *n = g->nodes[pos];
    indent(depth, f);
    fprintf(f, "%%%d = %s", pos, ir_op_name(n->op));
    for (int j = 0; j < n->nin; j++) {
        fputs(j ? ", " : " ", f);
        print_ref(g, n->in[j], f);
    }
    print_attrs(n, f);
    fputs(" : ", f);
    print_type(n, syms, f);
    if (n->name) {
        fputs(" @", f);
        print_name(n->name, f);
    }
    if (n->body) {
        fputs(" {\n", f);
        print_block(n->body, syms, depth + 1, f);
        indent(depth, f);
        fputc('}', f);
    }
    fputc('\n', f);
}

static void print_return(const IrGraph *g, int depth, FILE *f)
{
    indent(depth, f);
    fputs("return", f);
    for (int i = 0; i < g->nout; i++) {
        fputs(i ? ", " : " ", f);
        print_name(g->outs[i].name ? g->outs[i].name : "", f);
        fputc('=', f);
        print_ref(g, g->outs[i].node, f);
    }
    fputc('\n', f);
}

/* The nodes of a graph or body, then its return line. */
static void print_block(const IrGraph *g, const char *const *syms, int depth, FILE *f)
{
    for (int i = 0; i < g->nnodes; i++)
        print_node(g, i, syms, depth, f);
    print_return(g, depth, f);
}

void ir_print(const IrGraph *g, FILE *f)
{
    fputs("graph ", f);
    print_name(g->name ? g->name : "", f);
    fputc('(', f);
    for (int i = 0; i < g->nsym; i++)
        fprintf(f, "%s%s", i ? ", " : "", g->sym[i]);
    fputs(") {\n", f);
    print_block(g, g->sym, 1, f);
    fputs("}\n", f);
}

char *ir_print_str(const IrGraph *g)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    IR_ASSERT(f);
    ir_print(g, f);
    fclose(f);
    return buf;
}
