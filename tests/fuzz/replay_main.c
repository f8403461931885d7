/* replay_main.c — a main() for a libFuzzer harness in the normal build:
 * `replay_fuzz_NAME FILE...` runs the harness once on each file, as the
 * fuzzer would, so that tests/scripts/fuzz_regress.sh replays every crash
 * input ever found (tests/fuzz/regress/) and the seed corpora on every test
 * run, under the sanitizers too, without clang's libFuzzer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16;
    uint8_t *buf = malloc(cap);
    *n = 0;
    for (size_t got; buf && (got = fread(buf + *n, 1, cap - *n, f)) > 0;)
        if ((*n += got) == cap) {
            uint8_t *b = realloc(buf, cap *= 2);
            if (!b)
                free(buf);
            buf = b;
        }
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        size_t n;
        uint8_t *data = read_all(argv[i], &n);
        if (!data) {
            fprintf(stderr, "replay: cannot read %s\n", argv[i]);
            return 1;
        }
        LLVMFuzzerTestOneInput(data, n);
        free(data);
    }
    printf("replayed %d inputs\n", argc - 1);
    return 0;
}
