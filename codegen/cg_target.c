/* cg_target.c — the host target: triple, CPU, features, target machines.
 *
 * gradc compiles for the machine it runs on, so the target is the host as
 * LLVM detects it (LLVMGetHostCPUName / LLVMGetHostCPUFeatures).  The
 * description is filled once per process under pthread_once and copied
 * into fixed buffers, so it is immutable, needs no freeing and can be read
 * from any thread.  Target machines are not thread-safe, so callers get a
 * fresh one each (cheap next to optimizing a module).
 *
 * Wide vectors are a function attribute, not a target-machine option: the
 * loop vectorizer asks the subtarget of each function, and CPUs such as
 * Sapphire Rapids are tuned to prefer 256-bit vectors.  Kernels therefore
 * carry "prefer-vector-width"="512" besides the CPU and its features.
 */
#include "cg.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <llvm-c/Target.h>

static CgTarget cg_host;
static char cg_host_error[256];
static pthread_once_t cg_host_once = PTHREAD_ONCE_INIT;

bool cg_llvm_ok(LLVMErrorRef e, const char *what, IrError *err)
{
    if (!e)
        return true;
    char *msg = LLVMGetErrorMessage(e); /* consumes e */
    ir_error(err, "%s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
    return false;
}

/* Copies an LLVM-allocated string into buf and disposes it. */
static bool cg_take_string(char *s, char *buf, size_t n)
{
    bool fits = s && strlen(s) < n;
    if (fits)
        memcpy(buf, s, strlen(s) + 1);
    LLVMDisposeMessage(s);
    return fits;
}

static void cg_host_init(void)
{
    if (LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter()) {
        snprintf(cg_host_error, sizeof cg_host_error, "LLVM has no backend for this host");
        return;
    }
    char *raw = LLVMGetDefaultTargetTriple();
    bool ok = cg_take_string(LLVMNormalizeTargetTriple(raw), cg_host.triple, sizeof cg_host.triple);
    LLVMDisposeMessage(raw);
    ok = ok && cg_take_string(LLVMGetHostCPUName(), cg_host.cpu, sizeof cg_host.cpu);
    ok = ok && cg_take_string(LLVMGetHostCPUFeatures(), cg_host.features, sizeof cg_host.features);
    if (!ok) {
        snprintf(cg_host_error, sizeof cg_host_error, "host triple, CPU name or features too long");
        return;
    }
    unsigned major, minor, patch;
    LLVMGetVersion(&major, &minor, &patch);
    snprintf(cg_host.llvm_version, sizeof cg_host.llvm_version, "%u.%u.%u", major, minor, patch);
    char *msg = NULL;
    if (LLVMGetTargetFromTriple(cg_host.triple, &cg_host.target, &msg)) {
        snprintf(cg_host_error, sizeof cg_host_error, "target %s: %s", cg_host.triple,
                 msg ? msg : "unknown");
        cg_host.target = NULL;
    }
    LLVMDisposeMessage(msg);
}

const CgTarget *cg_target_host(IrError *err)
{
    pthread_once(&cg_host_once, cg_host_init);
    if (cg_host_error[0]) {
        ir_error(err, "codegen: %s", cg_host_error);
        return NULL;
    }
    return &cg_host;
}

LLVMTargetMachineRef cg_target_machine(const CgTarget *t, IrError *err)
{
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(
        t->target, t->triple, t->cpu, t->features, LLVMCodeGenLevelAggressive,
        LLVMRelocPIC, LLVMCodeModelSmall);
    if (!tm)
        ir_error(err, "codegen: cannot create a target machine for %s (%s)", t->triple, t->cpu);
    return tm;
}

static void cg_set_fn_attr(LLVMValueRef fn, const char *key, const char *value)
{
    LLVMContextRef ctx = LLVMGetModuleContext(LLVMGetGlobalParent(fn));
    LLVMAttributeRef a = LLVMCreateStringAttribute(ctx, key, (unsigned)strlen(key), value,
                                                   (unsigned)strlen(value));
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, a);
}

void cg_target_set_fn_attrs(const CgTarget *t, LLVMValueRef fn)
{
    cg_set_fn_attr(fn, "target-cpu", t->cpu);
    cg_set_fn_attr(fn, "target-features", t->features);
    cg_set_fn_attr(fn, "prefer-vector-width", "512");
}

bool cg_target_has_feature(const CgTarget *t, const char *feature)
{
    size_t n = strlen(feature);
    for (const char *p = t->features; (p = strstr(p, feature)); p += n) {
        bool starts = p > t->features && p[-1] == '+' && (p == t->features + 1 || p[-2] == ',');
        if (starts && (p[n] == ',' || p[n] == '\0'))
            return true;
    }
    return false;
}
