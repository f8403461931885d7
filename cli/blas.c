/* blas.c — start OpenBLAS with kernels as wide as the CPU's vectors.
 *
 * OpenBLAS (DYNAMIC_ARCH) picks its kernels once, when the library loads,
 * from the CPU model.  A model newer than the OpenBLAS build (Debian 12's
 * 0.3.21 on an Emerald Rapids Xeon, for one) falls back to its Prescott
 * (SSE3) kernels, and sgemm runs 3-5x slower than it could.  The only way to
 * choose is the environment variable OPENBLAS_CORETYPE, read at load time,
 * so gradc sets it and executes itself again, once, before a command that
 * runs kernels starts (the commands marked `blas` in commands.c's table):
 *
 *   OpenBLAS reports a generic core (Prescott, Core2, Nehalem, ...) and
 *   the CPU has AVX-512 F/BW/VL/DQ/CD  ->  OPENBLAS_CORETYPE=SkylakeX
 *   ... or AVX2 and FMA                ->  OPENBLAS_CORETYPE=Haswell
 *
 * Nothing happens when the caller set OPENBLAS_CORETYPE (any value) or
 * GRADC_BLAS_AUTO=0, or when OpenBLAS already chose a wide core.  If the
 * exec fails, gradc goes on with OpenBLAS's own choice.  Results do not
 * depend on it beyond float rounding (docs/codegen.md, "Threads and BLAS").
 */
#include "cli.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Cores whose sgemm is narrower than SSE4.2/AVX: OpenBLAS's fallbacks. */
static bool generic_core(const char *core)
{
    static const char *const narrow[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                         "Katmai", "Coppermine", "Northwood", "Banias", NULL};
    for (int k = 0; core && narrow[k]; k++)
        if (!strcasecmp(core, narrow[k]))
            return true;
    return false;
}

/* The widest OpenBLAS core this CPU runs, or NULL. */
static const char *best_core(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512cd"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
#endif
    return NULL;
}

void cli_blas_auto(char **argv)
{
    const char *off = getenv("GRADC_BLAS_AUTO");
    if (getenv("OPENBLAS_CORETYPE") || (off && !strcmp(off, "0")))
        return;
    const char *want = best_core();
    if (!want || !generic_core(openblas_get_corename()))
        return;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || setenv("OPENBLAS_CORETYPE", want, 1) != 0)
        return;
    self[n] = 0; /* exec the file by its name, so that ps shows gradc, not exe */
    execv(self, argv);
    unsetenv("OPENBLAS_CORETYPE"); /* the exec failed: keep OpenBLAS's choice */
}
