/* test_format.c — the IR text format: exact printing, round trips, errors.
 *
 * Graphs are built with the builder and printed; the expected text is the
 * canonical form of docs/ir.md.  Every printed graph is parsed back and
 * printed again (the round-trip contract).  Parse errors are checked for
 * their file:line:col, message and hint.
 */
#include "ir/ir.h"
#include "testlib.h"

#include <float.h>

static IrShape shp(IrGraph *g, const char *spec);

/* Parses, prints, and checks print(parse(print(g))) == print(g). */
static char *round_trip(const char *text)
{
    IrError err = {0};
    IrGraph *g = ir_parse(text, "t.gir", &err);
    if (!g) {
        fprintf(stderr, "parse failed: %s: %s\n", err.where, err.msg);
        CHECK(g != NULL);
        return NULL;
    }
    char *first = ir_print_str(g);
    ir_graph_free(g);
    IrGraph *g2 = ir_parse(first, "t2.gir", &err);
    CHECK(g2 != NULL);
    if (g2) {
        char *second = ir_print_str(g2);
        CHECK_STR(second, first);
        free(second);
        ir_graph_free(g2);
    }
    return first;
}

static void check_print(const IrGraph *g, const char *want)
{
    IrError err = {0};
    CHECK(ir_verify(g, &err));
    char *s = ir_print_str(g);
    CHECK_STR(s, want);
    char *again = round_trip(s);
    CHECK_STR(again, want);
    free(again);
    free(s);
}

/* Checks that `text` fails to parse with the given place and message. */
static void check_error(const char *text, const char *where, const char *msg, const char *hint)
{
    IrError err = {0};
    IrGraph *g = ir_parse(text, "t.gir", &err);
    CHECK(g == NULL);
    ir_graph_free(g);
    CHECK(err.set);
    CHECK_STR(err.where, where);
    if (!strstr(err.msg, msg)) {
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", err.msg, msg);
        CHECK(strstr(err.msg, msg) != NULL);
    }
    if (hint && !strstr(err.hint, hint)) {
        fprintf(stderr, "hint \"%s\" lacks \"%s\"\n", err.hint, hint);
        CHECK(strstr(err.hint, hint) != NULL);
    }
}

/* "B,T,64" -> a shape over g's symbols (adding them). */
static IrShape shp(IrGraph *g, const char *spec)
{
    IrDim d[IR_MAX_RANK];
    int rank = 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
        d[rank++] = (tok[0] >= '0' && tok[0] <= '9') ? ir_dim_const(atoll(tok))
                                                     : ir_dim_sym(ir_graph_sym(g, tok));
    return ir_shape_of(rank, d);
}

TEST(print_builder_graph)
{
    IrGraph *g = ir_graph_new("mini");
    IrNode *x = ir_input(g, "idx", DT_I32, shp(g, "B,T"));
    IrNode *w = ir_param(g, "tok_emb.weight", shp(g, "50,8"), "normal", 0.02, true);
    IrNode *e = ir_binary(g, OP_GATHER, w, x);
    IrNode *m = ir_reduce(g, OP_SUM, e, (int[]){2}, 1, true);
    m->name = "norm.mean";
    IrNode *c = ir_const(g, 0.5, DT_F32, ir_shape_of(0, NULL));
    IrNode *y = ir_binary(g, OP_MUL, e, c);
    ir_graph_add_output(g, "logits", y);
    ir_graph_add_output(g, "mean", m);
    check_print(g, "graph mini(B, T) {\n"
                   "  %0 = input : i32[B,T] @idx\n"
                   "  %1 = param {init=\"normal\", std=0.02, trainable=1} : f32[50,8] "
                   "@tok_emb.weight\n"
                   "  %2 = gather %1, %0 : f32[B,T,8]\n"
                   "  %3 = sum %2 {axes=[2], keepdim=1} : f32[B,T,1] @norm.mean\n"
                   "  %4 = const {value=0.5} : f32[]\n"
                   "  %5 = mul %2, %4 : f32[B,T,8]\n"
                   "  return logits=%5, mean=%3\n"
                   "}\n");
    ir_graph_free(g);
}

TEST(print_empty_graph)
{
    IrGraph *g = ir_graph_new("e");
    check_print(g, "graph e() {\n  return\n}\n");
    ir_graph_free(g);
}

