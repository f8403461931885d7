/* cg_lower_math.c — scalar element operations, written so they vectorize.
 *
 * Everything here builds IR for one element; the loop around it is the
 * caller's, and the loop vectorizer widens the whole body to <16 x float>.
 * That is why exp, log and tanh are built inline from arithmetic instead of
 * calling libm (a call, even llvm.exp.f32, scalarizes the loop: x86 has no
 * vector exp instruction and the JIT links no vector math library).
 *
 *   exp(x)   x = n ln2 + r with n = rint(x log2 e), |r| <= ln2/2 (ln2 split
 *            in a 12-bit high part and a low part, so n*hi is exact);
 *            e^r by its Taylor series to r^7 (truncation < 1e-8 relative)
 *            in Horner form with fma; 2^n as two exponent-field scalings so
 *            that results from 2^-150 (subnormal) to overflow come out right.
 *            x is clamped to [-104, 89] first; NaN passes through.
 *   log(x)   x = m 2^e with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s),
 *            s = (m-1)/(m+1), by its series to s^9 (|s| < 0.172, truncation
 *            < 1e-8).  Subnormals are scaled by 2^23 first; 0 gives -inf,
 *            negatives and NaN give NaN, inf gives inf.
 *   tanh(x)  |x| < 0.4: the Taylor series to x^13 (no cancellation near 0);
 *            else 1 - 2/(exp(2|x|) + 1), which saturates to 1 without
 *            overflow trouble; the sign is copied back.
 *   sin(x), cos(x)  x = j pi/2 + r, j = rint(x 2/pi), |r| <= pi/4 (pi/2 in
 *            three parts, each product taken exactly by an fma); sin r
 *            and cos r by the minimax polynomials of Cephes' sinf/cosf
 *            (degree 7 and 8); the quadrant (j, or j + 1 for cos) picks
 *            +-sin r or +-cos r.  Within a few ulp for |x| up to about
 *            1e5, where the three parts of pi/2 run out; NaN and inf give NaN.
 *   gelu(x)  the tanh form 0.5 x (1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715
 *            x^3), computed as x / (1 + exp(-2u)) — the same function,
 *            but without the cancellation of 1 + tanh(u) for negative x.
 * Measured against double precision over wide ranges, all of them but gelu stay within
 * 3 ulp (about 2e-7 relative); tests/unit/test_lower.c checks 1e-6.
 *
 * Each elementwise op has its math rule here, cg_math_<op> (ops.def's math
 * column; cg_elem dispatches), for plain and fused kernels alike.
 * The other ops follow the interpreter (ir/interp.c) exactly where it
 * defines behaviour: NaN propagates through maximum/minimum, relu keeps
 * NaN, casts to i32 truncate and saturate (NaN gives 0), cast to bool is
 * x != 0.  Where the interpreter reports an error the kernel must not
 * crash instead: i32 division by zero gives 0 and INT_MIN / -1 wraps.
 * i32 add/sub/mul wrap (the interpreter does not emulate wrap-around).
 */
#include "cg_lower_int.h"

#include <math.h>
#include <string.h>

static LLVMValueRef fma3(CgKernel *k, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c)
{
    LLVMValueRef args[3] = {a, b, c};
    return cg_intrin(k, "llvm.fma", k->L->f32, args, 3);
}

/* c[0] + x (c[1] + x (c[2] + ...)) */
static LLVMValueRef poly(CgKernel *k, LLVMValueRef x, const double *c, int n)
{
    LLVMValueRef p = cg_f32c(k, c[n - 1]);
    for (int i = n - 2; i >= 0; i--)
        p = fma3(k, p, x, cg_f32c(k, c[i]));
    return p;
}

static LLVMValueRef fsel(CgKernel *k, LLVMRealPredicate pr, LLVMValueRef a, LLVMValueRef b,
                         LLVMValueRef t, LLVMValueRef f)
{
    return LLVMBuildSelect(k->b, LLVMBuildFCmp(k->b, pr, a, b, ""), t, f, "");
}

