/* interp.c — the reference interpreter: every op in plain loops over doubles.
 *
 * This is the oracle of gradc.  Passes are checked by evaluating a graph
 * before and after them, codegen by comparing JIT kernels with it, and
 * autodiff by finite differences through it.  So it favours being
 * obviously right over being fast: one function per op (ir_interp_<name>,
 * dispatched through a table built from ops.def), double precision
 * throughout, row-major dense tensors, index arithmetic spelled out.
 * Matmul is a plain triple loop; that is fast enough for gpt-mini.
 *
 * Lifecycle.  ir_interp_new verifies the graph, evaluates every node's
 * shape under the binding of the symbols (B, T, ...) and allocates one
 * tensor per node; dims must be >= 1 and a tensor may hold at most
 * INTERP_MAX_NUMEL elements.  ir_interp_set copies a value into an input
 * or param.  ir_interp_run evaluates the nodes in graph order; inputs must
 * have been set, params that were not set are initialised once from their
 * init attribute (rng.h) and then kept, every other node is recomputed.
 * All values stay readable (ir_interp_value) until ir_interp_free.  A
 * fused node (passes/fuse.c) is evaluated by a nested interpreter over its
 * body, made at its first run and kept with the parent.
 *
 * Dtypes.  Every value is a double.  f32 values are not rounded (cast to
 * f32 does round, through float), unless ir_interp_noise_f32 asks for
 * noise: then every f32 value, once computed, gets a random relative error
 * of up to one float32 ulp (2^-23) and is rounded to float, and a sum's
 * running total is rounded at each step.  That is the error model of a
 * float32 evaluation, drawn at random so that errors do not cancel by
 * luck; the distance of such a run to the exact one estimates the rounding
 * noise that any float32 evaluation of the graph has (gradc verify's
 * noise floor).  i32 values are integers held exactly;
 * i32 div truncates toward zero, and wrap-around is not emulated.  bool
 * values are 0 or 1.  NaN propagates through maximum, minimum and max as
 * in PyTorch.  Errors on bad data (a gather index out of range, an unset
 * input) are IrErrors that name the node as `%INDEX op 'name'`.
 */
#include "ir.h"
#include "rng.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define INTERP_MAX_NUMEL ((int64_t)1 << 28)

struct IrInterp {
    const IrGraph *g;
    int64_t binding[IR_MAX_SYMS];
    uint64_t seed;
    IrTensor **val; /* val[i]: the value of g->nodes[i] */
    bool *pinned;   /* set by ir_interp_set, or an initialised param: kept by runs */
    IrInterp **sub; /* sub[i]: the interpreter of fused node i's body (made at its first run) */
    uint64_t noise; /* ir_interp_noise_f32: 0 off, else the seed of the perturbation */
};

typedef bool (*InterpFn)(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err);

/* ================================================================ tensors */

IrTensor *ir_tensor_new(IrDType dt, int rank, const int64_t *dim)
{
    if (rank < 0 || rank > IR_MAX_RANK)
        return NULL;
    IrTensor *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->dtype = dt;
    t->rank = rank;
    t->numel = 1;
    for (int i = 0; i < rank; i++) {
        if (dim[i] < 0 || (dim[i] && t->numel > INT64_MAX / 8 / dim[i])) {
            free(t);
            return NULL;
        }
        t->dim[i] = dim[i];
        t->numel *= dim[i];
    }
    t->data = calloc(t->numel ? (size_t)t->numel : 1, sizeof(double));
    if (!t->data) {
        free(t);
        return NULL;
    }
    return t;
}

void ir_tensor_free(IrTensor *t)
{
    if (t)
        free(t->data);
    free(t);
}

/* st[i]: elements between neighbours along axis i (row-major). */
static void strides_of(int rank, const int64_t *dim, int64_t *st)
{
    int64_t s = 1;
    for (int i = rank - 1; i >= 0; i--) {
        st[i] = s;
        s *= dim[i];
    }
}

/* Flat index k of a tensor of shape dim -> multi-index idx. */
static void unflatten(int64_t k, int rank, const int64_t *dim, int64_t *idx)
{
    for (int i = rank - 1; i >= 0; i--) {
        idx[i] = k % dim[i];
        k /= dim[i];
    }
}

/* Offset in t of element k of out, where out is t broadcast to out's shape
 * (numpy rules: dims right-aligned, size-1 axes of t repeat). */
static int64_t bcast_off(const IrTensor *t, const IrTensor *out, int64_t k)
{
    if (t->numel == out->numel)
        return k; /* no axis repeats: same element order */
    int64_t off = 0, stride = 1;
    for (int i = out->rank - 1, j = t->rank - 1; i >= 0 && j >= 0; i--, j--) {
        int64_t idx = k % out->dim[i];
        k /= out->dim[i];
        if (t->dim[j] != 1)
            off += idx * stride;
        stride *= t->dim[j];
    }
    return off;
}

/* Views t as [outer, len, inner] around axis ax. */
static void axis_split(const IrTensor *t, int ax, int64_t *outer, int64_t *len, int64_t *inner)
{
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < ax; i++)
        *outer *= t->dim[i];
    for (int i = ax + 1; i < t->rank; i++)
        *inner *= t->dim[i];
    *len = t->dim[ax];
}

/* ================================================================ helpers */

static const IrTensor *arg(const IrInterp *it, const IrNode *n, int i)
{
    return it->val[n->in[i]->index];
}

