/* test_jit.c — codegen infrastructure: host target, O3 + LLJIT, dumps, the
 * object cache, process symbols (cblas_sgemm, expf) and error reporting.
 *
 * The kernel under test is saxpy written as a plain scalar loop with the C
 * API; default<O3> must vectorize it (zmm on AVX-512 hosts) and keep a
 * correct tail, which the odd sizes and the guard elements check.
 */
#include "codegen/cg.h"
#include "testlib.h"

#include <cblas.h>
#include <dirent.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

typedef void (*SaxpyFn)(float *y, const float *x, float a, int64_t n);

static const int64_t sizes[] = {0, 1, 15, 16, 17, 1000};
#define NSIZES (int)(sizeof sizes / sizeof sizes[0])
#define GUARD 16

/* ---------------------------------------------------------------- builders */

static void add_noalias(LLVMContextRef C, LLVMValueRef fn, unsigned param)
{
    unsigned kind = LLVMGetEnumAttributeKindForName("noalias", 7);
    LLVMAddAttributeAtIndex(fn, param + 1, LLVMCreateEnumAttribute(C, kind, 0));
}

/* void NAME(float *y, const float *x, float a, int64 n):
 *   for (i = 0; i < n; i++) y[i] = a * x[i] + y[i]; */
static void build_saxpy(CgModule *m, const char *name)
{
    LLVMContextRef C = m->ctx;
    LLVMTypeRef ptr = LLVMPointerTypeInContext(C, 0), f32 = LLVMFloatTypeInContext(C);
    LLVMTypeRef i64 = LLVMInt64TypeInContext(C);
    LLVMTypeRef params[] = {ptr, ptr, f32, i64};
    LLVMValueRef fn = LLVMAddFunction(m->mod, name,
                                      LLVMFunctionType(LLVMVoidTypeInContext(C), params, 4, 0));
    add_noalias(C, fn, 0);
    add_noalias(C, fn, 1);
    LLVMValueRef y = LLVMGetParam(fn, 0), x = LLVMGetParam(fn, 1);
    LLVMValueRef a = LLVMGetParam(fn, 2), n = LLVMGetParam(fn, 3);
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(C, fn, "entry");
    LLVMBasicBlockRef loop = LLVMAppendBasicBlockInContext(C, fn, "loop");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(C, fn, "done");
    LLVMBuilderRef b = LLVMCreateBuilderInContext(C);

    LLVMPositionBuilderAtEnd(b, entry);
    LLVMValueRef zero = LLVMConstInt(i64, 0, 0);
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSGT, n, zero, "any"), loop, done);

    LLVMPositionBuilderAtEnd(b, loop);
    LLVMValueRef i = LLVMBuildPhi(b, i64, "i");
    LLVMValueRef px = LLVMBuildGEP2(b, f32, x, &i, 1, "px");
    LLVMValueRef py = LLVMBuildGEP2(b, f32, y, &i, 1, "py");
    LLVMValueRef ax = LLVMBuildFMul(b, a, LLVMBuildLoad2(b, f32, px, "xi"), "ax");
    LLVMBuildStore(b, LLVMBuildFAdd(b, ax, LLVMBuildLoad2(b, f32, py, "yi"), "r"), py);
    LLVMValueRef next = LLVMBuildNSWAdd(b, i, LLVMConstInt(i64, 1, 0), "next");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, next, n, "more"), loop, done);
    LLVMAddIncoming(i, (LLVMValueRef[]){zero, next}, (LLVMBasicBlockRef[]){entry, loop}, 2);

    LLVMPositionBuilderAtEnd(b, done);
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
}

static CgModule *saxpy_module(void)
{
    IrError err = {0};
    CgModule *m = cg_module_new("saxpy", &err);
    CHECK(m != NULL);
    if (m)
        build_saxpy(m, "saxpy");
    return m;
}

/* float vexp(float x) { return expf(x); }
 * void mm(const float *A, const float *B, float *C, i32 M, i32 N, i32 K):
 *   C = A·B, row-major, through cblas_sgemm. */
static LLVMValueRef declare(CgModule *m, const char *name, LLVMTypeRef ret, LLVMTypeRef *ps,
                            unsigned n)
{
    return LLVMAddFunction(m->mod, name, LLVMFunctionType(ret, ps, n, 0));
}