/* Positions, not n->index, number the nodes: a stale index prints the same. */
TEST(print_stale_index)
{
    IrGraph *g = ir_graph_new("s");
    IrNode *x = ir_input(g, "x", DT_F32, shp(g, "4"));
    IrNode *y = ir_unary(g, OP_NEG, x);
    ir_graph_add_output(g, "y", y);
    x->index = 7;
    y->index = -1;
    char *s = ir_print_str(g);
    CHECK_STR(s, "graph s() {\n  %0 = input : f32[4] @x\n  %1 = neg %0 : f32[4]\n"
                 "  return y=%1\n}\n");
    free(s);
    ir_graph_free(g);
}

/* Attributes print in key order even when stored out of order. */
TEST(print_attr_order)
{
    IrGraph *g = ir_graph_new("a");
    IrNode *x = ir_input(g, "x", DT_F32, shp(g, "B,T"));
    IrNode *s = ir_reduce(g, OP_SUM, x, (int[]){1}, 1, false);
    IrAttr t = s->attr[0];
    s->attr[0] = s->attr[1];
    s->attr[1] = t;
    ir_graph_add_output(g, "s", s);
    char *p = ir_print_str(g);
    CHECK(strstr(p, "%1 = sum %0 {axes=[1], keepdim=0} : f32[B]\n") != NULL);
    free(p);
    ir_graph_free(g);
}

TEST(print_dims)
{
    IrGraph *g = ir_graph_new("d");
    int B = ir_graph_sym(g, "B"), T = ir_graph_sym(g, "T");
    IrDim bt, t4, t41, tm1;
    CHECK(ir_dim_mul(ir_dim_sym(B), ir_dim_sym(T), &bt));
    CHECK(ir_dim_mul(ir_dim_const(4), ir_dim_sym(T), &t4));
    CHECK(ir_dim_add(t4, ir_dim_const(1), &t41));
    CHECK(ir_dim_sub(ir_dim_sym(T), ir_dim_const(1), &tm1));
    IrNode *x = ir_input(g, "x", DT_F32, ir_shape_of(3, (IrDim[]){bt, t41, tm1}));
    ir_graph_add_output(g, "x", x);
    check_print(g, "graph d(B, T) {\n  %0 = input : f32[B*T,4*T+1,T-1] @x\n  return x=%0\n}\n");
    ir_graph_free(g);
}

/* Dim expressions parse to canonical polynomials. */
TEST(parse_dim_expressions)
{
    char *s = round_trip("graph d(B, T, D) {\n"
                         "  %x = input : f32[T*B, (D+D)*2, D*4/2, 2*(T+1)-T, 12/3] @x\n"
                         "  return x=%x\n}\n");
    CHECK_STR(s, "graph d(B, T, D) {\n  %0 = input : f32[B*T,4*D,2*D,T+2,4] @x\n"
                 "  return x=%0\n}\n");
    free(s);
}

static void check_float(double v, const char *want)
{
    IrGraph *g = ir_graph_new("f");
    ir_graph_add_output(g, "c", ir_const(g, v, DT_F32, ir_shape_of(0, NULL)));
    char *s = ir_print_str(g);
    char line[128];
    snprintf(line, sizeof line, "{value=%s}", want);
    if (!strstr(s, line))
        fprintf(stderr, "%s not in:\n%s", line, s);
    CHECK(strstr(s, line) != NULL);
    IrError err = {0};
    IrGraph *g2 = ir_parse(s, "f.gir", &err);
    CHECK(g2 != NULL);
    if (g2) {
        double back = ir_node_float(g2->nodes[0], ATTR_VALUE, 0);
        CHECK(isnan(v) ? isnan(back) : memcmp(&back, &v, sizeof v) == 0);
    }
    ir_graph_free(g2);
    ir_graph_free(g);
    free(s);
}

