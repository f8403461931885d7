/* fuse_layout.c — strided views through reshape and transpose (fuse.h).
 *
 * A layout is a dim and a stride per axis.  Transposes permute them.  A
 * reshape is a view when the old axes can be cut into contiguous chunks
 * (neighbours with stride[i] == stride[i+1] * dim[i+1]) whose element
 * counts the new dims rebuild exactly, from the innermost out: inside a
 * chunk the new strides are the chunk's base stride times the product of
 * the new dims inside it.  Size-1 dims never matter.  This is the check
 * that decides whether a matmul can read (or write) a transposed or
 * reshaped tensor in place, and the computation of its BLAS leading
 * dimension.
 */
#include "fuse.h"

#include <string.h>

bool fuse_is_view(const IrNode *n)
{
    return n->op == OP_RESHAPE || n->op == OP_TRANSPOSE;
}

void fuse_dims(const IrNode *n, const int64_t *binding, int64_t *dim)
{
    for (int d = 0; d < n->shape.rank; d++) {
        int64_t v = ir_dim_eval(n->shape.d[d], binding);
        dim[d] = v > 0 ? v : 1;
    }
}

static void dense_of(int rank, const int64_t *dim, FuseLayout *l)
{
    memset(l, 0, sizeof *l);
    l->rank = rank;
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        l->dim[d] = dim[d];
        l->st[d] = s;
        s *= dim[d];
    }
}

void fuse_layout_dense(const IrNode *n, const int64_t *binding, FuseLayout *l)
{
    int64_t dim[IR_MAX_RANK];
    fuse_dims(n, binding, dim);
    dense_of(n->shape.rank, dim, l);
}

/* Assigns new dims nd[..*j] (innermost first) to a chunk of `numel`
 * elements with base stride `base`; false if they overshoot it. */
static bool fill_chunk(const int64_t *nd, int *j, int64_t numel, int64_t base, int64_t *nst)
{
    int64_t acc = 1;
    while (acc < numel) {
        if (*j < 0)
            return false;
        nst[*j] = base * acc;
        acc *= nd[*j];
        (*j)--;
    }
    return acc == numel;
}

/* The layout of `in` reshaped to dims nd[0..m): false if not a view. */
static bool reshape_layout(const FuseLayout *in, int m, const int64_t *nd, FuseLayout *out)
{
    int64_t d[IR_MAX_RANK], s[IR_MAX_RANK];
    int k = 0;
    for (int i = 0; i < in->rank; i++)
        if (in->dim[i] != 1)
            d[k] = in->dim[i], s[k++] = in->st[i];
    memset(out, 0, sizeof *out);
    out->rank = m;
    for (int i = 0; i < m; i++)
        out->dim[i] = nd[i];
    int j = m - 1;
    for (int i = k - 1; i >= 0; i--) {
        int hi = i;
        int64_t numel = d[i];
        while (i > 0 && s[i - 1] == s[i] * d[i]) {
            i--;
            numel *= d[i];
        }
        if (!fill_chunk(nd, &j, numel, s[hi], out->st))
            return false;
    }
    for (; j >= 0; j--)
        if (nd[j] != 1)
            return false;
    return true;
}

/* out = in viewed through node v (a reshape or transpose of in). */
static bool apply_view(const IrNode *v, const int64_t *binding, const FuseLayout *in,
                       FuseLayout *out)
{
    int64_t nd[IR_MAX_RANK];
    fuse_dims(v, binding, nd);
    if (v->op == OP_RESHAPE)
        return reshape_layout(in, v->shape.rank, nd, out);
    const IrAttr *perm = ir_node_attr(v, ATTR_PERM);
    *out = *in;
    for (int i = 0; i < in->rank; i++) {
        int p = ir_axis(perm->i[i], in->rank);
        out->dim[i] = in->dim[p];
        out->st[i] = in->st[p];
    }
    return true;
}

const IrNode *fuse_view_in(const IrNode *v, const int64_t *binding, const IrNode *stop,
                           FuseLayout *l)
{
    const IrNode *chain[64];
    int n = 0;
    const IrNode *leaf = v;
    while (fuse_is_view(leaf) && leaf != stop && n < 64) {
        chain[n++] = leaf;
        leaf = leaf->in[0];
    }
    FuseLayout cur, next;
    fuse_layout_dense(leaf, binding, &cur);
    for (int i = n - 1; i >= 0; i--) {
        if (!apply_view(chain[i], binding, &cur, &next))
            return NULL;
        cur = next;
    }
    *l = cur;
    return leaf;
}

/* The layout of u = v->in[0], given v's layout (the inverse of apply_view). */
static bool unapply_view(const IrNode *v, const int64_t *binding, const FuseLayout *vl,
                         FuseLayout *ul)
{
    const IrNode *u = v->in[0];
    int64_t ud[IR_MAX_RANK];
    fuse_dims(u, binding, ud);
    if (v->op == OP_RESHAPE)
        return reshape_layout(vl, u->shape.rank, ud, ul);
    const IrAttr *perm = ir_node_attr(v, ATTR_PERM);
    *ul = *vl;
    for (int i = 0; i < vl->rank; i++) {
        int p = ir_axis(perm->i[i], vl->rank);
        ul->dim[p] = vl->dim[i];
        ul->st[p] = vl->st[i];
    }
    return true;
}

bool fuse_view_out(const IrNode *root, const IrNode *head, const int64_t *binding, FuseLayout *l)
{
    FuseLayout cur, next;
    fuse_layout_dense(root, binding, &cur);
    for (const IrNode *v = root; v != head; v = v->in[0]) {
        if (!fuse_is_view(v) || !unapply_view(v, binding, &cur, &next))
            return false;
        cur = next;
    }
    *l = cur;
    return true;
}

bool fuse_gemm_matrix(const FuseLayout *l, bool *trans, int64_t *ld)
{
    int r = l->rank;
    int64_t rows = l->dim[r - 2], cols = l->dim[r - 1], rs = l->st[r - 2], cs = l->st[r - 1];
    if ((cols == 1 || cs == 1) && (rows == 1 || rs >= cols)) {
        *trans = false;
        *ld = rows == 1 ? cols : rs;
        return true;
    }
    if ((rows == 1 || rs == 1) && (cols == 1 || cs >= rows)) {
        *trans = true;
        *ld = cols == 1 ? rows : cs;
        return true;
    }
    return false;
}

void fuse_probe_binding(int64_t *binding)
{
    static const int64_t primes[IR_MAX_SYMS] = {5, 7, 11, 13, 17, 19, 23, 29};
    for (int i = 0; i < IR_MAX_SYMS; i++)
        binding[i] = primes[i];
}