/* Fills err with "interp: %INDEX op 'name': MSG"; returns false. */
static bool node_fail(IrError *err, const IrNode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool node_fail(IrError *err, const IrNode *n, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n->name)
        ir_error(err, "interp: %%%d %s '%s': %s", n->index, ir_op_name(n->op), n->name, msg);
    else
        ir_error(err, "interp: %%%d %s: %s", n->index, ir_op_name(n->op), msg);
    return false;
}

/* The axis attribute normalised against rank; -1 when out of range. */
static int attr_axis(const IrNode *n, int rank, int64_t dflt)
{
    return ir_axis(ir_node_int(n, ATTR_AXIS, dflt), rank);
}

/* mask[i] for the axes in attribute `axes`; empty or absent = every axis. */
static void axes_mask(const IrNode *n, int rank, bool *mask)
{
    const IrAttr *a = ir_node_attr(n, ATTR_AXES);
    for (int i = 0; i < rank; i++)
        mask[i] = !a || a->n == 0;
    for (int i = 0; a && i < a->n; i++)
        mask[ir_axis(a->i[i], rank)] = true; /* in range: the verifier checked */
}

/* ================================================================ sources */

/* input: its value must have been set with ir_interp_set (run skips set
 * inputs, so reaching this function means it was not). */
static bool ir_interp_input(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    node_fail(err, n, "no value was set");
    ir_error_hint(err, "give a value for '%s' (ir_interp_set, or the command's input flags)",
                  n->name);
    return false;
}

/* param: unless set, initialised once from attribute init (rng.h): normal
 * (std), uniform (bound), zeros or ones, from the param's own stream. */
static bool ir_interp_param(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    const char *init = ir_node_str(n, ATTR_INIT, NULL);
    if (!init)
        return node_fail(err, n, "param was not set and has no init attribute");
    IrInitSampler s;
    if (!ir_init_begin(&s, n, it->seed))
        return node_fail(err, n, "unknown init '%s' (expected " IR_INIT_KINDS ")", init);
    for (int64_t i = 0; i < out->numel; i++)
        out->data[i] = ir_init_next(&s);
    it->pinned[n->index] = true;
    return true;
}

/* const: every element is attribute value (default 0). */
static bool ir_interp_const(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    double v = ir_node_float(n, ATTR_VALUE, 0.0);
    for (int64_t i = 0; i < out->numel; i++)
        out->data[i] = v;
    return true;
}

/* iota: each element is its index along attribute axis. */
static bool ir_interp_iota(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    int64_t outer, len, inner;
    axis_split(out, attr_axis(n, out->rank, 0), &outer, &len, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < len; i++)
            for (int64_t r = 0; r < inner; r++)
                out->data[(o * len + i) * inner + r] = (double)i;
    return true;
}

/* ================================================================ elementwise */

static bool map1(IrInterp *it, const IrNode *n, IrTensor *out, double (*f)(double))
{
    const IrTensor *x = arg(it, n, 0);
    for (int64_t i = 0; i < out->numel; i++)
        out->data[i] = f(x->data[i]);
    return true;
}

static double f_neg(double x) { return -x; }
static double f_rsqrt(double x) { return 1.0 / sqrt(x); }
static double f_recip(double x) { return 1.0 / x; }
static double f_relu(double x) { return x > 0 || isnan(x) ? x : 0.0; }
static double f_f32(double x) { return (double)(float)x; }
static double f_bool(double x) { return x != 0; }

/* i32: toward zero, saturating at the i32 range; NaN gives 0. */
static double f_i32(double x)
{
    if (isnan(x))
        return 0;
    x = trunc(x);
    return x > INT32_MAX ? INT32_MAX : x < INT32_MIN ? INT32_MIN : x;
}

/* The elementwise rules of one operand: ir_interp_NAME applies F. */
#define MAP1(name, f) \
    static bool ir_interp_##name(IrInterp *it, const IrNode *n, IrTensor *o, IrError *e) \
    { \
        return map1(it, n, o, f); \
    }
MAP1(neg, f_neg)
MAP1(exp, exp)
MAP1(log, log)
MAP1(sqrt, sqrt)
MAP1(rsqrt, f_rsqrt)
MAP1(tanh, tanh)
MAP1(recip, f_recip)
MAP1(abs, fabs)
MAP1(relu, f_relu)
MAP1(sin, sin)
MAP1(cos, cos)
#undef MAP1

/* cast to the node's dtype: f32 rounds through float, i32 truncates toward
 * zero, bool is x != 0. */
static bool ir_interp_cast(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    switch (n->dtype) {
    case DT_F32: return map1(it, n, out, f_f32);
    case DT_I32: return map1(it, n, out, f_i32);
    default:     return map1(it, n, out, f_bool);
    }
}

/* dropout(x[, step]) with attributes p (default 0) and seed (default 0):
 * x * ir_dropout_keep(seed, step, flat index, p); step is 0 when absent. */
static bool ir_interp_dropout(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    const IrTensor *x = arg(it, n, 0);
    double p = ir_node_float(n, ATTR_P, 0.0);
    uint64_t seed = (uint64_t)ir_node_int(n, ATTR_SEED, 0), step = 0;
    if (!(p >= 0 && p <= 1))
        return node_fail(err, n, "p = %g is outside [0, 1]", p);
    if (n->nin == 2) {
        if (arg(it, n, 1)->numel != 1)
            return node_fail(err, n, "step must hold one element");
        step = (uint64_t)(int64_t)arg(it, n, 1)->data[0];
    }
    for (int64_t i = 0; i < out->numel; i++)
        out->data[i] = p == 0 ? x->data[i] : x->data[i] * ir_dropout_keep(seed, step, i, p);
    return true;
}