/* The shortest text that reads back to the same double, bit for bit. */
TEST(print_floats)
{
    check_float(0.5, "0.5");
    check_float(0.02, "0.02");
    check_float(1e-5, "1e-05");
    check_float(1.0, "1");
    check_float(-3.0, "-3");
    check_float(0.1, "0.1");
    check_float(1.0 / 3.0, "0.3333333333333333");
    check_float(0.1 + 0.2, "0.30000000000000004");
    check_float(100, "100");
    check_float(768, "768");
    check_float(1e16, "1e+16");
    check_float(-1500, "-1500");
    check_float(1e300, "1e+300");
    check_float(DBL_MAX, "1.7976931348623157e+308");
    check_float(5e-324, "5e-324");
    check_float(-0.0, "-0");
    check_float(INFINITY, "inf");
    check_float(-INFINITY, "-inf");
    check_float(NAN, "nan");
}

TEST(print_strings_and_names)
{
    IrGraph *g = ir_graph_new("my model");
    IrNode *p = ir_param(g, "a b", shp(g, "2"), "say \"hi\"\\\n", 0, true);
    IrNode *q = ir_param(g, "blocks.0/attn:w-q", shp(g, "2"), "zeros", 0, false);
    IrNode *r = ir_param(g, "x//y", shp(g, "2"), "ones", 0, true);
    ir_graph_add_output(g, "grad w", p);
    ir_graph_add_output(g, "q", q);
    ir_graph_add_output(g, "r", r);
    check_print(g, "graph \"my model\"() {\n"
                   "  %0 = param {init=\"say \\\"hi\\\"\\\\\\n\", trainable=1} : f32[2] @\"a b\"\n"
                   "  %1 = param {init=\"zeros\", trainable=0} : f32[2] @blocks.0/attn:w-q\n"
                   "  %2 = param {init=\"ones\", trainable=1} : f32[2] @\"x//y\"\n"
                   "  return \"grad w\"=%0, q=%1, r=%2\n"
                   "}\n");
    ir_graph_free(g);
}

/* A fusion body is a graph of its own, printed nested, numbered from %0. */
TEST(print_body)
{
    IrGraph *g = ir_graph_new("f");
    IrNode *x = ir_input(g, "x", DT_F32, shp(g, "B,4"));
    IrNode *c = ir_const(g, 2, DT_F32, ir_shape_of(0, NULL));
    IrNode *m = ir_binary(g, OP_MUL, x, c);
    IrGraph *b = m->body = ir_graph_new("body");
    ir_graph_sym(b, "B");
    IrNode *bx = ir_input(b, "x0", DT_F32, x->shape);
    IrNode *bc = ir_input(b, "x1", DT_F32, c->shape);
    ir_graph_add_output(b, "out", ir_binary(b, OP_MUL, bx, bc));
    ir_graph_add_output(g, "y", m);
    check_print(g, "graph f(B) {\n"
                   "  %0 = input : f32[B,4] @x\n"
                   "  %1 = const {value=2} : f32[]\n"
                   "  %2 = mul %0, %1 : f32[B,4] {\n"
                   "    %0 = input : f32[B,4] @x0\n"
                   "    %1 = input : f32[] @x1\n"
                   "    %2 = mul %0, %1 : f32[B,4]\n"
                   "    return out=%2\n"
                   "  }\n"
                   "  return y=%2\n"
                   "}\n");
    ir_graph_free(g);
}

/* The parsed body shares the parent's symbols. */
TEST(parse_body_symbols)
{
    IrError err = {0};
    IrGraph *g = ir_parse("graph f(B, T) {\n  %a = input : f32[T] @a\n"
                          "  %b = exp %a : f32[T] {\n    %0 = input : f32[T] @x\n"
                          "    %1 = exp %0 : f32[T]\n    return r=%1\n  }\n"
                          "  return y=%b\n}\n",
                          "b.gir", &err);
    CHECK(g != NULL);
    if (!g)
        return;
    IrGraph *body = g->nodes[1]->body;
    CHECK(body != NULL && body->nsym == 2);
    CHECK(body && !strcmp(body->sym[1], "T") && body->nout == 1);
    ir_graph_free(g);
}

/* Comments, blank lines, spacing and named values are accepted. */
TEST(parse_loose_text)
{
    char *s = round_trip("// a comment\n\n"
                         "graph   g ( B ) {   // header\n"
                         "\n"
                         "  %x=input:f32[ B , 2 ]@x   // the input\r\n"
                         "  %sq.1 = mul %x,%x : f32[B,2]\n"
                         "      %s = sum %sq.1 {axes = [ 0 , 1 ]} : f32[]\n"
                         "  return   loss = %s\n"
                         "}\n\n// end\n");
    CHECK_STR(s, "graph g(B) {\n  %0 = input : f32[B,2] @x\n  %1 = mul %0, %0 : f32[B,2]\n"
                 "  %2 = sum %1 {axes=[0,1]} : f32[]\n  return loss=%2\n}\n");
    free(s);
}