/* ln 2 = hi + lo, hi with 12 significant bits. */
static void ln2_split(float *hi, float *lo)
{
    float h = (float)M_LN2;
    uint32_t bits;
    memcpy(&bits, &h, 4);
    bits &= 0xfffff000u;
    memcpy(&h, &bits, 4);
    *hi = h;
    *lo = (float)(M_LN2 - (double)h);
}

/* 2^e as a float, for e in [-126, 127] (i32). */
static LLVMValueRef pow2i(CgKernel *k, LLVMValueRef e)
{
    LLVMValueRef biased = LLVMBuildAdd(k->b, e, cg_i32c(k, 127), "");
    return LLVMBuildBitCast(k->b, LLVMBuildShl(k->b, biased, cg_i32c(k, 23), ""), k->L->f32, "");
}

LLVMValueRef cg_exp(CgKernel *k, LLVMValueRef x)
{
    static const double c[8] = {1, 1, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720,
                                1.0 / 5040};
    LLVMBuilderRef b = k->b;
    float hi, lo;
    ln2_split(&hi, &lo);
    LLVMValueRef xc = fsel(k, LLVMRealOGT, x, cg_f32c(k, 89), cg_f32c(k, 89), x);
    xc = fsel(k, LLVMRealOLT, xc, cg_f32c(k, -104), cg_f32c(k, -104), xc);
    LLVMValueRef t = LLVMBuildFMul(b, xc, cg_f32c(k, M_LOG2E), "");
    LLVMValueRef nf = cg_intrin(k, "llvm.rint", k->L->f32, &t, 1);
    LLVMValueRef r = fma3(k, nf, cg_f32c(k, -hi), xc);
    r = fma3(k, nf, cg_f32c(k, -lo), r);
    LLVMValueRef p = poly(k, r, c, 8);
    LLVMValueRef ni = LLVMBuildFPToSI(b, nf, k->L->i32, "");
    LLVMValueRef h = LLVMBuildAShr(b, ni, cg_i32c(k, 1), "");
    LLVMValueRef s1 = pow2i(k, h), s2 = pow2i(k, LLVMBuildSub(b, ni, h, ""));
    LLVMValueRef y = LLVMBuildFMul(b, LLVMBuildFMul(b, p, s1, ""), s2, "exp");
    return fsel(k, LLVMRealUNO, x, x, x, y); /* NaN in, NaN out */
}

/* x = m 2^e, m in [sqrt(1/2), sqrt(2)): returns m, sets *e (i32). */
static LLVMValueRef log_split(CgKernel *k, LLVMValueRef x, LLVMValueRef *e)
{
    LLVMBuilderRef b = k->b;
    LLVMValueRef sub = LLVMBuildFCmp(b, LLVMRealOLT, x, cg_f32c(k, 0x1p-126), "");
    LLVMValueRef xs = LLVMBuildSelect(b, sub, LLVMBuildFMul(b, x, cg_f32c(k, 0x1p23), ""), x, "");
    LLVMValueRef bits = LLVMBuildBitCast(b, xs, k->L->i32, "");
    LLVMValueRef bias = LLVMBuildSelect(b, sub, cg_i32c(k, 127 + 23), cg_i32c(k, 127), "");
    LLVMValueRef ex = LLVMBuildSub(b, LLVMBuildLShr(b, bits, cg_i32c(k, 23), ""), bias, "");
    LLVMValueRef mb = LLVMBuildOr(b, LLVMBuildAnd(b, bits, cg_i32c(k, 0x7fffff), ""),
                                  cg_i32c(k, 0x3f800000), "");
    LLVMValueRef m = LLVMBuildBitCast(b, mb, k->L->f32, "");
    LLVMValueRef big = LLVMBuildFCmp(b, LLVMRealOGT, m, cg_f32c(k, M_SQRT2), "");
    *e = LLVMBuildAdd(b, ex, LLVMBuildZExt(b, big, k->L->i32, ""), "");
    return LLVMBuildSelect(b, big, LLVMBuildFMul(b, m, cg_f32c(k, 0.5), ""), m, "");
}