/* out[k] = f(a[k'], b[k'']) with both operands broadcast to out. */
static bool map2(IrInterp *it, const IrNode *n, IrTensor *out, double (*f)(double, double))
{
    const IrTensor *a = arg(it, n, 0), *b = arg(it, n, 1);
    for (int64_t k = 0; k < out->numel; k++)
        out->data[k] = f(a->data[bcast_off(a, out, k)], b->data[bcast_off(b, out, k)]);
    return true;
}

static double f_add(double a, double b) { return a + b; }
static double f_sub(double a, double b) { return a - b; }
static double f_mul(double a, double b) { return a * b; }
static double f_div(double a, double b) { return a / b; }
static double f_max(double a, double b) { return isnan(a) || isnan(b) ? NAN : a > b ? a : b; }
static double f_min(double a, double b) { return isnan(a) || isnan(b) ? NAN : a < b ? a : b; }
static double f_lt(double a, double b) { return a < b; }
static double f_le(double a, double b) { return a <= b; }
static double f_eq(double a, double b) { return a == b; }

/* The elementwise rules of two operands (broadcast): ir_interp_NAME applies F. */
#define MAP2(name, f) \
    static bool ir_interp_##name(IrInterp *it, const IrNode *n, IrTensor *o, IrError *e) \
    { \
        return map2(it, n, o, f); \
    }
MAP2(add, f_add)
MAP2(sub, f_sub)
MAP2(mul, f_mul)
MAP2(maximum, f_max)
MAP2(minimum, f_min)
MAP2(lt, f_lt)
MAP2(le, f_le)
MAP2(eq, f_eq)
#undef MAP2

/* div: a / b; for i32, C integer division (toward zero), and b = 0 is an error. */
static bool ir_interp_div(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    map2(it, n, out, f_div);
    if (n->dtype != DT_I32)
        return true;
    for (int64_t k = 0; k < out->numel; k++) {
        if (!isfinite(out->data[k]))
            return node_fail(err, n, "integer division by zero at element %lld", (long long)k);
        out->data[k] = trunc(out->data[k]);
    }
    return true;
}

/* where(cond, a, b): a where cond != 0, else b; all three broadcast. */
static bool ir_interp_where(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    const IrTensor *c = arg(it, n, 0), *a = arg(it, n, 1), *b = arg(it, n, 2);
    for (int64_t k = 0; k < out->numel; k++)
        out->data[k] = c->data[bcast_off(c, out, k)] != 0 ? a->data[bcast_off(a, out, k)]
                                                           : b->data[bcast_off(b, out, k)];
    return true;
}

/* ================================================================ reductions */

enum { RED_SUM, RED_MAX };

/* Reduces x over attribute axes into out (same element order with or
 * without keepdim): out starts at the identity and each input element, in
 * row-major order, is folded into the output element it maps to (the
 * running sum rounded to float at each step under ir_interp_noise_f32). */
static void reduce(IrInterp *it, const IrNode *n, IrTensor *out, int kind)
{
    const IrTensor *x = arg(it, n, 0);
    bool mask[IR_MAX_RANK];
    int64_t ost[IR_MAX_RANK], idx[IR_MAX_RANK], s = 1;
    axes_mask(n, x->rank, mask);
    for (int i = x->rank - 1; i >= 0; i--) { /* strides of the kept axes in out */
        ost[i] = mask[i] ? 0 : s;
        s *= mask[i] ? 1 : x->dim[i];
    }
    for (int64_t k = 0; k < out->numel; k++)
        out->data[k] = kind == RED_SUM ? 0.0 : -INFINITY;
    for (int64_t k = 0; k < x->numel; k++) {
        int64_t o = 0;
        unflatten(k, x->rank, x->dim, idx);
        for (int i = 0; i < x->rank; i++)
            o += idx[i] * ost[i];
        double v = x->data[k], *acc = &out->data[o];
        if (kind == RED_SUM)
            *acc = it->noise && out->dtype == DT_F32 ? (float)(*acc + v) : *acc + v;
        else if (v > *acc || isnan(v))
            *acc = isnan(*acc) ? *acc : v;
    }
}

/* sum over attribute axes (empty or absent = all), keepdim keeps them as 1. */
static bool ir_interp_sum(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    reduce(it, n, out, RED_SUM);
    return true;
}

/* max over attribute axes; NaN wins. */
static bool ir_interp_max(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    reduce(it, n, out, RED_MAX);
    return true;
}

/* mean: the sum divided by the number of elements reduced into each output. */
static bool ir_interp_mean(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    double count = (double)(arg(it, n, 0)->numel / out->numel);
    reduce(it, n, out, RED_SUM);
    for (int64_t k = 0; k < out->numel; k++)
        out->data[k] /= count;
    return true;
}

/* ================================================================ data movement */

/* reshape: the same elements in the same row-major order. */
static bool ir_interp_reshape(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    memcpy(out->data, arg(it, n, 0)->data, out->numel * sizeof(double));
    return true;
}