TEST(parse_attr_values)
{
    char *s = round_trip("graph a() {\n"
                         "  %0 = input : i32[4,3] @t\n"
                         "  %1 = input : f32[4,3,7] @l\n"
                         "  %2 = cross_entropy %1, %0 {ignore_index=-9223372036854775808} : f32[]\n"
                         "  %3 = const {value=3} : f32[2]\n"
                         "  %4 = const {value=-1.5e3} : f32[2]\n"
                         "  %5 = const {value=-nan} : f32[2]\n"
                         "  %6 = param {init=\"\"} : f32[2] @p\n"
                         "  %7 = sum %1 {axes=[]} : f32[]\n"
                         "  return x=%2, y=%3, z=%4, n=%5, p=%6\n}\n");
    CHECK(s && strstr(s, "{ignore_index=-9223372036854775808}"));
    CHECK(s && strstr(s, "%4 = const {value=-1500} : f32[2]"));
    CHECK(s && strstr(s, "%5 = const {value=nan}"));
    CHECK(s && strstr(s, "%6 = param {init=\"\"} : f32[2] @p\n"));
    free(s);
}

/* Errors carry file:line:col, a message and a hint.  E checks the error of
 * a graph that declares B and an input %0, then goes on with `body`. */
#define E(body, where, msg, hint)                                                 \
    (snprintf(t, sizeof t, "graph g(B) {\n  %%0 = input : f32[B] @x\n%s", body), \
     check_error(t, where, msg, hint))

TEST(parse_errors)
{
    char t[512];
    E("  %1 = ad %0, %0 : f32[B]\n  return y=%1\n}\n", "t.gir:3:8", "unknown op 'ad'",
      "did you mean 'add'?");
    E("  %1 = add %0, %2 : f32[B]\n  return y=%1\n}\n", "t.gir:3:16",
      "use of undefined value %2", "earlier line");
    E("  %1 = add %1, %0 : f32[B]\n  return y=%1\n}\n", "t.gir:3:12",
      "use of undefined value %1", NULL);
    E("  %1 = add %0, %0 : f32[B,2]\n  return y=%1\n}\n", "t.gir:3:21",
      "type mismatch: written f32[B,2] but add gives f32[B]", NULL);
    E("  %1 = lt %0, %0 : f32[B]\n  return y=%1\n}\n", "t.gir:3:20",
      "type mismatch: written f32[B] but lt gives bool[B]", NULL);
    E("  %1 = add %0 : f32[B]\n  return y=%1\n}\n", "t.gir:3:8", "add takes 2 inputs, got 1",
      NULL);
    E("  %1 = input : f32[T] @y\n  return y=%1\n}\n", "t.gir:3:20", "unknown symbol 'T'",
      "graph g(B, T)");
    E("  %1 = input : f32[B/2] @y\n  return y=%1\n}\n", "t.gir:3:21", "B is not divisible by 2",
      NULL);
    E("  %1 = input : f32[B/B] @y\n  return y=%1\n}\n", "t.gir:3:21", "positive integer", NULL);
    E("  %1 = input : f32[1-2] @y\n  return y=%1\n}\n", "t.gir:3:20", "dim is negative", NULL);
    E("  %1 = input : f32[2.5] @y\n  return y=%1\n}\n", "t.gir:3:20", "expected an integer",
      NULL);
    E("  %1 = input : f64[B] @y\n  return y=%1\n}\n", "t.gir:3:16", "expected a dtype, got 'f64'",
      "f32, i32 and bool");
    E("  %1 = input : f32[1,2,3,4,5,6,7] @y\n  return y=%1\n}\n", "t.gir:3:32", "rank exceeds 6",
      NULL);
}

