/* rng.c — gradc's deterministic random numbers (rng.h): splitmix64,
 * xoshiro256**, Box-Muller normals, per-param streams, the counter-based
 * dropout mask and the param init kinds.  The interpreter, the runtime and
 * the JIT's dropout kernels all agree with these bit for bit.
 */
#include "rng.h"

#include "ir.h"

#include <math.h>
#include <string.h>

uint64_t ir_splitmix64(uint64_t x)
{
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void ir_rng_init(IrRng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        r->s[i] = ir_splitmix64(seed);
        seed += 0x9E3779B97F4A7C15ull;
    }
    r->has_spare = false;
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
uint64_t ir_rng_next(IrRng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

static double top53(uint64_t x)
{
    return (double)(x >> 11) * 0x1.0p-53;
}

double ir_rng_uniform(IrRng *r)
{
    return top53(ir_rng_next(r));
}

/* Box-Muller: one pair (r cos t, r sin t) per two uniforms, cos first. */
double ir_rng_normal(IrRng *r)
{
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    double u1 = 1.0 - ir_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = ir_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1)), t = 2.0 * M_PI * u2;
    r->spare = rad * sin(t);
    r->has_spare = true;
    return rad * cos(t);
}

uint64_t ir_rng_stream(uint64_t seed, const char *name)
{
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a 64 */
    for (const unsigned char *p = (const unsigned char *)(name ? name : ""); *p; p++)
        h = (h ^ *p) * 0x100000001B3ull;
    return ir_splitmix64(seed ^ h);
}

double ir_dropout_keep(uint64_t seed, uint64_t step, uint64_t index, double p)
{
    if (p <= 0)
        return 1.0;
    if (p >= 1)
        return 0.0;
    uint64_t x = seed ^ (step * 0xA0761D6478BD642Full) ^ (index * 0xE7037ED1A0B428DBull);
    return top53(ir_splitmix64(x)) >= p ? 1.0 / (1.0 - p) : 0.0;
}

/* ---------------------------------------------------------------- param init */

const char *const ir_init_names[] = {"normal", "uniform", "zeros", "ones", NULL};

int ir_init_kind(const char *name)
{
    for (int k = 0; name && ir_init_names[k]; k++)
        if (!strcmp(name, ir_init_names[k]))
            return k;
    return -1;
}

bool ir_init_begin(IrInitSampler *s, const IrNode *n, uint64_t seed)
{
    s->kind = ir_init_kind(ir_node_str(n, ATTR_INIT, NULL));
    s->scale = s->kind == IR_INIT_NORMAL    ? ir_node_float(n, ATTR_STD, 0.02)
             : s->kind == IR_INIT_UNIFORM ? ir_node_float(n, ATTR_BOUND, 0.0) : 0.0;
    ir_rng_init(&s->rng, ir_rng_stream(seed, n->name));
    return s->kind >= 0;
}

double ir_init_next(IrInitSampler *s)
{
    switch (s->kind) {
    case IR_INIT_NORMAL:  return s->scale * ir_rng_normal(&s->rng);
    case IR_INIT_UNIFORM: return s->scale * (2.0 * ir_rng_uniform(&s->rng) - 1.0);
    case IR_INIT_ONES:    return 1.0;
    default:              return 0.0;
    }
}