/* transpose: out[i0, ..., ir] = x[j] with j[perm[d]] = i[d]. */
static bool ir_interp_transpose(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    const IrTensor *x = arg(it, n, 0);
    const IrAttr *perm = ir_node_attr(n, ATTR_PERM);
    int64_t xst[IR_MAX_RANK], st[IR_MAX_RANK], idx[IR_MAX_RANK];
    strides_of(x->rank, x->dim, xst);
    for (int d = 0; d < out->rank; d++)
        st[d] = xst[ir_axis(perm->i[d], x->rank)]; /* step in x per step along out axis d */
    for (int64_t k = 0; k < out->numel; k++) {
        int64_t off = 0;
        unflatten(k, out->rank, out->dim, idx);
        for (int d = 0; d < out->rank; d++)
            off += idx[d] * st[d];
        out->data[k] = x->data[off];
    }
    return true;
}

/* broadcast: x repeated along its size-1 (and missing leading) axes to the
 * node's shape. */
static bool ir_interp_broadcast(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    const IrTensor *x = arg(it, n, 0);
    for (int64_t k = 0; k < out->numel; k++)
        out->data[k] = x->data[bcast_off(x, out, k)];
    return true;
}

/* slice: x[..., start:end, ...] along attribute axis. */
static bool ir_interp_slice(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    const IrTensor *x = arg(it, n, 0);
    int ax = attr_axis(n, x->rank, 0);
    int64_t start = ir_node_int(n, ATTR_START, 0), outer, len, inner;
    if (ir_node_int(n, ATTR_END, 0) > x->dim[ax])
        return node_fail(err, n, "end %lld is past the size %lld of axis %d",
                         (long long)ir_node_int(n, ATTR_END, 0), (long long)x->dim[ax], ax);
    axis_split(out, ax, &outer, &len, &inner);
    for (int64_t o = 0; o < outer; o++)
        memcpy(out->data + o * len * inner, x->data + (o * x->dim[ax] + start) * inner,
               len * inner * sizeof(double));
    return true;
}

/* concat: the operands one after another along attribute axis. */
static bool ir_interp_concat(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    int ax = attr_axis(n, out->rank, 0);
    int64_t outer, len, inner, at = 0;
    axis_split(out, ax, &outer, &len, &inner);
    for (int j = 0; j < n->nin; j++) {
        const IrTensor *x = arg(it, n, j);
        int64_t xl = x->dim[ax];
        for (int64_t o = 0; o < outer; o++)
            memcpy(out->data + (o * len + at) * inner, x->data + o * xl * inner,
                   xl * inner * sizeof(double));
        at += xl;
    }
    return true;
}

/* ================================================================ matmul, gather */

/* c[m, j0:j0+W] for W <= 8 columns at once: W independent sums, each over
 * ascending k from 0.0, exactly as the plain triple loop adds them.  (The
 * unrolled loop keeps the 8 sums in registers.) */
#define MM_COLS(W)                                                            \
    do {                                                                      \
        double acc[8] = {0};                                                  \
        for (int64_t k = 0; k < K; k++) {                                     \
            double av = a[m * sam + k * sak];                                 \
            const double *bk = b + k * sbk + j0 * sbn;                        \
            _Pragma("GCC unroll 8")                                           \
            for (int x = 0; x < (W); x++)                                     \
                acc[x] += av * bk[x * sbn];                                   \
        }                                                                     \
        for (int x = 0; x < (W); x++)                                         \
            c[m * N + j0 + x] = acc[x];                                       \
    } while (0)

/* c[M,N] = a[M,K] @ b[K,N], element (m,k) of a at a[m*sam + k*sak] and
 * (k,n) of b at b[k*sbk + n*sbn].  Columns go 8 at a time (8 sums in
 * registers; the 8 columns of b stay in cache for every row of a). */
static void mm2(const double *a, int64_t sam, int64_t sak, const double *b, int64_t sbk,
                int64_t sbn, double *c, int64_t M, int64_t N, int64_t K)
{
    int64_t j0 = 0;
    for (; j0 + 8 <= N; j0 += 8)
        for (int64_t m = 0; m < M; m++)
            MM_COLS(8);
    for (int64_t m = 0; m < M && j0 < N; m++)
        MM_COLS(N - j0);
}

/* The leading (batch) dims of t as a tensor header, for bcast_off. */
static IrTensor batch_view(const IrTensor *t)
{
    IrTensor v = *t;
    v.rank = t->rank - 2;
    v.numel = t->numel / (t->dim[t->rank - 2] * t->dim[t->rank - 1]);
    return v;
}

/* matmul(a[..., M, K], b[..., K, N]) -> [..., M, N], leading dims
 * broadcast; ta=1 reads a as [..., K, M], tb=1 reads b as [..., N, K]. */
static bool ir_interp_matmul(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    const IrTensor *a = arg(it, n, 0), *b = arg(it, n, 1);
    bool ta = ir_node_int(n, ATTR_TA, 0), tb = ir_node_int(n, ATTR_TB, 0);
    int64_t M = out->dim[out->rank - 2], N = out->dim[out->rank - 1];
    int64_t K = a->dim[a->rank - (ta ? 2 : 1)];
    IrTensor av = batch_view(a), bv = batch_view(b), ov = batch_view(out);
    for (int64_t bi = 0; bi < ov.numel; bi++) {
        const double *pa = a->data + bcast_off(&av, &ov, bi) * M * K;
        const double *pb = b->data + bcast_off(&bv, &ov, bi) * K * N;
        mm2(pa, ta ? 1 : K, ta ? M : 1, pb, tb ? 1 : N, tb ? K : 1, out->data + bi * M * N,
            M, N, K);
    }
    return true;
}

