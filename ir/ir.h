/* ir.h — the one IR of gradc: graphs of tensor ops with symbolic shapes.
 *
 * A graph (IrGraph) is a list of nodes in a valid execution order (SSA:
 * every operand is defined by an earlier node).  A node *is* its tensor,
 * as in ggml: it carries the op, the operands (up to IR_MAX_IN, inline),
 * the attributes (inline), the dtype and the shape.  Every node, shape and
 * string lives in the graph's arena and is freed with the graph.
 *
 * Dims are polynomials over the graph's symbols (B, T, ...) with integer
 * coefficients, kept in a canonical form so that two dims are equal iff
 * their bytes are equal: `B*T`, `4*T`, `T+1`, `768`.  Config values from
 * the model file are already numbers; only dims left open (batch, context)
 * stay symbolic until the runtime binds them.
 *
 * Sections of this header follow the files that implement them:
 *   arena.c   IrArena           bump allocator
 *   dim.c     IrDim, IrShape    symbolic dims
 *   graph.c   IrGraph, IrNode   graph, builder, attributes
 *   shape.c                     shape and dtype rules of the op table
 *   verify.c                    the verifier
 *   print.c / parse.c           the text format (docs/ir.md)
 *   interp.c                    the reference interpreter (double precision)
 *   index.c                     integer inputs and the tables they index
 *   dot.c                       Graphviz export
 *
 * Example: build `y = sum(x * x)` for x : f32[B,4].
 *
 *   IrGraph *g = ir_graph_new("square");
 *   int B = ir_graph_sym(g, "B");
 *   IrShape s = ir_shape_of(2, (IrDim[]){ir_dim_sym(B), ir_dim_const(4)});
 *   IrNode *x = ir_input(g, "x", DT_F32, s);
 *   IrNode *sq = ir_binary(g, OP_MUL, x, x);
 *   IrNode *y = ir_reduce(g, OP_SUM, sq, (int[]){0, 1}, 2, false);
 *   ir_graph_add_output(g, "y", y);
 *   ir_print(g, stdout);
 *   ir_graph_free(g);
 */
#ifndef GRADC_IR_H
#define GRADC_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define IR_MAX_RANK  6
#define IR_MAX_IN    8
#define IR_MAX_ATTRS 6
#define IR_MAX_SYMS  8
#define IR_MAX_TERMS 4

/* ---------------------------------------------------------------- errors */

/* A user-facing error: a message, and where known a place (file:line:col or
 * a JSON path) and a hint.  Library code fills one and returns false/NULL;
 * only the CLI prints and exits. */
typedef struct IrError {
    char msg[512];
    char where[256];
    char hint[256];
    bool set;
} IrError;