LLVMValueRef cg_log(CgKernel *k, LLVMValueRef x)
{
    static const double c[5] = {2, 2.0 / 3, 2.0 / 5, 2.0 / 7, 2.0 / 9};
    LLVMBuilderRef b = k->b;
    float hi, lo;
    ln2_split(&hi, &lo);
    LLVMValueRef e;
    LLVMValueRef m = log_split(k, x, &e);
    LLVMValueRef f = LLVMBuildFSub(b, m, cg_f32c(k, 1), "");
    LLVMValueRef s = LLVMBuildFDiv(b, f, LLVMBuildFAdd(b, f, cg_f32c(k, 2), ""), "");
    LLVMValueRef p = LLVMBuildFMul(b, s, poly(k, LLVMBuildFMul(b, s, s, ""), c, 5), "");
    LLVMValueRef ef = LLVMBuildSIToFP(b, e, k->L->f32, "");
    LLVMValueRef y = fma3(k, ef, cg_f32c(k, hi), fma3(k, ef, cg_f32c(k, lo), p));
    y = fsel(k, LLVMRealOEQ, x, cg_f32c(k, INFINITY), x, y);
    y = fsel(k, LLVMRealOEQ, x, cg_f32c(k, 0), cg_f32c(k, -INFINITY), y);
    return fsel(k, LLVMRealULT, x, cg_f32c(k, 0), cg_f32c(k, NAN), y);
}

LLVMValueRef cg_tanh(CgKernel *k, LLVMValueRef x)
{
    static const double c[7] = {1, -1.0 / 3, 2.0 / 15, -17.0 / 315, 62.0 / 2835,
                                -1382.0 / 155925, 21844.0 / 6081075};
    LLVMBuilderRef b = k->b;
    LLVMValueRef a = cg_intrin(k, "llvm.fabs", k->L->f32, &x, 1);
    LLVMValueRef e = cg_exp(k, LLVMBuildFAdd(b, a, a, ""));
    LLVMValueRef q = LLVMBuildFDiv(b, cg_f32c(k, 2), LLVMBuildFAdd(b, e, cg_f32c(k, 1), ""), "");
    LLVMValueRef big = LLVMBuildFSub(b, cg_f32c(k, 1), q, "");
    LLVMValueRef small = LLVMBuildFMul(b, a, poly(k, LLVMBuildFMul(b, a, a, ""), c, 7), "");
    LLVMValueRef r = fsel(k, LLVMRealOLT, a, cg_f32c(k, 0.4), small, big);
    LLVMValueRef args[2] = {r, x};
    return cg_intrin(k, "llvm.copysign", k->L->f32, args, 2);
}

LLVMValueRef cg_gelu(CgKernel *k, LLVMValueRef x)
{
    LLVMBuilderRef b = k->b;
    LLVMValueRef x3 = LLVMBuildFMul(b, LLVMBuildFMul(b, x, x, ""), x, "");
    LLVMValueRef inner = fma3(k, x3, cg_f32c(k, 0.044715), x);
    LLVMValueRef m2u = LLVMBuildFMul(b, inner, cg_f32c(k, -2.0 * sqrt(2.0 / M_PI)), "");
    LLVMValueRef den = LLVMBuildFAdd(b, cg_exp(k, m2u), cg_f32c(k, 1), "");
    return LLVMBuildFDiv(b, x, den, "gelu");
}

/* ---------------------------------------------------------------- min/max */

LLVMValueRef cg_maximum(CgKernel *k, IrDType dt, LLVMValueRef a, LLVMValueRef b)
{
    if (dt != DT_F32)
        return LLVMBuildSelect(k->b, LLVMBuildICmp(k->b, LLVMIntSGT, a, b, ""), a, b, "");
    LLVMValueRef m = fsel(k, LLVMRealOGT, a, b, a, b);
    return fsel(k, LLVMRealUNO, a, b, LLVMBuildFAdd(k->b, a, b, ""), m);
}