/* gather(table[V, R...], idx[I...]) -> [I..., R...]: out[i, r] = table[idx[i], r].
 * An index outside [0, V) is an error. */
static bool ir_interp_gather(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    const IrTensor *table = arg(it, n, 0), *idx = arg(it, n, 1);
    int64_t V = table->dim[0], R = table->numel / V;
    for (int64_t i = 0; i < idx->numel; i++) {
        double v = idx->data[i];
        if (!(v >= 0 && v < (double)V))
            return node_fail(err, n, "index %g at position %lld is outside [0, %lld)", v,
                             (long long)i, (long long)V);
        memcpy(out->data + i * R, table->data + (int64_t)v * R, R * sizeof(double));
    }
    return true;
}

/* ---------------------------------------------------------------- causal attention */

/* One causal_attention[_grad] node: qkv rows [lead, T, 3D] hold q | k | v;
 * head h of row t is the hd = D/H columns from h*hd of each third. */
typedef struct Att {
    int64_t lead, T, D, H, hd;
    double scale, p;
    uint64_t seed, step;
    const double *qkv;
} Att;

static bool att_setup(IrInterp *it, const IrNode *n, Att *a, IrError *err)
{
    const IrTensor *x = arg(it, n, 0);
    int nf = n->op == OP_CAUSAL_ATTENTION ? 1 : 3;
    a->T = x->dim[x->rank - 2];
    a->D = x->dim[x->rank - 1] / 3;
    a->H = ir_node_int(n, ATTR_HEADS, 1);
    a->hd = a->D / a->H;
    a->lead = a->T ? x->numel / (a->T * 3 * a->D) : 0;
    a->scale = ir_node_float(n, ATTR_SCALE, 1.0);
    a->p = ir_node_float(n, ATTR_P, 0.0);
    a->seed = (uint64_t)ir_node_int(n, ATTR_SEED, 0);
    a->step = 0;
    a->qkv = x->data;
    if (!(a->p >= 0 && a->p < 1))
        return node_fail(err, n, "p = %g is outside [0, 1)", a->p);
    if (n->nin > nf) {
        if (arg(it, n, nf)->numel != 1)
            return node_fail(err, n, "step must hold one element");
        a->step = (uint64_t)(int64_t)arg(it, n, nf)->data[0];
    }
    return true;
}

/* Head h's columns of third `part` (0 q, 1 k, 2 v) of row t of batch b. */
static const double *att_vec(const Att *a, int part, int64_t b, int64_t t, int64_t h)
{
    return a->qkv + (b * a->T + t) * 3 * a->D + part * a->D + h * a->hd;
}

/* The dropout multiplier of weight (i, j): the flat index of the
 * [lead, H, T, T] weights, as dropout after softmax in the primitive graph. */
static double att_keep(const Att *a, int64_t b, int64_t h, int64_t i, int64_t j)
{
    if (a->p == 0)
        return 1.0;
    return ir_dropout_keep(a->seed, a->step, ((b * a->H + h) * a->T + i) * a->T + j, a->p);
}

/* w[0..i]: softmax over j <= i of scale * q_i . k_j (the masked j > i are 0). */
static void att_weights(const Att *a, int64_t b, int64_t h, int64_t i, double *w)
{
    const double *q = att_vec(a, 0, b, i, h);
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j <= i; j++) {
        const double *k = att_vec(a, 1, b, j, h);
        double s = 0;
        for (int64_t c = 0; c < a->hd; c++)
            s += q[c] * k[c];
        w[j] = s * a->scale;
        mx = fmax(mx, w[j]);
    }
    for (int64_t j = 0; j <= i; j++)
        sum += (w[j] = exp(w[j] - mx));
    for (int64_t j = 0; j <= i; j++)
        w[j] /= sum;
}

static bool ir_interp_causal_attention(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    Att a;
    if (!att_setup(it, n, &a, err))
        return false;
    double *w = malloc((size_t)(a.T ? a.T : 1) * sizeof *w);
    if (!w)
        return node_fail(err, n, "out of memory");
    memset(out->data, 0, (size_t)out->numel * sizeof(double));
    for (int64_t b = 0; b < a.lead; b++)
        for (int64_t h = 0; h < a.H; h++)
            for (int64_t i = 0; i < a.T; i++) {
                double *o = out->data + (b * a.T + i) * a.D + h * a.hd;
                att_weights(&a, b, h, i, w);
                for (int64_t j = 0; j <= i; j++) {
                    const double *v = att_vec(&a, 2, b, j, h);
                    double wk = w[j] * att_keep(&a, b, h, i, j);
                    for (int64_t c = 0; c < a.hd; c++)
                        o[c] += wk * v[c];
                }
            }
    free(w);
    return true;
}

/* The gradient of one row i of head (b, h) into dqkv: with P the weights,
 * z the dropout multipliers and g_j = z_ij dout_i . v_j,
 *   dv_j += P_ij z_ij dout_i,  dS_ij = P_ij (g_j - sum_k P_ik g_k),
 *   dq_i += scale sum_j dS_ij k_j,  dk_j += scale dS_ij q_i. */