void ir_error(IrError *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ir_error_where(IrError *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ir_error_hint(IrError *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "gradc: error: WHERE: MSG\n  hint: HINT\n". */
void ir_error_print(const IrError *e, FILE *f);

/* Broken invariants (bugs in gradc, not user errors) abort with file:line. */
#define IR_ASSERT(c) \
    ((c) ? (void)0 : ir_assert_fail(#c, __FILE__, __LINE__))
_Noreturn void ir_assert_fail(const char *cond, const char *file, int line);

/* ---------------------------------------------------------------- alloc.c */

/* Checked heap allocation: on failure they print the bytes and file:line
 * and exit 1; they never return NULL (alloc.c). */
#define ir_malloc(n) ir_malloc_at((n), __FILE__, __LINE__)
#define ir_calloc(count, size) ir_calloc_at((count), (size), __FILE__, __LINE__)
#define ir_realloc(p, n) ir_realloc_at((p), (n), __FILE__, __LINE__)
void *ir_malloc_at(size_t n, const char *file, int line);
void *ir_calloc_at(size_t count, size_t size, const char *file, int line);
void *ir_realloc_at(void *p, size_t n, const char *file, int line);

/* ---------------------------------------------------------------- arena.c */

typedef struct IrArena IrArena;

IrArena *ir_arena_new(void);
void ir_arena_free(IrArena *a);
void *ir_arena_alloc(IrArena *a, size_t n); /* zeroed, 16-byte aligned */
char *ir_arena_strdup(IrArena *a, const char *s);
char *ir_arena_strndup(IrArena *a, const char *s, size_t n);
size_t ir_arena_bytes(const IrArena *a);

/* ---------------------------------------------------------------- dim.c */

typedef struct IrTerm {
    int64_t coef;
    uint8_t exp[IR_MAX_SYMS]; /* power of each graph symbol */
} IrTerm;

/* Canonical polynomial: no zero coefficients, terms sorted, unused bytes 0. */
typedef struct IrDim {
    uint8_t n;
    IrTerm t[IR_MAX_TERMS];
} IrDim;

typedef struct IrShape {
    uint8_t rank;
    IrDim d[IR_MAX_RANK];
} IrShape;

IrDim ir_dim_const(int64_t v);
IrDim ir_dim_sym(int sym);
bool ir_dim_add(IrDim a, IrDim b, IrDim *out); /* false on overflow of terms */
bool ir_dim_sub(IrDim a, IrDim b, IrDim *out);
bool ir_dim_mul(IrDim a, IrDim b, IrDim *out);
bool ir_dim_div_const(IrDim a, int64_t c, IrDim *out); /* exact division only */
bool ir_dim_eq(IrDim a, IrDim b);
bool ir_dim_is_const(IrDim a, int64_t *v);
bool ir_dim_is_one(IrDim a);
/* Value under a binding of every symbol (binding[i] for symbol i). */
int64_t ir_dim_eval(IrDim a, const int64_t *binding);
/* Writes e.g. "B*T", "4*D+1", "768" into buf; returns the length. */
int ir_dim_str(IrDim a, const char *const *syms, char *buf, size_t cap);

IrShape ir_shape_of(int rank, const IrDim *dims);
IrShape ir_shape_ints(int rank, const int64_t *dims);
bool ir_shape_eq(const IrShape *a, const IrShape *b);
bool ir_shape_numel(const IrShape *s, IrDim *out);
/* "[B,T,768]" */
int ir_shape_str(const IrShape *s, const char *const *syms, char *buf, size_t cap);

/* ---------------------------------------------------------------- op table */

typedef enum IrOp {
#define OP(E, ...) OP_##E,
#include "ops.def"
#undef OP
    OP_COUNT
} IrOp;

typedef enum IrOpKind {
    OPK_SOURCE, OPK_ELEMWISE, OPK_REDUCE, OPK_MOVEMENT, OPK_OPAQUE, OPK_COMPOSITE, OPK_FUSED
} IrOpKind;

/* The columns of ops.def that every layer reads (see its header). */
typedef struct IrOpInfo {
    const char *name;
    int min_in, max_in;
    IrOpKind kind;
    double flops;          /* FLOPs per element of the op's cost rule (ir/cost.c) */
    int step;              /* operand index of the RNG step, or -1 */
    const char *keys;      /* attribute keys it takes, space-separated; NULL: any */
    int nondiff;           /* operand with no gradient, -1 every one, -2 none */
    const char *nondiff_why;
} IrOpInfo;

extern const IrOpInfo ir_ops[OP_COUNT];
const char *ir_op_name(IrOp op);
/* Returns OP_COUNT when unknown. */
IrOp ir_op_lookup(const char *name);
/* The known op name nearest to `name` (edit distance), for hints. */
const char *ir_op_nearest(const char *name);
const char *ir_opkind_name(IrOpKind k);
/* Ops that apply dropout keyed by attributes p and seed and an optional
 * step operand (ops.def's step column): dropout, causal_attention and its
 * gradient. */
bool ir_op_drops(IrOp op);

/* ---------------------------------------------------------------- dtypes */

typedef enum IrDType { DT_F32, DT_I32, DT_BOOL, DT_COUNT } IrDType;

const char *ir_dtype_name(IrDType t);
/* Returns DT_COUNT when unknown. */
IrDType ir_dtype_lookup(const char *name);
size_t ir_dtype_size(IrDType t);

/* ---------------------------------------------------------------- attributes */

typedef enum IrAttrKey {
#define ATTR(E, n, k) ATTR_##E,
#include "attrs.def"
#undef ATTR
    ATTR_COUNT
} IrAttrKey;

typedef enum IrAttrKind { AK_INT, AK_INTS, AK_FLOAT, AK_STR } IrAttrKind;

typedef struct IrAttr {
    uint8_t key;  /* IrAttrKey */
    uint8_t n;    /* number of ints for AK_INTS */
    int64_t i[IR_MAX_RANK];  /* AK_INT uses i[0] */
    double f;
    const char *s;           /* arena string */
} IrAttr;

const char *ir_attr_name(IrAttrKey k);
IrAttrKind ir_attr_kind(IrAttrKey k);
IrAttrKey ir_attr_lookup(const char *name); /* ATTR_COUNT when unknown */

IrAttr ir_attr_int(IrAttrKey k, int64_t v);
IrAttr ir_attr_ints(IrAttrKey k, const int64_t *v, int n);
IrAttr ir_attr_float(IrAttrKey k, double v);
/* s must outlive the node (copied by ir_node_new) */
IrAttr ir_attr_str(IrAttrKey k, const char *s);

/* ---------------------------------------------------------------- graph.c */

typedef struct IrGraph IrGraph;

typedef struct IrNode {
    int id;                  /* unique in the graph; creation order */
    int index;               /* position in g->nodes (ir_graph_reindex) */
    IrOp op;
    IrDType dtype;
    IrShape shape;
    int nin;
    struct IrNode *in[IR_MAX_IN];
    int nattr;
    IrAttr attr[IR_MAX_ATTRS];
    const char *name;        /* input/param name, or a debug name; may be NULL */
    IrGraph *body;           /* fusion body (passes/fuse.c); NULL otherwise */
    void *aux;               /* scratch for passes; not printed */
} IrNode;

typedef struct IrOutput {
    const char *name;
    IrNode *node;
} IrOutput;

struct IrGraph {
    IrArena *arena;
    const char *name;
    int nsym;
    const char *sym[IR_MAX_SYMS];
    IrNode **nodes;
    int nnodes, cap;
    IrOutput *outs;
    int nout, outcap;
    int next_id;
};

IrGraph *ir_graph_new(const char *name);
void ir_graph_free(IrGraph *g);
/* Index of symbol `name`, adding it if new; -1 when the table is full. */
int ir_graph_sym(IrGraph *g, const char *name);
int ir_graph_find_sym(const IrGraph *g, const char *name);
void ir_graph_add_output(IrGraph *g, const char *name, IrNode *n);
/* Appends an existing node (a pass re-ordering g) at the end of g's order,
 * setting its index; ir_node_new does this for new nodes. */
void ir_graph_append(IrGraph *g, IrNode *n);
IrNode *ir_graph_find(const IrGraph *g, IrOp op, const char *name);
/* Recomputes node->index after nodes were reordered or removed. */
void ir_graph_reindex(IrGraph *g);
/* Deep copy into a fresh arena. */
IrGraph *ir_graph_clone(const IrGraph *g);

/* The general builder.  `type_dt`/`type_shape` are used by ops whose rule
 * is `given` (and checked by reshape/broadcast/cast); pass NULL otherwise.
 * Runs the shape and dtype rules; on a mismatch returns NULL and fills err.
 * Attributes are copied (strings into the arena). */
IrNode *ir_node_new(IrGraph *g, IrOp op, IrNode *const *in, int nin,
                    const IrAttr *attrs, int nattr,
                    const IrDType *type_dt, const IrShape *type_shape,
                    IrError *err);

/* Convenience builders for passes and tests: they assert success. */
IrNode *ir_input(IrGraph *g, const char *name, IrDType dt, IrShape s);
IrNode *ir_param(IrGraph *g, const char *name, IrShape s, const char *init,
                 double std, bool trainable);
IrNode *ir_const(IrGraph *g, double v, IrDType dt, IrShape s);
IrNode *ir_unary(IrGraph *g, IrOp op, IrNode *a);
IrNode *ir_binary(IrGraph *g, IrOp op, IrNode *a, IrNode *b);
IrNode *ir_reduce(IrGraph *g, IrOp op, IrNode *a, const int *axes, int naxes, bool keepdim);
IrNode *ir_op1(IrGraph *g, IrOp op, IrNode *a, const IrAttr *attrs, int nattr);
IrNode *ir_op2(IrGraph *g, IrOp op, IrNode *a, IrNode *b, const IrAttr *attrs, int nattr);

/* Attribute access: NULL / default when absent. */
const IrAttr *ir_node_attr(const IrNode *n, IrAttrKey k);
int64_t ir_node_int(const IrNode *n, IrAttrKey k, int64_t dflt);
double ir_node_float(const IrNode *n, IrAttrKey k, double dflt);
const char *ir_node_str(const IrNode *n, IrAttrKey k, const char *dflt);
void ir_node_set_attr(IrGraph *g, IrNode *n, IrAttr a);

/* Replaces every use of `from` (operands and outputs) by `to`. */
void ir_replace_uses(IrGraph *g, IrNode *from, IrNode *to);
/* Number of elements if all dims are constant, else -1. */
int64_t ir_node_numel_const(const IrNode *n);

/* ---------------------------------------------------------------- shape.c */

/* Infers dtype and shape of `n` from its operands and attributes (and the
 * given type for `given` rules).  Fills err on a mismatch. */
bool ir_infer(const IrGraph *g, IrNode *n, IrError *err);
/* Normalizes a possibly negative axis; -1 if out of range. */
int ir_axis(int64_t axis, int rank);

/* ---------------------------------------------------------------- verify.c */

/* SSA order, operand counts, attributes, shapes, dtypes, outputs, bodies. */
bool ir_verify(const IrGraph *g, IrError *err);

/* ---------------------------------------------------------------- print.c / parse.c */

void ir_print(const IrGraph *g, FILE *f);
char *ir_print_str(const IrGraph *g); /* malloc'd */
/* `file` is used in error places only.  Returns NULL and fills err. */
IrGraph *ir_parse(const char *text, const char *file, IrError *err);
IrGraph *ir_parse_file(const char *path, IrError *err);

/* ---------------------------------------------------------------- interp.c */

/* A dense tensor of doubles, row-major.  The interpreter's value type. */
typedef struct IrTensor {
    IrDType dtype;
    int rank;
    int64_t dim[IR_MAX_RANK];
    int64_t numel;
    double *data;
} IrTensor;

IrTensor *ir_tensor_new(IrDType dt, int rank, const int64_t *dim);
void ir_tensor_free(IrTensor *t);

typedef struct IrInterp IrInterp;

/* binding[i] is the value of symbol i.  Inputs and params are set by name
 * before ir_interp_run; unset params are initialised from their init spec
 * with `seed`.  Returns NULL and fills err on a binding or shape error. */
IrInterp *ir_interp_new(const IrGraph *g, const int64_t *binding, uint64_t seed, IrError *err);
void ir_interp_free(IrInterp *it);
bool ir_interp_set(IrInterp *it, const char *name, const IrTensor *t, IrError *err);
bool ir_interp_run(IrInterp *it, IrError *err);
/* seed != 0: every f32 value gets a random relative error of up to one
 * float32 ulp and is rounded to float as it is computed, and sums round
 * their running total (off by default, 0).  A run so perturbed measures
 * the rounding noise of the graph itself (see interp.c). */
void ir_interp_noise_f32(IrInterp *it, uint64_t seed);
/* The value of any node after a run (owned by the interpreter). */
const IrTensor *ir_interp_value(const IrInterp *it, const IrNode *n);
const IrTensor *ir_interp_output(const IrInterp *it, const char *name);

/* ---------------------------------------------------------------- index.c */

/* The values an integer input may hold, from the ops that read it (through
 * movement ops): gather and scatter_add rows, cross_entropy classes.  Read
 * the graph before `decompose`.
 *
 *   IrIndexUse u = ir_index_use(g, x, binding);      // y of an MLP: [0, 5)
 *   if (!ir_index_check_values(&u, x->name, data, n, &err)) ...
 */
typedef struct IrIndexUse {
    int64_t range;          /* valid: [0, range), the smallest over the uses; 0: none */
    const IrNode *user;     /* the gather, scatter_add, cross_entropy or one-hot eq */
    const IrNode *table;    /* its table, or its logits (NULL for eq) */
    bool has_ignore;        /* targets only: `ignore` is valid too */
    int64_t ignore;
} IrIndexUse;

IrIndexUse ir_index_use(const IrGraph *g, const IrNode *x, const int64_t *binding);
/* False with err (naming the input, the element, the value and the table or
 * the classes) at the first value outside u. */
bool ir_index_check_values(const IrIndexUse *u, const char *name, const int32_t *v, int64_t n,
                           IrError *err);
/* The largest value of symbol `sym` such that every gather by an iota over
 * it (positions 0..sym-1) stays inside its table of constant rows; *table
 * (if not NULL): the smallest such table.  0 when no gather bounds it. */
int64_t ir_index_sym_limit(const IrGraph *g, int sym, const IrNode **table);
/* False with err (naming the gather and its table) when at `binding` a
 * gather by an iota reads past its table; *sym is then the symbol the iota
 * runs over (-1 when its length is not one symbol), *max its largest value
 * that fits. */
bool ir_index_check_binding(const IrGraph *g, const int64_t *binding, int *sym, int64_t *max,
                            IrError *err);

/* ---------------------------------------------------------------- dot.c */

typedef struct IrDotOptions {
    bool expand; /* draw every repeated block instead of collapsing them */
} IrDotOptions;

void ir_dot(const IrGraph *g, const IrDotOptions *opt, FILE *f);

#endif
