/* cg_gemm.c — the sgemm that JIT kernels call: the same bits at any thread count.
 *
 * Kernels call cg_sgemm (the cblas_sgemm signature) instead of OpenBLAS
 * directly.  OpenBLAS splits a multithreaded sgemm by the thread count,
 * and at some core types (Haswell on AMD Zen, for one) its edge kernels
 * then sum some output elements in another order: 1 and 2 threads differ
 * in the last bit.  So gradc splits C itself, into a grid of tiles that
 * depends only on M, N and K (never on the thread count), and computes
 * each tile with one single-threaded sgemm over the whole K: every output
 * element is summed by the same call, in the same order, whichever thread
 * runs its tile.  The runtime keeps OpenBLAS at one thread and lends its
 * pool for the tiles (cg_gemm_set_pool); with no pool the tiles run one
 * after the other, with the same result.
 *
 * The grid: rows in blocks of at most 128, columns of at most 512, then
 * halved along the larger side while there are fewer than 8 tiles and a
 * tile would still hold at least 2^22 FLOPs; block edges are multiples of
 * 16 (whole micro-tiles).  Small products are one tile.  The cost is
 * packing each A row block once per column block and each B column block
 * once per row block: about 1/(2*bn) + 1/(2*bm) of the FLOPs in copies.
 */
#include "cg.h"

#include <cblas.h>
#include <stdint.h>

enum { GEMM_MAX_ROWS = 128, GEMM_MAX_COLS = 512, GEMM_MIN_TILES = 8, GEMM_ALIGN = 16 };
#define GEMM_MIN_TILE_FLOPS 4194304.0

typedef struct GemmJob {
    int ta, tb;            /* CBLAS transpose flags of A and B */
    int64_t m, n, k, bm, bn, nbn;
    float alpha, beta;
    const float *a, *b;
    float *c;
    int lda, ldb, ldc;
} GemmJob;

static _Thread_local CgParallelFor pool_run;
static _Thread_local void *pool_arg;

void cg_gemm_set_pool(CgParallelFor run, void *pool)
{
    pool_run = run;
    pool_arg = pool;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* A block edge for len split into about `parts` blocks: a multiple of 16. */
static int64_t block_edge(int64_t len, int64_t parts)
{
    int64_t e = ceil_div(ceil_div(len, parts), GEMM_ALIGN) * GEMM_ALIGN;
    return e < len ? e : len;
}

/* The tile grid of an m x n x k product (a function of the shape only). */
static void gemm_grid(GemmJob *j)
{
    int64_t pm = ceil_div(j->m, GEMM_MAX_ROWS), pn = ceil_div(j->n, GEMM_MAX_COLS);
    for (;;) {
        j->bm = block_edge(j->m, pm);
        j->bn = block_edge(j->n, pn);
        int64_t tiles = ceil_div(j->m, j->bm) * ceil_div(j->n, j->bn);
        bool wide = j->bn >= j->bm;
        int64_t edge = wide ? j->bn : j->bm;
        double half = 2.0 * (wide ? j->bm * (edge / 2) : (edge / 2) * j->bn) * (double)j->k;
        if (tiles >= GEMM_MIN_TILES || edge < 2 * GEMM_ALIGN || half < GEMM_MIN_TILE_FLOPS)
            break;
        if (wide)
            pn *= 2;
        else
            pm *= 2;
    }
    j->nbn = ceil_div(j->n, j->bn);
}

/* Tiles [lo, hi) of the grid, row-major over blocks. */
static void gemm_tiles(void *const *ctx, int64_t lo, int64_t hi)
{
    const GemmJob *j = (const GemmJob *)(const void *)ctx;
    for (int64_t t = lo; t < hi; t++) {
        int64_t i0 = t / j->nbn * j->bm, j0 = t % j->nbn * j->bn;
        int64_t m = j->m - i0 < j->bm ? j->m - i0 : j->bm;
        int64_t n = j->n - j0 < j->bn ? j->n - j0 : j->bn;
        const float *a = j->a + (j->ta == CblasTrans ? i0 : i0 * j->lda);
        const float *b = j->b + (j->tb == CblasTrans ? j0 * j->ldb : j0);
        cblas_sgemm(CblasRowMajor, j->ta, j->tb, (int)m, (int)n, (int)j->k, j->alpha, a,
                    j->lda, b, j->ldb, j->beta, j->c + i0 * j->ldc + j0, j->ldc);
    }
}

void cg_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a,
              int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (order != CblasRowMajor || m <= 0 || n <= 0) {
        cblas_sgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    GemmJob j = {ta, tb, m, n, k, 0, 0, 0, alpha, beta, a, b, c, lda, ldb, ldc};
    gemm_grid(&j);
    int64_t tiles = ceil_div(j.m, j.bm) * j.nbn;
    if (pool_run && tiles > 1)
        pool_run(pool_arg, gemm_tiles, (void *const *)(void *)&j, tiles);
    else
        gemm_tiles((void *const *)(void *)&j, 0, tiles);
}