static void att_grad_row(const Att *a, const double *dout, double *dqkv, int64_t b, int64_t h,
                         int64_t i, double *w, double *g)
{
    const double *q = att_vec(a, 0, b, i, h), *go = dout + (b * a->T + i) * a->D + h * a->hd;
    double dot = 0;
    att_weights(a, b, h, i, w);
    for (int64_t j = 0; j <= i; j++) {
        const double *v = att_vec(a, 2, b, j, h);
        double z = att_keep(a, b, h, i, j), s = 0;
        for (int64_t c = 0; c < a->hd; c++)
            s += go[c] * v[c];
        g[j] = z * s;
        dot += w[j] * g[j];
        double *dv = dqkv + (v - a->qkv);
        for (int64_t c = 0; c < a->hd; c++)
            dv[c] += w[j] * z * go[c];
    }
    double *dq = dqkv + (q - a->qkv);
    for (int64_t j = 0; j <= i; j++) {
        double ds = w[j] * (g[j] - dot) * a->scale;
        const double *k = att_vec(a, 1, b, j, h);
        double *dk = dqkv + (k - a->qkv);
        for (int64_t c = 0; c < a->hd; c++) {
            dq[c] += ds * k[c];
            dk[c] += ds * q[c];
        }
    }
}

static bool ir_interp_causal_attention_grad(IrInterp *it, const IrNode *n, IrTensor *out,
                                            IrError *err)
{
    Att a;
    if (!att_setup(it, n, &a, err))
        return false;
    double *w = malloc((size_t)(a.T ? a.T : 1) * 2 * sizeof *w);
    if (!w)
        return node_fail(err, n, "out of memory");
    memset(out->data, 0, (size_t)out->numel * sizeof(double));
    for (int64_t b = 0; b < a.lead; b++)
        for (int64_t h = 0; h < a.H; h++)
            for (int64_t i = 0; i < a.T; i++)
                att_grad_row(&a, arg(it, n, 2)->data, out->data, b, h, i, w, w + a.T);
    free(w);
    return true;
}

/* scatter_add(base[V, R...], idx[I...], src[I..., R...]) -> [V, R...]:
 * out = base, then out[idx[i], r] += src[i, r] in index order (repeated
 * indices accumulate).  An index outside [0, V) is an error. */
static bool ir_interp_scatter_add(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    const IrTensor *base = arg(it, n, 0), *idx = arg(it, n, 1), *src = arg(it, n, 2);
    int64_t V = base->dim[0], R = base->numel / V;
    memcpy(out->data, base->data, base->numel * sizeof(double));
    for (int64_t i = 0; i < idx->numel; i++) {
        double v = idx->data[i];
        if (!(v >= 0 && v < (double)V))
            return node_fail(err, n, "index %g at position %lld is outside [0, %lld)", v,
                             (long long)i, (long long)V);
        for (int64_t r = 0; r < R; r++)
            out->data[(int64_t)v * R + r] += src->data[i * R + r];
    }
    return true;
}

/* ================================================================ composites */

/* softmax along attribute axis (default -1): exp(x - max) / sum exp(x - max).
 * A row that is entirely -inf gives NaN, as in PyTorch. */
static bool softmax_like(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err, bool logsm)
{
    const IrTensor *x = arg(it, n, 0);
    int ax = attr_axis(n, x->rank, -1);
    int64_t outer, len, in;
    if (ax < 0)
        return node_fail(err, n, "axis %lld is out of range for rank %d",
                         (long long)ir_node_int(n, ATTR_AXIS, -1), x->rank);
    axis_split(x, ax, &outer, &len, &in);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t r = 0; r < in; r++) {
            const double *xs = x->data + o * len * in + r;
            double *ys = out->data + o * len * in + r, mx = -INFINITY, sum = 0;
            for (int64_t i = 0; i < len; i++)
                mx = xs[i * in] > mx ? xs[i * in] : mx;
            for (int64_t i = 0; i < len; i++)
                sum += exp(xs[i * in] - mx);
            for (int64_t i = 0; i < len; i++)
                ys[i * in] = logsm ? xs[i * in] - mx - log(sum) : exp(xs[i * in] - mx) / sum;
        }
    return true;
}

static bool ir_interp_softmax(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    return softmax_like(it, n, out, err, false);
}

/* log_softmax along attribute axis: x - max - log(sum exp(x - max)). */
static bool ir_interp_log_softmax(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    return softmax_like(it, n, out, err, true);
}

/* layernorm(x[..., D], scale[D], shift[D]) over the last axis, biased
 * variance (PyTorch): (x - mean) / sqrt(var + eps) * scale + shift, eps
 * attribute (default 1e-5). */
static bool ir_interp_layernorm(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    const IrTensor *x = arg(it, n, 0), *scale = arg(it, n, 1), *shift = arg(it, n, 2);
    int64_t D = x->dim[x->rank - 1], rows = x->numel / D;
    double eps = ir_node_float(n, ATTR_EPS, 1e-5);
    for (int64_t r = 0; r < rows; r++) {
        const double *xs = x->data + r * D;
        double *ys = out->data + r * D, mean = 0, var = 0;
        for (int64_t d = 0; d < D; d++)
            mean += xs[d];
        mean /= (double)D;
        for (int64_t d = 0; d < D; d++)
            var += (xs[d] - mean) * (xs[d] - mean);
        var /= (double)D;
        double rstd = 1.0 / sqrt(var + eps);
        for (int64_t d = 0; d < D; d++)
            ys[d] = (xs[d] - mean) * rstd * scale->data[d] + shift->data[d];
    }
    return true;
}

