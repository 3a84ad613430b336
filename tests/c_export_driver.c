/* Test driver for lgc's C export (tests/test_export_c.py): links with an emitted net.c (prefix net).
 *
 * usage: driver IN OUT. IN holds records (int64 mode, n, wstride, use_workspace; payload); mode 0:
 * bytes [n][NET_NUM_INPUTS], 1: packed words [NET_NUM_INPUTS][wstride], 2: double features
 * [n][NET_NUM_FEATURES]. use_workspace 0 passes NULL (the call allocates), 1 a caller buffer of
 * net_workspace_bytes() bytes at an odd address. For each record OUT gets int64 rc and the
 * result: int32 scores [n][NET_NUM_CLASSES] with a head, else uint8 bits [n][NET_NUM_OUTPUTS].
 * Exits 3 when net_workspace_bytes() exceeds NET_WORKSPACE_BYTES (portable builds). Host byte order. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "net.h"

#if NET_HAS_HEAD
typedef int32_t result_t;
#define RESULT_WIDTH NET_NUM_CLASSES
#define RUN_BYTES net_scores
#define RUN_PACKED net_scores_packed
#define RUN_FEATURES net_scores_features
#else
typedef uint8_t result_t;
#define RESULT_WIDTH NET_NUM_OUTPUTS
#define RUN_BYTES net_bits
#define RUN_PACKED net_bits_packed
#define RUN_FEATURES net_bits_features
#endif

static int fail(const char *why) {
    fprintf(stderr, "driver: %s\n", why);
    return 2;
}

int main(int argc, char **argv) {
    FILE *in, *out;
    int64_t head[4];
    unsigned char *arena;
    if (argc != 3) return fail("usage: driver IN OUT");
#if !defined(VW) || VW == 1  /* the macro is the portable build's; -DVW=4 builds need more */
    if (net_workspace_bytes() > NET_WORKSPACE_BYTES) return 3;
#endif
    if (net_dims[0] != NET_NUM_INPUTS || net_dims[1] != NET_NUM_OUTPUTS) return fail("net_dims disagrees with the header");
    in = fopen(argv[1], "rb");
    out = fopen(argv[2], "wb");
    arena = (unsigned char *)malloc(net_workspace_bytes() + 1);
    if (!in || !out || !arena) return fail("cannot open files");
    while (fread(head, sizeof head, 1, in) == 1) {
        const int64_t mode = head[0], n = head[1], wstride = head[2];
        void *workspace = head[3] ? (void *)(arena + 1) : NULL;
        size_t size;
        void *payload;
        result_t *result;
        int64_t rc = -100;
        if (mode == 0) size = (size_t)n * NET_NUM_INPUTS;
        else if (mode == 1) size = (size_t)NET_NUM_INPUTS * (size_t)wstride * 8;
#ifdef NET_NUM_FEATURES
        else if (mode == 2) size = (size_t)n * NET_NUM_FEATURES * sizeof(double);
#endif
        else return fail("unknown mode");
        payload = malloc(size + 1);
        result = (result_t *)malloc((size_t)n * RESULT_WIDTH * sizeof(result_t) + 1);
        if (!payload || !result) return fail("out of memory");
        if (size && fread(payload, size, 1, in) != 1) return fail("short input");
        if (mode == 0) rc = RUN_BYTES((const uint8_t *)payload, (size_t)n, result, workspace);
        else if (mode == 1) rc = RUN_PACKED((const uint64_t *)payload, (size_t)wstride, (size_t)n, result, workspace);
#ifdef NET_NUM_FEATURES
        else rc = RUN_FEATURES((const double *)payload, (size_t)n, result, workspace);
#endif
        fwrite(&rc, sizeof rc, 1, out);
        fwrite(result, sizeof(result_t), (size_t)n * RESULT_WIDTH, out);
        free(payload);
        free(result);
    }
    free(arena);
    fclose(in);
    return fclose(out) == 0 ? 0 : fail("cannot write output");
}