TEST(parse_errors_attrs)
{
    char t[512];
    E("  %1 = sum %0 {axs=[0]} : f32[]\n  return y=%1\n}\n", "t.gir:3:16",
      "unknown attribute 'axs'", "did you mean");
    E("  %1 = sum %0 {keepdimm=1} : f32[]\n  return y=%1\n}\n", "t.gir:3:16",
      "unknown attribute 'keepdimm'", "did you mean 'keepdim'?");
    E("  %1 = sum %0 {axes=0} : f32[]\n  return y=%1\n}\n", "t.gir:3:21",
      "attribute 'axes' takes a list of ints, got '0'", "axes=[0,1]");
    E("  %1 = sum %0 {keepdim=0.5} : f32[]\n  return y=%1\n}\n", "t.gir:3:24",
      "expected an integer", NULL);
    E("  %1 = const {value=\"x\"} : f32[]\n  return y=%1\n}\n", "t.gir:3:21",
      "attribute 'value' takes a float", NULL);
    E("  %1 = sum %0 {axes=[0], axes=[0]} : f32[]\n  return y=%1\n}\n", "t.gir:3:26",
      "given twice", NULL);
    E("  %1 = sum %0 {axes=[0,0,0,0,0,0,0]} : f32[]\n  return y=%1\n}\n", "t.gir:3:34",
      "more than 6 ints", NULL);
    E("  %1 = sum %0 {seed=99999999999999999999} : f32[]\n  return y=%1\n}\n", "t.gir:3:21",
      "out of range", NULL);
}

TEST(parse_errors_lines)
{
    char t[512];
    E("  %1 = neg %0 : f32[B] junk\n  return y=%1\n}\n", "t.gir:3:24", "trailing junk 'junk'",
      NULL);
    E("  %1 = neg %0 f32[B]\n  return y=%1\n}\n", "t.gir:3:15", "expected ':'", NULL);
    E("  %0 = neg %0 : f32[B]\n  return y=%0\n}\n", "t.gir:3:3", "defined twice", NULL);
    E("  %1 = input : f32[B]\n  return y=%1\n}\n", "t.gir:3:22", "input %1 needs a name",
      "@NAME");
    E("  %1 = param : f32[B] @x\n  return y=%1\n}\n", "t.gir:3:23", "name 'x' is used twice",
      NULL);
    E("  return y=%0\n", "t.gir:4:1", "unterminated graph 'g'", "line 1, column 12");
    E("  return y=%0", "t.gir:3:14", "unterminated graph 'g'", NULL);
    E("", "t.gir:3:1", "unterminated graph 'g'", NULL);
    E("}\n", "t.gir:3:1", "missing return line", NULL);
    E("  return y=%0\n}\n}\n", "t.gir:5:1", "trailing junk '}' after the graph", NULL);
    E("  return y=%0, y=%0\n}\n", "t.gir:3:16", "output 'y' is returned twice", NULL);
    E("  return y=%0 z\n}\n", "t.gir:3:15", "trailing junk 'z'", NULL);
    E("  %1 = const {value=0} : f32[] @\"abc\n  return y=%1\n}\n", "t.gir:3:32",
      "unterminated string", NULL);
    E("  %1 = const {value=0} : f32[] @\"a\\tb\"\n  return y=%1\n}\n", "t.gir:3:35",
      "unknown escape", NULL);
    E("  % = neg %0 : f32[B]\n", "t.gir:3:3", "expected a value name", NULL);
    E("  %1 = neg %0 : f32[B] {\n    %0 = input : f32[B] @x\n    return r=%0\n", "t.gir:6:1",
      "unterminated body", "line 3, column 24");
    E("  %1 = neg %0 : f32[B] {\n    %0 = input : f32[B,B] @x\n    return r=%0\n  }\n"
      "  return y=%1\n}\n", "t.gir:3:24", "body input %0 is f32[B,B] but operand 0 is f32[B]",
      NULL);
    E("  %1 = neg %0 : f32[B] {\n    return\n  }\n  return y=%1\n}\n", "t.gir:3:24",
      "the body has 0 inputs for 1 operand", "in order");
    E("  %1 = neg %0 : f32[B] {\n    %0 = input : f32[B] @x\n    return r=%0\n  return y=%1\n}\n",
      "t.gir:6:3", "expected '}' after the return line, got 'return'",
      "close the block opened at line 3, column 24");
    E("  %1 = neg %0 : f32[B] {\n    %0 = neg %0 : f32[B]\n", "t.gir:4:14",
      "use of undefined value %0", NULL);
    check_error("grph g() {\n", "t.gir:1:1", "expected 'graph'", NULL);
    check_error("graph g(B, B) {\n", "t.gir:1:12", "symbol 'B' is declared twice", NULL);
    check_error("graph g(A,B,C,D,E,F,G,H,I) {\n", "t.gir:1:25", "more than 8 symbols", NULL);
    check_error("graph g() { x\n", "t.gir:1:13", "trailing junk 'x'", NULL);
    check_error("graph (B) {\n", "t.gir:1:7", "expected a graph name", NULL);
}
#undef E