/* gelu, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
static double f_gelu(double x)
{
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

static bool ir_interp_gelu(IrInterp *it, const IrNode *n, IrTensor *o, IrError *e)
{
    return map1(it, n, o, f_gelu);
}

/* causal_mask(x[..., Tq, Tk]): element (i, j) becomes -inf when
 * j > i + (Tk - Tq) (query i sees keys up to its own position, with the
 * queries aligned to the end of the keys, as with a KV cache). */
static bool ir_interp_causal_mask(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    const IrTensor *x = arg(it, n, 0);
    int64_t Tq = x->dim[x->rank - 2], Tk = x->dim[x->rank - 1];
    for (int64_t k = 0; k < out->numel; k++) {
        int64_t i = k / Tk % Tq, j = k % Tk;
        out->data[k] = j > i + (Tk - Tq) ? -INFINITY : x->data[k];
    }
    return true;
}

/* cross_entropy(logits[..., V], targets[...]) -> []: the mean, over the
 * targets that are not ignore_index (attribute, default -100), of
 * logsumexp(row) - row[target].  When every target is ignored the result
 * is 0 (PyTorch gives NaN): an empty batch adds nothing to a loss.  A
 * target outside [0, V) that is not the ignore index is an error. */
static bool ir_interp_cross_entropy(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    const IrTensor *x = arg(it, n, 0), *t = arg(it, n, 1);
    int64_t V = x->dim[x->rank - 1], ignore = ir_node_int(n, ATTR_IGNORE_INDEX, -100), count = 0;
    double total = 0;
    for (int64_t r = 0; r < t->numel; r++) {
        double tv = t->data[r];
        if (tv == (double)ignore)
            continue;
        if (!(tv >= 0 && tv < (double)V))
            return node_fail(err, n, "target %g at position %lld is outside [0, %lld)", tv,
                             (long long)r, (long long)V);
        const double *row = x->data + r * V;
        double mx = -INFINITY, sum = 0;
        for (int64_t v = 0; v < V; v++)
            mx = row[v] > mx ? row[v] : mx;
        for (int64_t v = 0; v < V; v++)
            sum += exp(row[v] - mx);
        total += mx + log(sum) - row[(int64_t)tv];
        count++;
    }
    out->data[0] = count ? total / (double)count : 0.0;
    return true;
}

/* ================================================================ fused kernels */

/* The interpreter of n's body, made at n's first evaluation and kept. */
static IrInterp *fused_sub(IrInterp *it, const IrNode *n, IrError *err)
{
    if (!it->sub)
        it->sub = calloc(it->g->nnodes, sizeof *it->sub);
    if (!it->sub) {
        node_fail(err, n, "out of memory");
        return NULL;
    }
    if (!it->sub[n->index]) {
        IrError e = {0};
        it->sub[n->index] = ir_interp_new(n->body, it->binding, it->seed, &e);
        if (!it->sub[n->index])
            node_fail(err, n, "body: %s", e.msg);
        else
            it->sub[n->index]->noise = it->noise;
    }
    return it->sub[n->index];
}

/* fused(x...) { body }: the body evaluated on the operands' values, in
 * its own interpreter (the body's input k is operand k); the value is
 * the body's one output. */
static bool ir_interp_fused(IrInterp *it, const IrNode *n, IrTensor *out, IrError *err)
{
    IrInterp *sub = fused_sub(it, n, err);
    if (!sub)
        return false;
    const IrGraph *b = n->body;
    for (int i = 0, k = 0; i < b->nnodes; i++) {
        if (b->nodes[i]->op != OP_INPUT)
            continue;
        const IrTensor *x = arg(it, n, k++);
        memcpy(sub->val[i]->data, x->data, x->numel * sizeof(double));
        sub->pinned[i] = true;
    }
    IrError e = {0};
    if (!ir_interp_run(sub, &e))
        return node_fail(err, n, "body: %s", e.msg);
    const IrTensor *y = sub->val[b->outs[0].node->index];
    memcpy(out->data, y->data, out->numel * sizeof(double));
    return true;
}

/* ================================================================ dispatch */

static const InterpFn interp_fns[OP_COUNT] = {
#define OP(E, n, ...) [OP_##E] = ir_interp_##n,
#include "ops.def"
#undef OP
};

/* ================================================================ the interpreter */

/* A dim's value under the binding; false on overflow or a value <= 0. */
static bool eval_dim(IrDim d, const int64_t *binding, int64_t *out)
{
    int64_t sum = 0;
    for (int i = 0; i < d.n; i++) {
        int64_t v = d.t[i].coef;
        for (int s = 0; s < IR_MAX_SYMS; s++)
            for (int e = 0; e < d.t[i].exp[s]; e++)
                if (__builtin_mul_overflow(v, binding[s], &v))
                    return false;
        if (__builtin_add_overflow(sum, v, &sum))
            return false;
    }
    *out = sum;
    return sum > 0;
}

/* Allocates the value of node n with its shape under the binding. */
static bool alloc_value(IrInterp *it, const IrNode *n, IrError *err)
{
    int64_t dim[IR_MAX_RANK], numel = 1;
    for (int i = 0; i < n->shape.rank; i++) {
        char s[128];
        ir_dim_str(n->shape.d[i], it->g->sym, s, sizeof s);
        if (!eval_dim(n->shape.d[i], it->binding, &dim[i]))
            return node_fail(err, n, "dim %d (%s) is not a positive size under the binding", i,
                             s);
        if (dim[i] > INTERP_MAX_NUMEL / numel)
            return node_fail(err, n, "more than %lld elements", (long long)INTERP_MAX_NUMEL);
        numel *= dim[i];
    }
    it->val[n->index] = ir_tensor_new(n->dtype, n->shape.rank, dim);
    if (!it->val[n->index])
        return node_fail(err, n, "out of memory for %lld elements", (long long)numel);
    return true;
}