LLVMValueRef cg_minimum(CgKernel *k, IrDType dt, LLVMValueRef a, LLVMValueRef b)
{
    if (dt != DT_F32)
        return LLVMBuildSelect(k->b, LLVMBuildICmp(k->b, LLVMIntSLT, a, b, ""), a, b, "");
    LLVMValueRef m = fsel(k, LLVMRealOLT, a, b, a, b);
    return fsel(k, LLVMRealUNO, a, b, LLVMBuildFAdd(k->b, a, b, ""), m);
}

/* ---------------------------------------------------------------- math rules: unary */

/* The math rules of ops.def's math column: cg_math_<op>(k, n, a) builds one
 * element of elementwise node n from its operands' elements a[], at the
 * operands' dtype (that of operand 0; where: of operand 1). */
#define MATH_RULE(op) LLVMValueRef cg_math_##op(CgKernel *k, const IrNode *n, const LLVMValueRef *a)

static LLVMValueRef f32_only(const IrNode *n, LLVMValueRef v)
{
    if (n->in[0]->dtype != DT_F32)
        IR_ASSERT(!"unary op on i32");
    return v;
}

static LLVMValueRef one_over(CgKernel *k, LLVMValueRef x)
{
    return LLVMBuildFDiv(k->b, cg_f32c(k, 1), x, "");
}

MATH_RULE(neg)
{
    if (n->in[0]->dtype != DT_F32)
        return LLVMBuildSub(k->b, cg_i32c(k, 0), a[0], "");
    return LLVMBuildFNeg(k->b, a[0], "");
}

MATH_RULE(abs)
{
    LLVMValueRef x = a[0], zero = cg_i32c(k, 0);
    if (n->in[0]->dtype == DT_F32)
        return cg_intrin(k, "llvm.fabs", k->L->f32, &x, 1);
    return LLVMBuildSelect(k->b, LLVMBuildICmp(k->b, LLVMIntSLT, x, zero, ""),
                           LLVMBuildSub(k->b, zero, x, ""), x, "");
}

MATH_RULE(relu)
{
    LLVMValueRef x = a[0];
    if (n->in[0]->dtype == DT_F32)
        return fsel(k, LLVMRealOLE, x, cg_f32c(k, 0), cg_f32c(k, 0), x);
    LLVMValueRef zero = cg_i32c(k, 0);
    return LLVMBuildSelect(k->b, LLVMBuildICmp(k->b, LLVMIntSGT, x, zero, ""), x, zero, "");
}

MATH_RULE(exp) { return f32_only(n, cg_exp(k, a[0])); }
MATH_RULE(log) { return f32_only(n, cg_log(k, a[0])); }
MATH_RULE(tanh) { return f32_only(n, cg_tanh(k, a[0])); }
MATH_RULE(gelu) { return f32_only(n, cg_gelu(k, a[0])); }
MATH_RULE(recip) { return f32_only(n, one_over(k, a[0])); }

MATH_RULE(sqrt)
{
    LLVMValueRef x = a[0];
    return f32_only(n, cg_intrin(k, "llvm.sqrt", k->L->f32, &x, 1));
}

MATH_RULE(rsqrt)
{
    LLVMValueRef x = a[0];
    return f32_only(n, one_over(k, cg_intrin(k, "llvm.sqrt", k->L->f32, &x, 1)));
}

/* ---------------------------------------------------------------- math rules: binary */

/* a / b toward zero; b = 0 gives 0, INT_MIN / -1 wraps (no SIGFPE). */
static LLVMValueRef sdiv_safe(CgKernel *k, LLVMValueRef a, LLVMValueRef d)
{
    LLVMBuilderRef b = k->b;
    LLVMValueRef z = LLVMBuildICmp(b, LLVMIntEQ, d, cg_i32c(k, 0), "");
    LLVMValueRef m1 = LLVMBuildICmp(b, LLVMIntEQ, d, cg_i32c(k, -1), "");
    LLVMValueRef safe = LLVMBuildSelect(b, LLVMBuildOr(b, z, m1, ""), cg_i32c(k, 1), d, "");
    LLVMValueRef q = LLVMBuildSDiv(b, a, safe, "");
    q = LLVMBuildSelect(b, m1, LLVMBuildSub(b, cg_i32c(k, 0), a, ""), q, "");
    return LLVMBuildSelect(b, z, cg_i32c(k, 0), q, "");
}

