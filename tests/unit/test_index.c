/* test_index.c — ir/index.c: the ranges of integer inputs and the bindings
 * that keep gathers by position inside their tables.
 *
 * 1. ir_index_use: a gather's rows, through movement ops; the smallest of
 *    several uses; cross_entropy classes and its ignore index; the one-hot
 *    of a decomposed cross_entropy; nothing for an input that indexes
 *    nothing.
 * 2. ir_index_check_values: the first value outside, with the op named.
 * 3. ir_index_sym_limit and ir_index_check_binding: an iota over T into a
 *    table of 16 rows bounds T by 16, and T = 17 is refused naming it.
 */
#include "ir/ir.h"
#include "passes/pass.h"
#include "testlib.h"

static const int64_t BIND[2] = {4, 8}; /* B, T */

static IrGraph *graph(void)
{
    IrGraph *g = ir_graph_new("t");
    ir_graph_sym(g, "B");
    ir_graph_sym(g, "T");
    return g;
}

static IrShape bt(void)
{
    return ir_shape_of(2, (IrDim[]){ir_dim_sym(0), ir_dim_sym(1)});
}

static IrNode *table(IrGraph *g, const char *name, int64_t rows)
{
    return ir_param(g, name, ir_shape_ints(2, (int64_t[]){rows, 3}), "normal", 0.02, true);
}

TEST(gather_rows_through_movement)
{
    IrGraph *g = graph();
    IrNode *idx = ir_input(g, "idx", DT_I32, bt());
    IrShape flat = ir_shape_of(1, (IrDim[]){ir_dim_sym(0)});
    IrDim bt1;
    ir_dim_mul(ir_dim_sym(0), ir_dim_sym(1), &bt1);
    flat.d[0] = bt1;
    IrError err = {0};
    IrNode *r = ir_node_new(g, OP_RESHAPE, &idx, 1, NULL, 0, NULL, &flat, &err);
    IrNode *emb = table(g, "emb", 50);
    IrNode *x = ir_binary(g, OP_GATHER, emb, r);
    ir_graph_add_output(g, "x", x);
    IrIndexUse u = ir_index_use(g, idx, BIND);
    CHECK(u.range == 50 && u.user == x && u.table == emb && !u.has_ignore);
    ir_graph_free(g);
}

TEST(smallest_use_and_targets)
{
    IrGraph *g = graph();
    IrNode *y = ir_input(g, "y", DT_I32, ir_shape_of(1, (IrDim[]){ir_dim_sym(0)}));
    IrNode *f = ir_input(g, "f", DT_I32, ir_shape_of(1, (IrDim[]){ir_dim_sym(0)}));
    IrNode *logits = ir_input(g, "logits", DT_F32,
                              ir_shape_of(2, (IrDim[]){ir_dim_sym(0), ir_dim_const(5)}));
    IrAttr ig = ir_attr_int(ATTR_IGNORE_INDEX, -1);
    IrNode *loss = ir_op2(g, OP_CROSS_ENTROPY, logits, y, &ig, 1);
    IrNode *e = ir_binary(g, OP_GATHER, table(g, "big", 9), f);
    IrNode *e2 = ir_binary(g, OP_GATHER, table(g, "small", 7), f);
    ir_graph_add_output(g, "loss", loss);
    ir_graph_add_output(g, "e", ir_binary(g, OP_ADD, e, e2));
    IrIndexUse u = ir_index_use(g, y, BIND);
    CHECK(u.range == 5 && u.user == loss && u.has_ignore && u.ignore == -1);
    IrIndexUse v = ir_index_use(g, f, BIND);
    CHECK(v.range == 7 && v.user == e2 && !v.has_ignore);
    CHECK(ir_index_use(g, logits, BIND).range == 0);
    IrError err = {0};
    CHECK(ir_index_check_values(&u, "y", (int32_t[]){0, 4, -1, 2}, 4, &err));
    CHECK(!ir_index_check_values(&u, "y", (int32_t[]){0, 4, 5, 2}, 4, &err));
    CHECK(strstr(err.msg, "input 'y' holds 5 at element 2, outside [0, 5)") != NULL);
    CHECK(strstr(err.msg, "cross_entropy") != NULL && strstr(err.hint, "ignore index -1"));
    IrError err2 = {0};
    CHECK(!ir_index_check_values(&v, "f", (int32_t[]){0, -1}, 2, &err2));
    CHECK(strstr(err2.msg, "the rows of 'small'") != NULL);
    ir_graph_free(g);
}

/* After decompose: the one-hot eq against an iota of the classes, and the
 * ignore test eq against a constant. */
TEST(decomposed_cross_entropy)
{
    IrGraph *g = graph();
    IrNode *y = ir_input(g, "y", DT_I32, ir_shape_of(1, (IrDim[]){ir_dim_sym(0)}));
    IrNode *logits = ir_input(g, "logits", DT_F32,
                              ir_shape_of(2, (IrDim[]){ir_dim_sym(0), ir_dim_const(5)}));
    ir_graph_add_output(g, "loss", ir_op2(g, OP_CROSS_ENTROPY, logits, y, NULL, 0));
    PassCtx ctx = pass_ctx_default(NULL);
    CHECK(pass_run_pipeline(g, "decompose", &ctx));
    IrIndexUse u = ir_index_use(g, y, BIND);
    CHECK(u.range == 5 && u.user->op == OP_EQ && u.has_ignore && u.ignore == -100);
    ir_graph_free(g);
}

TEST(positions_bound_their_symbol)
{
    IrGraph *g = graph();
    IrAttr ax = ir_attr_int(ATTR_AXIS, 0);
    IrError err = {0};
    IrShape ts = ir_shape_of(1, (IrDim[]){ir_dim_sym(1)});
    IrDType i32 = DT_I32;
    IrNode *pos = ir_node_new(g, OP_IOTA, NULL, 0, &ax, 1, &i32, &ts, &err);
    IrNode *pt = table(g, "pos_emb.weight", 16);
    IrNode *p = ir_binary(g, OP_GATHER, pt, pos);
    ir_graph_add_output(g, "p", p);
    const IrNode *t = NULL;
    CHECK(ir_index_sym_limit(g, 1, &t) == 16 && t == pt);
    CHECK(ir_index_sym_limit(g, 0, NULL) == 0);
    int sym;
    int64_t max;
    CHECK(ir_index_check_binding(g, (int64_t[]){4, 16}, &sym, &max, &err) && sym == -1);
    CHECK(!ir_index_check_binding(g, (int64_t[]){4, 17}, &sym, &max, &err));
    CHECK(sym == 1 && max == 16);
    CHECK(strstr(err.msg, "of 'pos_emb.weight', which has 16 rows: at T=17") != NULL);
    ir_graph_free(g);
}

int main(void)
{
    RUN(gather_rows_through_movement);
    RUN(smallest_use_and_targets);
    RUN(decomposed_cross_entropy);
    RUN(positions_bound_their_symbol);
    return test_summary();
}
