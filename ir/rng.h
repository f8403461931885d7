/* rng.h — the deterministic random numbers of gradc (implemented in ir/interp.c).
 *
 * Two uses, both reproducible across the interpreter, the JIT and the
 * runtime, bit for bit:
 *
 * 1. Parameter init.  A param named NAME that is initialised with seed S
 *    draws from its own xoshiro256** stream, seeded with
 *        ir_rng_stream(S, NAME) = ir_splitmix64(S ^ fnv1a64(NAME)),
 *    so the values do not depend on the order of params in the graph.
 *    xoshiro256**'s four state words are the first four outputs of a
 *    splitmix64 sequence started at that seed.  Normal draws come in
 *    Box-Muller pairs: u1 = 1 - uniform, u2 = uniform, r = sqrt(-2 ln u1),
 *    t = 2 pi u2; one call returns r cos t, the next r sin t.  uniform is
 *    the top 53 bits of a 64-bit draw times 2^-53.
 *
 *    Init kinds (a param's `init` attribute): normal draws std * N(0,1);
 *    uniform draws bound * (2u - 1) with u uniform, i.e. U(-bound, bound),
 *    PyTorch's default for nn.Linear weights and biases with bound
 *    1/sqrt(fan_in); zeros and ones are constants.  IrInitSampler gives
 *    the values of one param in row-major order.
 *
 * 2. Dropout.  The keep mask is counter-based, so any element can be
 *    computed on its own (by any thread, in any kernel order):
 *        x = seed ^ (step * 0xA0761D6478BD642F) ^ (index * 0xE7037ED1A0B428DB)
 *        u = (ir_splitmix64(x) >> 11) * 2^-53                  in [0, 1)
 *        keep = u >= p ? 1 / (1 - p) : 0
 *    with all arithmetic mod 2^64; index is the flat row-major element
 *    index of dropout's input.  p <= 0 keeps everything (1.0), p >= 1
 *    drops everything (0.0).
 *
 *   IrRng r;
 *   ir_rng_init(&r, ir_rng_stream(42, "wte"));
 *   double w = 0.02 * ir_rng_normal(&r);
 *   double m = ir_dropout_keep(7, step, i, 0.1);   // 0 or 1/0.9
 */
#ifndef GRADC_RNG_H
#define GRADC_RNG_H

#include <stdbool.h>
#include <stdint.h>

/* The first output of splitmix64 started at state x:
 * z = x + 0x9E3779B97F4A7C15; z = (z ^ z>>30) * 0xBF58476D1CE4E5B9;
 * z = (z ^ z>>27) * 0x94D049BB133111EB; return z ^ z>>31. */
uint64_t ir_splitmix64(uint64_t x);

typedef struct IrRng {
    uint64_t s[4]; /* xoshiro256** state */
    double spare;  /* the sine half of the last Box-Muller pair */
    bool has_spare;
} IrRng;

void ir_rng_init(IrRng *r, uint64_t seed);
uint64_t ir_rng_next(IrRng *r);
double ir_rng_uniform(IrRng *r); /* [0, 1) */
double ir_rng_normal(IrRng *r);  /* mean 0, std 1 */
/* The seed of the stream of a named param under a global seed. */
uint64_t ir_rng_stream(uint64_t seed, const char *name);

/* A param's initial values: ir_init_begin(&s, n, seed), then numel calls
 * of ir_init_next.  `n` is an OP_PARAM node (attributes init, std, bound).
 * The kinds, by name: ir_init_names (NULL-terminated, in IrInitKind order);
 * ir_init_kind maps a name to its kind, -1 for none. */
typedef enum IrInitKind { IR_INIT_NORMAL, IR_INIT_UNIFORM, IR_INIT_ZEROS, IR_INIT_ONES } IrInitKind;
#define IR_INIT_KINDS "normal, uniform, zeros or ones"
extern const char *const ir_init_names[];
int ir_init_kind(const char *name);

typedef struct IrInitSampler {
    int kind;     /* IrInitKind, -1 when the param's init is unknown */
    double scale; /* std or bound */
    IrRng rng;
} IrInitSampler;

struct IrNode;
bool ir_init_begin(IrInitSampler *s, const struct IrNode *n, uint64_t seed);
double ir_init_next(IrInitSampler *s);

/* 0 or 1/(1-p): the dropout multiplier of element `index` (see above). */
double ir_dropout_keep(uint64_t seed, uint64_t step, uint64_t index, double p);

#endif