/* bool (i8 0/1) of a compare; f32 ordered, i32 signed, bool unsigned. */
static LLVMValueRef compare(CgKernel *k, const IrNode *n, LLVMRealPredicate fp, LLVMIntPredicate sp,
                            LLVMIntPredicate up, const LLVMValueRef *a)
{
    IrDType dt = n->in[0]->dtype;
    LLVMValueRef c;
    if (dt == DT_F32)
        c = LLVMBuildFCmp(k->b, fp, a[0], a[1], "");
    else
        c = LLVMBuildICmp(k->b, dt == DT_I32 ? sp : up, a[0], a[1], "");
    return LLVMBuildZExt(k->b, c, k->L->i8, "");
}

MATH_RULE(lt) { return compare(k, n, LLVMRealOLT, LLVMIntSLT, LLVMIntULT, a); }
MATH_RULE(le) { return compare(k, n, LLVMRealOLE, LLVMIntSLE, LLVMIntULE, a); }
MATH_RULE(eq) { return compare(k, n, LLVMRealOEQ, LLVMIntEQ, LLVMIntEQ, a); }
MATH_RULE(maximum) { return cg_maximum(k, n->in[0]->dtype, a[0], a[1]); }
MATH_RULE(minimum) { return cg_minimum(k, n->in[0]->dtype, a[0], a[1]); }

static bool is_f32(const IrNode *n)
{
    return n->in[0]->dtype == DT_F32;
}

MATH_RULE(add)
{
    return is_f32(n) ? LLVMBuildFAdd(k->b, a[0], a[1], "") : LLVMBuildAdd(k->b, a[0], a[1], "");
}

MATH_RULE(sub)
{
    return is_f32(n) ? LLVMBuildFSub(k->b, a[0], a[1], "") : LLVMBuildSub(k->b, a[0], a[1], "");
}

MATH_RULE(mul)
{
    return is_f32(n) ? LLVMBuildFMul(k->b, a[0], a[1], "") : LLVMBuildMul(k->b, a[0], a[1], "");
}

MATH_RULE(div)
{
    return is_f32(n) ? LLVMBuildFDiv(k->b, a[0], a[1], "") : sdiv_safe(k, a[0], a[1]);
}

MATH_RULE(where)
{
    LLVMValueRef c = LLVMBuildICmp(k->b, LLVMIntNE, a[0], LLVMConstInt(k->L->i8, 0, 0), "");
    return LLVMBuildSelect(k->b, c, a[1], a[2], "");
}

MATH_RULE(broadcast)
{
    return a[0];
}

/* ---------------------------------------------------------------- casts */

static LLVMValueRef fptosi_sat(CgKernel *k, LLVMValueRef x)
{
    const char *name = "llvm.fptosi.sat";
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMTypeRef ts[2] = {k->L->i32, LLVMTypeOf(x)};
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(k->L->M, id, ts, 2);
    return LLVMBuildCall2(k->b, LLVMIntrinsicGetType(k->L->C, id, ts, 2), fn, &x, 1, "");
}

static LLVMValueRef nonzero(CgKernel *k, IrDType dt, LLVMValueRef x)
{
    if (dt == DT_F32)
        return LLVMBuildFCmp(k->b, LLVMRealUNE, x, cg_f32c(k, 0), "");
    return LLVMBuildICmp(k->b, LLVMIntNE, x, LLVMConstNull(LLVMTypeOf(x)), "");
}

LLVMValueRef cg_cast(CgKernel *k, IrDType from, IrDType to, LLVMValueRef x)
{
    LLVMBuilderRef b = k->b;
    if (from == to)
        return x;
    if (to == DT_BOOL)
        return LLVMBuildZExt(b, nonzero(k, from, x), k->L->i8, "");
    if (from == DT_BOOL)
        x = LLVMBuildZExt(b, nonzero(k, from, x), k->L->i32, "");
    if (to == DT_F32)
        return LLVMBuildSIToFP(b, x, k->L->f32, "");
    return from == DT_F32 ? fptosi_sat(k, x) : x;
}

