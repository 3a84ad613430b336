/* Test driver for an exported network (net.o + net.h): answers requests on stdin until EOF.
 * A request: mode (1 byte: 'b' bool bytes, 'p' packed words, 'e' raw features as doubles),
 * n (uint32, little-endian), then the payload: uint8 [n][NUM_INPUTS], uint64 [NUM_INPUTS][ceil(n/64)]
 * or double [n][NUM_FEATURES]. The answer on stdout: int32 [n][NUM_CLASSES] or uint8 [n][NUM_OUTPUTS]. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "net.h"

#if NET_HAS_HEAD
typedef int32_t result_t;
#define PER_SAMPLE NET_NUM_CLASSES
#define RUN net_scores
#define RUN_PACKED net_scores_packed
#else
typedef uint8_t result_t;
#define PER_SAMPLE NET_NUM_OUTPUTS
#define RUN net_bits
#define RUN_PACKED net_bits_packed
#endif

static void *read_exactly(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p || fread(p, 1, bytes, stdin) != bytes) exit(3);
    return p;
}

int main(void) {
    void *ws = malloc(NET_WORKSPACE_BYTES);
    if (!ws || net_workspace_bytes() != NET_WORKSPACE_BYTES) return 2;
    int mode;
    while ((mode = getchar()) != EOF) {
        uint32_t n;
        if (fread(&n, 4, 1, stdin) != 1) return 3;
        result_t *out = malloc(sizeof(result_t) * ((size_t)n * PER_SAMPLE + 1));
        if (mode == 'b') {
            uint8_t *x = read_exactly((size_t)n * NET_NUM_INPUTS);
            RUN(x, n, out, ws);
            free(x);
        } else if (mode == 'p') {
            const size_t wstride = ((size_t)n + 63) / 64;
            uint64_t *words = read_exactly(8 * wstride * NET_NUM_INPUTS);
            RUN_PACKED(words, wstride, n, out, ws);
            free(words);
#ifdef NET_NUM_FEATURES
        } else if (mode == 'e') {
            double *f = read_exactly(sizeof(double) * (size_t)n * NET_NUM_FEATURES);
            uint8_t *x = malloc((size_t)n * NET_NUM_INPUTS + 1);
            net_encode(f, n, x);
            RUN(x, n, out, ws);
            free(f);
            free(x);
#endif
        } else {
            return 4;
        }
        fwrite(out, sizeof(result_t), (size_t)n * PER_SAMPLE, stdout);
        free(out);
    }
    return 0;
}