static void build_vexp(CgModule *m)
{
    LLVMTypeRef f32 = LLVMFloatTypeInContext(m->ctx);
    LLVMTypeRef fty = LLVMFunctionType(f32, &f32, 1, 0);
    LLVMValueRef expf_fn = declare(m, "expf", f32, &f32, 1);
    LLVMValueRef fn = declare(m, "vexp", f32, &f32, 1);
    LLVMBuilderRef b = LLVMCreateBuilderInContext(m->ctx);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(m->ctx, fn, "entry"));
    LLVMValueRef x = LLVMGetParam(fn, 0);
    LLVMBuildRet(b, LLVMBuildCall2(b, fty, expf_fn, &x, 1, "e"));
    LLVMDisposeBuilder(b);
}

static void build_mm(CgModule *m)
{
    LLVMContextRef C = m->ctx;
    LLVMTypeRef ptr = LLVMPointerTypeInContext(C, 0), f32 = LLVMFloatTypeInContext(C);
    LLVMTypeRef i32 = LLVMInt32TypeInContext(C), v = LLVMVoidTypeInContext(C);
    LLVMTypeRef sg[] = {i32, i32, i32, i32, i32, i32, f32, ptr, i32, ptr, i32, f32, ptr, i32};
    LLVMTypeRef mp[] = {ptr, ptr, ptr, i32, i32, i32};
    LLVMValueRef sgemm = declare(m, "cblas_sgemm", v, sg, 14);
    LLVMValueRef fn = declare(m, "mm", v, mp, 6);
    LLVMBuilderRef b = LLVMCreateBuilderInContext(C);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(C, fn, "entry"));
    LLVMValueRef M = LLVMGetParam(fn, 3), N = LLVMGetParam(fn, 4), K = LLVMGetParam(fn, 5);
    LLVMValueRef args[] = {
        LLVMConstInt(i32, CblasRowMajor, 0), LLVMConstInt(i32, CblasNoTrans, 0),
        LLVMConstInt(i32, CblasNoTrans, 0), M, N, K, LLVMConstReal(f32, 1.0),
        LLVMGetParam(fn, 0), K, LLVMGetParam(fn, 1), N, LLVMConstReal(f32, 0.0),
        LLVMGetParam(fn, 2), N,
    };
    LLVMBuildCall2(b, LLVMFunctionType(v, sg, 14, 0), sgemm, args, 14, "");
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
}

/* ---------------------------------------------------------------- helpers */