/* A double (const's value) as dtype dt: rounded to float, truncated and
 * saturated to i32 (NaN gives 0), or != 0 for bool. */
LLVMValueRef cg_cast_f64(CgKernel *k, IrDType dt, LLVMValueRef d)
{
    if (dt == DT_F32)
        return LLVMBuildFPTrunc(k->b, d, k->L->f32, "");
    if (dt == DT_BOOL)
        return LLVMBuildZExt(
            k->b, LLVMBuildFCmp(k->b, LLVMRealUNE, d, LLVMConstReal(k->L->f64, 0), ""), k->L->i8,
            "");
    return fptosi_sat(k, d);
}

MATH_RULE(cast)
{
    return cg_cast(k, n->in[0]->dtype, n->dtype, a[0]);
}

/* sin and cos: see the head of this file.  quadrant: 0 for sin, 1 for cos. */
static LLVMValueRef sin_cos(CgKernel *k, const IrNode *n, LLVMValueRef x, int quadrant)
{
    static const double S[3] = {-1.6666654611e-1, 8.3321608736e-3, -1.9515295891e-4};
    static const double C[3] = {4.166664568298827e-2, -1.388731625493765e-3,
                                2.443315711809948e-5};
    LLVMBuilderRef b = k->b;
    LLVMValueRef jf = LLVMBuildFMul(b, x, cg_f32c(k, 2 / M_PI), "");
    jf = cg_intrin(k, "llvm.rint", k->L->f32, &jf, 1);
    LLVMValueRef r = fma3(k, jf, cg_f32c(k, -1.5703125), x);
    r = fma3(k, jf, cg_f32c(k, -4.837512969970703125e-4), r);
    r = fma3(k, jf, cg_f32c(k, -7.54978995489188216e-8), r);
    LLVMValueRef z = LLVMBuildFMul(b, r, r, "");
    LLVMValueRef s = fma3(k, LLVMBuildFMul(b, r, z, ""), poly(k, z, S, 3), r);
    LLVMValueRef c = fma3(k, LLVMBuildFMul(b, z, z, ""), poly(k, z, C, 3),
                          fma3(k, z, cg_f32c(k, -0.5), cg_f32c(k, 1)));
    LLVMValueRef q = LLVMBuildAdd(b, fptosi_sat(k, jf), cg_i32c(k, quadrant), "");
    LLVMValueRef odd = LLVMBuildTrunc(b, q, k->L->i1, "");
    LLVMValueRef neg = LLVMBuildICmp(b, LLVMIntNE, LLVMBuildAnd(b, q, cg_i32c(k, 2), ""),
                                     cg_i32c(k, 0), "");
    LLVMValueRef v = LLVMBuildSelect(b, odd, c, s, "");
    return f32_only(n, LLVMBuildSelect(b, neg, LLVMBuildFNeg(b, v, ""), v, ""));
}

MATH_RULE(sin) { return sin_cos(k, n, a[0], 0); }
MATH_RULE(cos) { return sin_cos(k, n, a[0], 1); }

/* The math column's `none`: ops lowered by other builders. */
MATH_RULE(none)
{
    IR_ASSERT(!"an elementwise lowering reached an op without a math rule");
    return a[0];
}

/* ---------------------------------------------------------------- the table */

typedef LLVMValueRef (*MathFn)(CgKernel *k, const IrNode *n, const LLVMValueRef *a);

static const MathFn math_fns[OP_COUNT] = {
#define OP(E, n, mi, ma, k, sr, dr, lower, math, ...) [OP_##E] = cg_math_##math,
#include "ir/ops.def"
#undef OP
};

bool cg_has_math(IrOp op)
{
    return op < OP_COUNT && math_fns[op] != cg_math_none;
}

LLVMValueRef cg_elem(CgKernel *k, const IrNode *n, const LLVMValueRef *a)
{
    return math_fns[n->op](k, n, a);
}