/* Deep nesting and huge numbers are errors, never crashes. */
TEST(parse_limits)
{
    char *t = malloc(200000), *w = t;
    w += sprintf(w, "graph g() {\n  %%0 = input : f32[");
    for (int i = 0; i < 50000; i++)
        *w++ = '(';
    sprintf(w, "1");
    check_error(t, "t.gir:2:53", "nested too deeply", NULL);
    w = t + sprintf(t, "graph g() {\n  %%0 = input : f32[] @x\n");
    for (int d = 0; d < 12; d++)
        w += sprintf(w, "%%%d = neg %%0 : f32[] {\n%%0 = input : f32[] @x\n", d + 1);
    check_error(t, "t.gir:19:21", "nested more than 8 deep", NULL);
    check_error("graph g(B) {\n  %0 = input : f32[3037000500*3037000500] @x\n",
                "t.gir:2:30", "overflows", NULL);
    check_error("graph g(B) {\n  %0 = input : f32[-9223372036854775807-2] @x\n",
                "t.gir:2:40", "overflows", NULL);
    check_error("graph g(A,B,C,D) {\n  %0 = input : f32[A+B+C+D+1] @x\n", "t.gir:2:27",
                "more than 4 terms", NULL);
    free(t);
}

/* Fusion bodies nest up to 8 deep. */
TEST(parse_nested_bodies)
{
    char *t = malloc(8192), *w = t;
    w += sprintf(w, "graph g() {\n");
    for (int d = 0; d <= 8; d++)
        w += sprintf(w, "%%0 = input : f32[] @x\n%%1 = neg %%0 : f32[]%s\n", d < 8 ? " {" : "");
    for (int d = 0; d <= 8; d++)
        w += sprintf(w, "return r=%%1\n}\n");
    char *s = round_trip(t);
    CHECK(s && strstr(s, "                  %1 = neg %0 : f32[]\n                  return r=%1\n"));
    free(s);
    free(t);
}

TEST(parse_file)
{
    IrError err = {0};
    CHECK(ir_parse_file("/nonexistent/x.gir", &err) == NULL);
    CHECK(strstr(err.msg, "cannot open '/nonexistent/x.gir'") != NULL);
    char path[] = "/tmp/gradc_test_format_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("graph g() {\n  %0 = input : f32[2] @x\n  return x=%0\n}\n", f);
    fclose(f);
    IrGraph *g = ir_parse_file(path, &err);
    CHECK(g && g->nnodes == 1 && !strcmp(g->outs[0].name, "x"));
    ir_graph_free(g);
    remove(path);
}

/* err may be NULL; the last line needs no newline. */
TEST(parse_without_err)
{
    CHECK(ir_parse("graph", "t.gir", NULL) == NULL);
    CHECK(ir_parse("", "t.gir", NULL) == NULL);
    IrGraph *g = ir_parse("graph g() {\n  return\n}", NULL, NULL);
    CHECK(g != NULL);
    ir_graph_free(g);
}

int main(void)
{
    RUN(print_builder_graph);
    RUN(print_empty_graph);
    RUN(print_stale_index);
    RUN(print_attr_order);
    RUN(print_dims);
    RUN(parse_dim_expressions);
    RUN(print_floats);
    RUN(print_strings_and_names);
    RUN(print_body);
    RUN(parse_body_symbols);
    RUN(parse_loose_text);
    RUN(parse_attr_values);
    RUN(parse_errors);
    RUN(parse_errors_attrs);
    RUN(parse_errors_lines);
    RUN(parse_limits);
    RUN(parse_nested_bodies);
    RUN(parse_file);
    RUN(parse_without_err);
    return test_summary();
}