/* Runs saxpy for every size against a C reference; checks the guard too. */
static void check_saxpy(SaxpyFn f)
{
    for (int s = 0; s < NSIZES; s++) {
        int64_t n = sizes[s];
        float *x = malloc((n + GUARD) * sizeof *x), *y = malloc((n + GUARD) * sizeof *y);
        float *ref = malloc((n + GUARD) * sizeof *ref);
        for (int64_t i = 0; i < n + GUARD; i++) {
            x[i] = (float)(i % 7) - 2.5f;
            y[i] = ref[i] = 0.25f * (float)(i % 11);
        }
        for (int64_t i = 0; i < n; i++)
            ref[i] = 1.5f * x[i] + ref[i];
        f(y, x, 1.5f, n);
        int bad = 0;
        for (int64_t i = 0; i < n + GUARD; i++)
            bad += y[i] != ref[i];
        CHECK(bad == 0);
        if (bad)
            fprintf(stderr, "  saxpy n=%lld: %d wrong elements\n", (long long)n, bad);
        free(x), free(y), free(ref);
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double last_lookup_ms; /* the first lookup links (and, cache off, compiles) */

/* Adds m to jit and runs the checks on its "saxpy". */
static void jit_and_check(CgJit *jit, CgModule *m, const char *key, CgStats *st)
{
    IrError err = {0};
    bool ok = cg_jit_add_module(jit, m, key, st, &err);
    CHECK(ok);
    double t0 = now_ms();
    SaxpyFn f = ok ? (SaxpyFn)cg_jit_lookup(jit, "saxpy", &err) : NULL;
    last_lookup_ms = now_ms() - t0;
    CHECK(f != NULL);
    if (f)
        check_saxpy(f);
    else
        fprintf(stderr, "  %s\n", err.msg);
}

static char cache_dir[64];

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char path[512];
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* ---------------------------------------------------------------- tests */

TEST(host_target)
{
    IrError err = {0};
    const CgTarget *t = cg_target_host(&err);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK(strstr(t->triple, "x86_64") != NULL);
    CHECK(t->cpu[0] != '\0');
    CHECK(cg_target_has_feature(t, "64bit"));
    CHECK(!cg_target_has_feature(t, "64"));
    CHECK(strncmp(t->llvm_version, "19.", 3) == 0);
    printf("  host: %s, cpu %s, avx512f %s, LLVM %s\n", t->triple, t->cpu,
           cg_target_has_feature(t, "avx512f") ? "yes" : "no", t->llvm_version);
}

TEST(saxpy_jit_no_cache)
{
    IrError err = {0};
    CgJit *jit = cg_jit_new(&err);
    CHECK(jit != NULL);
    if (!jit)
        return;
    cg_jit_set_no_cache(jit, true);
    CHECK(!cg_jit_cache_enabled(jit));
    CgStats st;
    jit_and_check(jit, saxpy_module(), "unused", &st);
    CHECK(!st.hit && !st.stored && st.key[0] == '\0');
    cg_jit_free(jit);
}

TEST(saxpy_asm_has_zmm)
{
    IrError err = {0};
    CgModule *m = saxpy_module();
    char *as = cg_module_to_asm(m, &err);
    char *ir = cg_module_to_llvm_ir(m, &err);
    CHECK(as != NULL && ir != NULL);
    CHECK(as && strstr(as, "saxpy:") != NULL);
    CHECK(ir && strstr(ir, "\"prefer-vector-width\"=\"512\"") != NULL);
    if (!cg_target_has_feature(cg_target_host(&err), "avx512f"))
        TEST_SKIP_PART("the zmm check: the host lacks avx512f");
    else
        CHECK(as && strstr(as, "zmm") != NULL && ir && strstr(ir, "<16 x float>"));
    free(as);
    free(ir);
    /* Dumping leaves the module usable. */
    CgJit *jit = cg_jit_new(&err);
    CHECK(jit != NULL);
    cg_jit_set_no_cache(jit, true);
    jit_and_check(jit, m, NULL, NULL);
    cg_jit_free(jit);
}

TEST(cache_dir_env)
{
    char dir[256];
    char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("GRADC_CACHE_DIR", "/tmp/a", 1);
    setenv("XDG_CACHE_HOME", "/tmp/x", 1);
    setenv("HOME", "/tmp/h", 1);
    CHECK(cg_cache_dir(dir, sizeof dir) && strcmp(dir, "/tmp/a") == 0);
    unsetenv("GRADC_CACHE_DIR");
    CHECK(cg_cache_dir(dir, sizeof dir) && strcmp(dir, "/tmp/x/gradc") == 0);
    unsetenv("XDG_CACHE_HOME");
    CHECK(cg_cache_dir(dir, sizeof dir) && strcmp(dir, "/tmp/h/.cache/gradc") == 0);
    CHECK(!cg_cache_dir(dir, 8));
    unsetenv("HOME");
    CHECK(!cg_cache_dir(dir, sizeof dir));
    if (home)
        setenv("HOME", home, 1);
    free(home);
}

TEST(cache_key)
{
    IrError err = {0};
    const CgTarget *t = cg_target_host(&err);
    CgTarget other = *t;
    snprintf(other.cpu, sizeof other.cpu, "x86-64");
    CgKey a = cg_cache_key(t, "abc", 3), b = cg_cache_key(t, "abd", 3);
    CgKey c = cg_cache_key(&other, "abc", 3), a2 = cg_cache_key(t, "abc", 3);
    CHECK(a.lo == a2.lo && a.hi == a2.hi);
    CHECK(a.lo != b.lo && a.hi != b.hi);
    CHECK(a.lo != c.lo && a.hi != c.hi);
    char hex[33];
    cg_cache_key_hex(a, hex);
    CHECK(strlen(hex) == 32);
}

/* Compiles saxpy with the cache on in a fresh JIT; returns the stats. */
static CgStats cached_saxpy(const char *key)
{
    IrError err = {0};
    CgStats st = {0};
    CgJit *jit = cg_jit_new(&err);
    CHECK(jit && cg_jit_cache_enabled(jit));
    if (jit)
        jit_and_check(jit, saxpy_module(), key, &st);
    cg_jit_free(jit);
    return st;
}

static void corrupt_entry(const char *key_hex)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.o", cache_dir, key_hex);
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (!f)
        return;
    fseek(f, 200, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 200, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

TEST(cache_round_trip)
{
    CgStats cold = cached_saxpy("saxpy v1");
    double cold_link = last_lookup_ms;
    CHECK(!cold.hit && cold.stored && strlen(cold.key) == 32);
    CHECK(count_files(cache_dir) == 1);
    CgStats warm = cached_saxpy("saxpy v1");
    CHECK(warm.hit && !warm.stored && strcmp(warm.key, cold.key) == 0);
    printf("  saxpy: cold %.2f ms (opt %.2f, codegen %.2f) + link %.2f ms; "
           "cached %.2f ms + link %.2f ms\n", cold.total_ms, cold.opt_ms, cold.codegen_ms,
           cold_link, warm.total_ms, last_lookup_ms);

    /* Without a module: cg_jit_add_cached. */
    IrError err = {0};
    CgJit *jit = cg_jit_new(&err);
    CgStats st;
    CHECK(cg_jit_add_cached(jit, "saxpy v1", &st) && st.hit);
    CHECK(!cg_jit_add_cached(jit, "saxpy v2", &st) && !st.hit);
    SaxpyFn f = (SaxpyFn)cg_jit_lookup(jit, "saxpy", &err);
    CHECK(f != NULL);
    if (f)
        check_saxpy(f);
    cg_jit_free(jit);

    /* A damaged entry is a miss and gets rewritten. */
    corrupt_entry(cold.key);
    CgStats again = cached_saxpy("saxpy v1");
    CHECK(!again.hit && again.stored);
    CHECK(cached_saxpy("saxpy v1").hit);
}

TEST(cache_keyed_by_module)
{
    CgStats a = cached_saxpy(NULL);
    CgStats b = cached_saxpy(NULL);
    CHECK(!a.hit && b.hit && strcmp(a.key, b.key) == 0);
}

TEST(cache_off_by_switch)
{
    IrError err = {0};
    CgJit *jit = cg_jit_new(&err);
    cg_jit_set_no_cache(jit, true);
    CHECK(!cg_jit_add_cached(jit, "saxpy v1", NULL));
    cg_jit_free(jit);
    setenv("GRADC_NO_CACHE", "1", 1);
    jit = cg_jit_new(&err);
    CHECK(!cg_jit_cache_enabled(jit));
    cg_jit_free(jit);
    unsetenv("GRADC_NO_CACHE");
}

/* A bigger module: 64 kernels, to time a cold compile against a hit. */
static CgStats many_kernels(void)
{
    IrError err = {0};
    CgStats st = {0};
    CgJit *jit = cg_jit_new(&err);
    CgModule *m = cg_module_new("many", &err);
    char name[32];
    for (int k = 0; k < 64; k++) {
        snprintf(name, sizeof name, k ? "saxpy_%d" : "saxpy", k);
        build_saxpy(m, name);
    }
    jit_and_check(jit, m, "64 saxpy kernels v1", &st);
    CHECK(cg_jit_lookup(jit, "saxpy_63", &err) != NULL);
    cg_jit_free(jit);
    return st;
}

TEST(cache_timing_64_kernels)
{
    CgStats cold = many_kernels();
    double cold_link = last_lookup_ms;
    CgStats warm = many_kernels();
    CHECK(!cold.hit && warm.hit);
    printf("  64 kernels: cold %.1f ms (opt %.1f, codegen %.1f) + link %.2f ms; "
           "cached %.2f ms + link %.2f ms\n", cold.total_ms, cold.opt_ms, cold.codegen_ms,
           cold_link, warm.total_ms, last_lookup_ms);
}

static void check_blas_and_libm(CgJit *jit)
{
    IrError err = {0};
    float (*vexp)(float) = (float (*)(float))cg_jit_lookup(jit, "vexp", &err);
    typedef void (*MmFn)(const float *, const float *, float *, int, int, int);
    MmFn mm = (MmFn)cg_jit_lookup(jit, "mm", &err);
    CHECK(vexp != NULL && mm != NULL);
    if (!vexp || !mm)
        return;
    volatile float x = 0.75f;
    CHECK(vexp(x) == expf(x));
    enum { M = 5, N = 7, K = 3 };
    float A[M * K], B[K * N], C[M * N], R[M * N];
    for (int i = 0; i < M * K; i++)
        A[i] = (float)(i % 5) - 1.0f;
    for (int i = 0; i < K * N; i++)
        B[i] = 0.5f * (float)(i % 3);
    mm(A, B, C, M, N, K);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            R[i * N + j] = 0;
            for (int k = 0; k < K; k++)
                R[i * N + j] += A[i * K + k] * B[k * N + j];
            CHECK_NEAR(C[i * N + j], R[i * N + j], 1e-5);
        }
}

TEST(process_symbols)
{
    for (int cached = 0; cached < 2; cached++) {
        IrError err = {0};
        CgJit *jit = cg_jit_new(&err);
        cg_jit_set_no_cache(jit, !cached);
        CgModule *m = cg_module_new("blas", &err);
        build_vexp(m);
        build_mm(m);
        CHECK(cg_jit_add_module(jit, m, "blas v1", NULL, &err));
        check_blas_and_libm(jit);
        cg_jit_free(jit);
    }
    /* Keep OpenBLAS linked in even with --as-needed. */
    float one = 1, r = 0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1, &one, 1, &one, 1, 0, &r, 1);
    CHECK(r == 1);
}

TEST(errors_are_messages)
{
    IrError err = {0};
    CgJit *jit = cg_jit_new(&err);
    cg_jit_set_no_cache(jit, true);

    /* A block without a terminator fails the verifier. */
    CgModule *m = cg_module_new("broken", &err);
    LLVMTypeRef v = LLVMVoidTypeInContext(m->ctx);
    LLVMValueRef fn = LLVMAddFunction(m->mod, "broken", LLVMFunctionType(v, NULL, 0, 0));
    LLVMAppendBasicBlockInContext(m->ctx, fn, "entry");
    CHECK(!cg_jit_add_module(jit, m, NULL, NULL, &err));
    CHECK(err.set && strstr(err.msg, "invalid LLVM module 'broken'") != NULL);

    /* Unknown names and unresolvable externals fail the lookup. */
    IrError e2 = {0}, e3 = {0};
    CHECK(cg_jit_lookup(jit, "nothing_here", &e2) == NULL && e2.set);
    m = cg_module_new("undef", &err);
    v = LLVMVoidTypeInContext(m->ctx); /* the old context went with "broken" */
    LLVMValueRef ext =
        LLVMAddFunction(m->mod, "gradc_no_such_function", LLVMFunctionType(v, NULL, 0, 0));
    fn = LLVMAddFunction(m->mod, "calls_undef", LLVMFunctionType(v, NULL, 0, 0));
    LLVMBuilderRef b = LLVMCreateBuilderInContext(m->ctx);
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(m->ctx, fn, "entry"));
    LLVMBuildCall2(b, LLVMFunctionType(v, NULL, 0, 0), ext, NULL, 0, "");
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
    CHECK(cg_jit_add_module(jit, m, NULL, NULL, &err));
    CHECK(cg_jit_lookup(jit, "calls_undef", &e3) == NULL);
    CHECK(strstr(e3.msg, "gradc_no_such_function") != NULL);
    printf("  lookup error: %s\n", e3.msg);
    cg_jit_free(jit);
    cg_module_free(NULL);
}

int main(void)
{
    snprintf(cache_dir, sizeof cache_dir, "/tmp/gradc-test-jit.XXXXXX");
    if (!mkdtemp(cache_dir))
        TEST_SKIP("cannot make a temp dir");
    RUN(host_target);
    RUN(cache_dir_env);
    setenv("GRADC_CACHE_DIR", cache_dir, 1);
    unsetenv("GRADC_NO_CACHE");
    RUN(saxpy_jit_no_cache);
    RUN(saxpy_asm_has_zmm);
    RUN(cache_key);
    RUN(cache_round_trip);
    RUN(cache_keyed_by_module);
    RUN(cache_off_by_switch);
    RUN(cache_timing_64_kernels);
    RUN(process_symbols);
    RUN(errors_are_messages);
    remove_dir(cache_dir);
    return test_summary();
}