static bool check_binding(const IrGraph *g, const int64_t *binding, IrError *err)
{
    if (g->nsym > 0 && !binding) {
        ir_error(err, "interp: graph '%s' has symbolic dims (%s%s) but no binding was given",
                 g->name, g->sym[0], g->nsym > 1 ? ", ..." : "");
        return false;
    }
    for (int i = 0; i < g->nsym; i++)
        if (binding[i] < 1 || binding[i] > INTERP_MAX_NUMEL) {
            ir_error(err, "interp: symbol %s is bound to %lld; sizes must be in [1, %lld]",
                     g->sym[i], (long long)binding[i], (long long)INTERP_MAX_NUMEL);
            return false;
        }
    return true;
}

IrInterp *ir_interp_new(const IrGraph *g, const int64_t *binding, uint64_t seed, IrError *err)
{
    if (!ir_verify(g, err) || !check_binding(g, binding, err))
        return NULL;
    IrInterp *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    it->g = g;
    it->seed = seed;
    for (int i = 0; i < g->nsym; i++)
        it->binding[i] = binding[i];
    it->val = calloc(g->nnodes ? g->nnodes : 1, sizeof *it->val);
    it->pinned = calloc(g->nnodes ? g->nnodes : 1, sizeof *it->pinned);
    bool ok = it->val && it->pinned;
    if (!ok)
        ir_error(err, "interp: out of memory");
    for (int i = 0; ok && i < g->nnodes; i++)
        ok = alloc_value(it, g->nodes[i], err);
    if (!ok) {
        ir_interp_free(it);
        return NULL;
    }
    return it;
}

void ir_interp_free(IrInterp *it)
{
    if (!it)
        return;
    for (int i = 0; it->val && i < it->g->nnodes; i++)
        ir_tensor_free(it->val[i]);
    for (int i = 0; it->sub && i < it->g->nnodes; i++)
        ir_interp_free(it->sub[i]);
    free(it->sub);
    free(it->val);
    free(it->pinned);
    free(it);
}

static const IrNode *find_source(const IrGraph *g, const char *name)
{
    for (int i = 0; i < g->nnodes; i++) {
        const IrNode *n = g->nodes[i];
        if ((n->op == OP_INPUT || n->op == OP_PARAM) && n->name && !strcmp(n->name, name))
            return n;
    }
    return NULL;
}

static bool same_dims(const IrTensor *a, const IrTensor *b)
{
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i])
            return false;
    return true;
}

static void dims_str(const IrTensor *t, char *buf, size_t cap)
{
    int len = snprintf(buf, cap, "%s[", ir_dtype_name(t->dtype));
    for (int i = 0; i < t->rank && (size_t)len < cap; i++)
        len += snprintf(buf + len, cap - len, "%s%lld", i ? "," : "", (long long)t->dim[i]);
    if ((size_t)len < cap)
        snprintf(buf + len, cap - len, "]");
}

bool ir_interp_set(IrInterp *it, const char *name, const IrTensor *t, IrError *err)
{
    const IrNode *n = find_source(it->g, name);
    if (!n) {
        ir_error(err, "interp: graph '%s' has no input or param named '%s'", it->g->name, name);
        return false;
    }
    IrTensor *v = it->val[n->index];
    if (t->dtype != v->dtype || !same_dims(t, v)) {
        char want[160], got[160];
        dims_str(v, want, sizeof want);
        dims_str(t, got, sizeof got);
        return node_fail(err, n, "value of type %s given, expected %s", got, want);
    }
    memcpy(v->data, t->data, v->numel * sizeof(double));
    it->pinned[n->index] = true;
    return true;
}

/* Every value times 1 + d, d uniform in [-2^-23, 2^-23), then rounded to float. */
static void add_noise(IrTensor *t, uint64_t key)
{
    for (int64_t k = 0; k < t->numel; k++) {
        double u = (double)(ir_splitmix64(key + (uint64_t)k) >> 11) * 0x1p-53;
        t->data[k] = (float)(t->data[k] * (1 + (2 * u - 1) * 0x1p-23));
    }
}

bool ir_interp_run(IrInterp *it, IrError *err)
{
    for (int i = 0; i < it->g->nnodes; i++) {
        const IrNode *n = it->g->nodes[i];
        if (it->pinned[i])
            continue;
        if (!interp_fns[n->op](it, n, it->val[i], err))
            return false;
        if (it->noise && n->dtype == DT_F32)
            add_noise(it->val[i], ir_splitmix64(it->noise ^ (uint64_t)i * 0x9E3779B97F4A7C15u));
    }
    return true;
}

void ir_interp_noise_f32(IrInterp *it, uint64_t seed)
{
    it->noise = seed;
}

const IrTensor *ir_interp_value(const IrInterp *it, const IrNode *n)
{
    if (!n || n->index < 0 || n->index >= it->g->nnodes || it->g->nodes[n->index] != n)
        return NULL;
    return it->val[n->index];
}

const IrTensor *ir_interp_output(const IrInterp *it, const char *name)
{
    for (int i = 0; i < it->g->nout; i++)
        if (!strcmp(it->g->outs[i].name, name))
            return ir_interp_value(it, it->g->outs[i].node);
    return NULL;
}
