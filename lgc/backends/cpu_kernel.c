/* lgc's table-driven CPU kernel: one generic source, built once per target (never per circuit).
 *
 * The circuit is data: gates sorted by level and grouped by kind (AND, XOR, ...), each gate a
 * triple (slot of a, slot of b, slot of result). A "slot" holds one vector of VW uint64 words,
 * i.e. TILE = 64*VW samples of one node. Slots are allocated by liveness in Python, so the
 * working set per tile is the widest live cut of the circuit, not the whole circuit.
 *
 * Per tile: pack bool rows into bit-sliced input slots (8x8 shift-or + byte transpose, or 64-bit
 * masks + GF(2) transposes; any nonzero byte is True, as in numpy), run every (level, kind) group
 * as a tight loop with no branch per gate, then read out the raw output bits or the group-sum head:
 * the gates only the head reads ("head gates") are computed into a value buffer instead of slots,
 * each popcount term is a bit-sliced carry-save count, a class's terms are summed bit-sliced
 * (two's complement) and the sum is converted to int32 once per class.
 *
 * VW (words per vector) is set by the build: 1 (portable C), 4 (AVX2), 8 (AVX-512).
 * With VW 1 the file is strict C99 (a vector is a plain uint64_t; no GNU extension is needed; the
 * caller may pass the working memory, so no allocation either), so
 * lgc.export emits this same text, with the circuit's tables appended, as a standalone net.c;
 * there LGC_API is `static` and LGC_GATES_AS_CODE may name a straight-line gates function.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) || defined(__AVX512BW__)
#include <immintrin.h>
#endif

#ifndef VW
#define VW 1
#endif
#ifndef LGC_API
#define LGC_API  /* the emitted C makes the kernel's entry points static */
#endif
#ifndef __GNUC__
#define __builtin_prefetch(...) ((void)0)  /* a hint only */
#endif
#define TILE (64 * VW)
#ifndef PF_LOCALITY
#define PF_LOCALITY 2
#endif
#ifndef PACK_PREFETCH
#define PACK_PREFETCH 1
#endif
#ifndef CANONICAL_BOOLS_ONLY
#define CANONICAL_BOOLS_ONLY 0  /* 1: packing as before issue 16 (wrong on bytes other than 0/1): A/B benchmarks only */
#endif
#ifndef PAGE_AHEAD
#define PAGE_AHEAD 64  /* rows; mask packing: 7-10% faster end to end on the 48K net (16-256 alike; neutral for shift-or) */
#endif

/* The row PAGE_AHEAD rows after r (rows are n_in bytes apart) and the one after it: when they
 * straddle a 4 KiB page, touch the new page's first line. Hardware prefetchers stop at page
 * boundaries; this starts the next page (and its TLB entry) early. Never faults (a prefetch),
 * so it may run past the end of the batch; the address is computed as an integer. */
static inline void touch_page_ahead(const uint8_t *r, int64_t n_in) {
    const uintptr_t p = (uintptr_t)r + (uintptr_t)(PAGE_AHEAD * n_in);
    if ((p ^ (p + (uintptr_t)n_in)) >> 12) __builtin_prefetch((const void *)(((p + (uintptr_t)n_in) >> 12) << 12), 0, 3);
}

#if VW == 1
typedef uint64_t vec;
#define WORD(v, w) ((void)(w), (v))
#else
typedef uint64_t vec __attribute__((vector_size(VW * 8), aligned(VW * 8)));
#define WORD(v, w) (v)[w]
#endif
#ifdef LGC_GATES_AS_CODE
static void LGC_GATES_AS_CODE(vec *S);  /* defined after this file by the emitted C */
#endif

enum { K_FALSE, K_TRUE, K_COPY, K_NOT, K_AND, K_ANDNOT, K_XOR, K_OR, K_NOR, K_XNOR, K_ORNOT, K_NAND };

LGC_API int lgc_tile_samples(void) { return TILE; }

static inline uint64_t load_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* 8 bool bytes -> the same 8 bytes as 0/1: any nonzero byte is True (numpy's meaning; arrays made
 * by .view(bool) hold 0xFF). Per byte, bit 7 of (b & 0x7F) + 0x7F | b is set iff b != 0. */
static inline uint64_t bool_bytes(uint64_t v) {
    const uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL;
    return ((((v & low7) + low7) | v) >> 7) & 0x0101010101010101ULL;
}

/* Columns [j0, j1) of TILE rows into input slots, 8 samples at a time (portable path). The
 * shift-or is exact for 0/1 bytes only: it also ORs every byte it reads into `seen`, and when a
 * byte other than 0/1 turns up (a non-canonical bool array) the columns are packed again with
 * each byte normalised first. One OR per load on the canonical path instead of five SWAR ops. */
static void pack_columns_scalar(const uint8_t *const *rows, int64_t j0, int64_t j1, vec *S) {
    uint8_t *bytes = (uint8_t *)S;
    uint64_t seen = 0;
    for (int g = 0; g < TILE / 8; g++) {
        const uint8_t *const *r = rows + 8 * g;
        int64_t j = j0;
        for (; j + 8 <= j1; j += 8) {
            uint64_t t = 0;
            for (int s = 0; s < 8; s++) {
                const uint64_t v = load_u64(r[s] + j);
                seen |= v;
                t |= v << s;  /* 0/1 bytes: no carry (checked by seen) */
            }
            for (int i = 0; i < 8; i++) bytes[(j + i) * (int64_t)sizeof(vec) + g] = (uint8_t)(t >> (8 * i));
        }
        for (; j < j1; j++) {
            uint8_t t = 0;
            for (int s = 0; s < 8; s++) t |= (uint8_t)((r[s][j] != 0) << s);
            bytes[j * (int64_t)sizeof(vec) + g] = t;
        }
    }
    if (CANONICAL_BOOLS_ONLY || !(seen & 0xFEFEFEFEFEFEFEFEULL)) return;
    for (int g = 0; g < TILE / 8; g++) {
        const uint8_t *const *r = rows + 8 * g;
        for (int64_t j = j0; j + 8 <= j1; j += 8) {
            uint64_t t = 0;
            for (int s = 0; s < 8; s++) t |= bool_bytes(load_u64(r[s] + j)) << s;
            for (int i = 0; i < 8; i++) bytes[(j + i) * (int64_t)sizeof(vec) + g] = (uint8_t)(t >> (8 * i));
        }
    }
}

#if defined(__AVX512BW__) && VW % 8 == 0
#define BLK 64
typedef __m512i bvec;
#define BLOADU(p) _mm512_loadu_si512((const void *)(p))
#define BMIN1(v) (CANONICAL_BOOLS_ONLY ? (v) : _mm512_min_epu8(v, _mm512_set1_epi8(1)))
#define BSTORE(p, v) _mm512_storeu_si512((void *)(p), v)
#define BOR _mm512_or_si512
#define BSLL _mm512_slli_epi64
#define UNLO8 _mm512_unpacklo_epi8
#define UNHI8 _mm512_unpackhi_epi8
#define UNLO16 _mm512_unpacklo_epi16
#define UNHI16 _mm512_unpackhi_epi16
#define UNLO32 _mm512_unpacklo_epi32
#define UNHI32 _mm512_unpackhi_epi32
#elif defined(__AVX2__) && VW == 4
#define BLK 32
typedef __m256i bvec;
#define BLOADU(p) _mm256_loadu_si256((const __m256i *)(p))
#define BMIN1(v) (CANONICAL_BOOLS_ONLY ? (v) : _mm256_min_epu8(v, _mm256_set1_epi8(1)))
#define BSTORE(p, v) _mm256_storeu_si256((__m256i *)(p), v)
#define BOR _mm256_or_si256
#define BSLL _mm256_slli_epi64
#define UNLO8 _mm256_unpacklo_epi8
#define UNHI8 _mm256_unpackhi_epi8
#define UNLO16 _mm256_unpacklo_epi16
#define UNHI16 _mm256_unpackhi_epi16
#define UNLO32 _mm256_unpacklo_epi32
#define UNHI32 _mm256_unpackhi_epi32
#endif

#ifdef BLK
/* 8 vectors of BLK bytes (V[g] byte i = 8 samples of column i) -> BLK qwords (column-major). */
static inline void byte_transpose(const bvec V[8], uint64_t out[BLK]) {
    bvec a0 = UNLO8(V[0], V[1]), a1 = UNHI8(V[0], V[1]), a2 = UNLO8(V[2], V[3]), a3 = UNHI8(V[2], V[3]);
    bvec a4 = UNLO8(V[4], V[5]), a5 = UNHI8(V[4], V[5]), a6 = UNLO8(V[6], V[7]), a7 = UNHI8(V[6], V[7]);
    bvec b0 = UNLO16(a0, a2), b1 = UNHI16(a0, a2), b2 = UNLO16(a1, a3), b3 = UNHI16(a1, a3);
    bvec b4 = UNLO16(a4, a6), b5 = UNHI16(a4, a6), b6 = UNLO16(a5, a7), b7 = UNHI16(a5, a7);
    BSTORE(out + 0 * BLK / 8, UNLO32(b0, b4));
    BSTORE(out + 1 * BLK / 8, UNHI32(b0, b4));
    BSTORE(out + 2 * BLK / 8, UNLO32(b1, b5));
    BSTORE(out + 3 * BLK / 8, UNHI32(b1, b5));
    BSTORE(out + 4 * BLK / 8, UNLO32(b2, b6));
    BSTORE(out + 5 * BLK / 8, UNHI32(b2, b6));
    BSTORE(out + 6 * BLK / 8, UNLO32(b3, b7));
    BSTORE(out + 7 * BLK / 8, UNHI32(b3, b7));
}

/* Which column each output qword of byte_transpose holds, found by running it on column ids. */
static int col_of_qword[BLK];
static volatile int col_table_ready = 0;

static void init_col_table(void) {
    if (col_table_ready) return;
    uint8_t ids[BLK];
    bvec V[8];
    uint64_t out[BLK];
    for (int i = 0; i < BLK; i++) ids[i] = (uint8_t)i;
    for (int g = 0; g < 8; g++) V[g] = BLOADU(ids);
    byte_transpose(V, out);
    for (int q = 0; q < BLK; q++) col_of_qword[q] = (int)(out[q] & 0xFF);
    col_table_ready = 1;
}

/* Full BLK-column blocks, 64 rows (one word) at a time. Each group of 8 rows is read
 * left to right (8 sequential streams, friendly to the prefetcher), shifted and OR-ed into one
 * vector per block; then each block's 8 vectors are byte-transposed into 64-sample words. */
typedef struct { const uint8_t *p, *end; } prefetch_cursor;

__attribute__((optimize("no-tree-vectorize"))) static void pack_columns_vector(const uint8_t *const *rows, int64_t nblocks, vec *S, bvec *T,
                                prefetch_cursor *pf) {
    uint64_t *words = (uint64_t *)S;
    uint64_t out[BLK];
    for (int w = 0; w < VW; w++) {
        const uint8_t *const *r = rows + 64 * w;
        for (int g = 0; g < 8; g++) {
            const uint8_t *const *rg = r + 8 * g;
            for (int64_t blk = 0; blk < nblocks; blk++) {
                const int64_t j = blk * BLK;
                /* min(byte, 1): any nonzero bool byte (0xFF from .view(bool)) becomes 1, so the
                 * shifts cannot carry into a neighbour; one vpminub with the load folded in */
                bvec t = BMIN1(BLOADU(rg[0] + j));
                t = BOR(t, BSLL(BMIN1(BLOADU(rg[1] + j)), 1));
                t = BOR(t, BSLL(BMIN1(BLOADU(rg[2] + j)), 2));
                t = BOR(t, BSLL(BMIN1(BLOADU(rg[3] + j)), 3));
                t = BOR(t, BSLL(BMIN1(BLOADU(rg[4] + j)), 4));
                t = BOR(t, BSLL(BMIN1(BLOADU(rg[5] + j)), 5));
                t = BOR(t, BSLL(BMIN1(BLOADU(rg[6] + j)), 6));
                t = BOR(t, BSLL(BMIN1(BLOADU(rg[7] + j)), 7));
                T[blk * 8 + g] = t;
                if (PACK_PREFETCH && pf->p < pf->end) {  /* keep memory busy: start on the next tile's rows */
                    __builtin_prefetch(pf->p, 0, 2);
                    __builtin_prefetch(pf->p + 64, 0, 2);
                    __builtin_prefetch(pf->p + 128, 0, 2);
                    pf->p += 192;
                }
            }
        }
        for (int64_t blk = 0; blk < nblocks; blk++) {
            byte_transpose(T + blk * 8, out);
            const int64_t j = blk * BLK;
            for (int q = 0; q < BLK; q++) words[(j + col_of_qword[q]) * VW + w] = out[q];
        }
    }
}
#endif

#ifndef BLK
typedef struct { const uint8_t *p, *end; } prefetch_cursor;
#endif

#if defined(__AVX512BW__) && defined(__AVX512VBMI__) && defined(__GFNI__) && VW == 8
#define MASK_PACK 1
#define MSTRIDE (TILE + 8)  /* masks per 64-input block, padded: a 4 KiB stride would alias stores */
/* 8x8 transpose of qwords across 8 registers: r[i].qword[j] <-> r[j].qword[i] (3 stages of
 * two-source permutes). */
static inline void transpose_qwords(__m512i r[8]) {
    /* stage with block size b: lo takes qword q (q & b == 0) from x, q - b + 8 from y; hi the rest */
    static const int64_t LO[3][8] = {{0, 1, 2, 3, 8, 9, 10, 11}, {0, 1, 8, 9, 4, 5, 12, 13}, {0, 8, 2, 10, 4, 12, 6, 14}};
    static const int64_t HI[3][8] = {{4, 5, 6, 7, 12, 13, 14, 15}, {2, 3, 10, 11, 6, 7, 14, 15}, {1, 9, 3, 11, 5, 13, 7, 15}};
    for (int st = 0, b = 4; st < 3; st++, b >>= 1) {
        const __m512i ilo = _mm512_loadu_si512(LO[st]), ihi = _mm512_loadu_si512(HI[st]);
        for (int i = 0; i < 8; i++) {
            if (i & b) continue;
            const __m512i x = r[i], y = r[i + b];
            r[i] = _mm512_permutex2var_epi64(x, ilo, y);
            r[i + b] = _mm512_permutex2var_epi64(x, ihi, y);
        }
    }
}

/* Pack a tile with the rows read one at a time, front to back (one sequential stream): each
 * 64-byte block of a row becomes a 64-bit mask (vptestmb), then every 64 samples x 64 inputs
 * bit matrix is transposed with byte permutes (vpermb), 8x8 bit transposes (gf2p8affineqb) and
 * qword transposes. About 60 instructions per sample for 784 inputs. */
static void pack_masks(const uint8_t *const *rows, int64_t n_in, vec *S, uint64_t *M, prefetch_cursor *pf) {
    const int64_t nb = (n_in + 63) / 64;
    const __mmask64 tail = (n_in % 64) ? (((__mmask64)1 << (n_in % 64)) - 1) : ~(__mmask64)0;
    if (nb == 0) return;
    for (int s = 0; s < TILE; s++) {  /* one stream: measured faster than 2-8 interleaved ones */
        const uint8_t *r = rows[s];
        touch_page_ahead(r, n_in);
        for (int64_t blk = 0; blk + 1 < nb; blk++) {
            const __m512i v = _mm512_loadu_si512((const void *)(r + 64 * blk));
            M[blk * MSTRIDE + s] = (uint64_t)_mm512_test_epi8_mask(v, v);
        }
        const __m512i v = _mm512_maskz_loadu_epi8(tail, (const void *)(r + 64 * (nb - 1)));
        M[(nb - 1) * MSTRIDE + s] = (uint64_t)_mm512_test_epi8_mask(v, v);
    }
    (void)pf;  /* measured: with touch_page_ahead, prefetching the next tile here costs ~3% */
    /* dest byte 8B + 7 - i <- source byte 8i + B (with the row reversal gf2p8affine's bit order needs) */
    uint8_t p1[64], p2[64];
    for (int B = 0; B < 8; B++)
        for (int i = 0; i < 8; i++) {
            p1[8 * B + 7 - i] = (uint8_t)(8 * i + B);
            p2[8 * B + i] = (uint8_t)(8 * i + B);
        }
    const __m512i P1 = _mm512_loadu_si512(p1), P2 = _mm512_loadu_si512(p2);
    const __m512i bitsel = _mm512_set1_epi64((int64_t)0x8040201008040201ULL);
    __m512i U[8][8];  /* [B][w]: qword c = input 64 blk + 8B + c, samples 64w .. 64w+63 */
    for (int64_t blk = 0; blk < nb; blk++) {
        for (int w = 0; w < VW; w++) {
            __m512i R[8];
            for (int r = 0; r < 8; r++) {  /* samples 64w + 8r + i, i = qword */
                const __m512i m = _mm512_loadu_si512((const void *)(M + blk * MSTRIDE + 64 * w + 8 * r));
                /* qword B byte 7-i = byte B of sample i; then bit transpose: byte c bit i = input 8B+c of sample i */
                R[r] = _mm512_gf2p8affine_epi64_epi8(bitsel, _mm512_permutexvar_epi8(P1, m), 0);
            }
            transpose_qwords(R);  /* R[B].qword[r] = octet r's byte block B */
            for (int B = 0; B < 8; B++) U[B][w] = _mm512_permutexvar_epi8(P2, R[B]);  /* qword c byte r */
        }
        for (int B = 0; B < 8; B++) {
            transpose_qwords(U[B]);  /* U[B][c].qword[w] */
            for (int c = 0; c < 8; c++) {
                const int64_t j = 64 * blk + 8 * B + c;
                if (j < n_in) S[j] = (vec)U[B][c];
            }
        }
    }
}
#endif

static void pack_tile(const uint8_t *x, int64_t n_in, int64_t nrows, const uint8_t *zero_row,
                      const uint8_t **rows, vec *S, void *scratch, prefetch_cursor *pf) {
    for (int64_t s = 0; s < TILE; s++) rows[s] = s < nrows ? x + s * n_in : zero_row;
#ifdef MASK_PACK
    pack_masks(rows, n_in, S, (uint64_t *)scratch, pf);
    return;
#endif
    int64_t done = 0;
#ifdef BLK
    int64_t nblocks = n_in / BLK;
    pack_columns_vector(rows, nblocks, S, (bvec *)scratch, pf);
    done = nblocks * BLK;
#endif
    pack_columns_scalar(rows, done, n_in, S);
    (void)pf; (void)scratch;
}

/* pf, pf_bytes: the next tile's input rows, prefetched evenly across all gates (in a copy of each
 * group's loop, so the plain loop carries no prefetch), so the memory traffic of packing overlaps
 * the gates at a steady rate the memory can sustain instead of stalling the next pack. */
#if defined(__AVX512F__) && VW == 8
#define HAS_TERNARY 1
#else
#define HAS_TERNARY 0
#endif
LGC_API int lgc_has_ternary(void) { return HAS_TERNARY; }

/* One loop per gate kind, shared by run_gates and head_gates: KIND_SWITCH(F, kind) expands to a
 * switch whose case for each 2-input kind runs F(expression of a, b, zero); TERNARY_SWITCH(F, imm)
 * to one whose case for each vpternlogq immediate runs F(imm). */
#define KIND_SWITCH(F, kind)                                                    \
    switch (kind) {                                                             \
        case K_FALSE: F(zero)                                                   \
        case K_TRUE: F(~zero)                                                   \
        case K_COPY: F(a)                                                       \
        case K_NOT: F(~a)                                                       \
        case K_AND: F(a & b)                                                    \
        case K_ANDNOT: F(a & ~b)                                                \
        case K_XOR: F(a ^ b)                                                    \
        case K_OR: F(a | b)                                                     \
        case K_NOR: F(~(a | b))                                                 \
        case K_XNOR: F(~(a ^ b))                                                \
        case K_ORNOT: F(a | ~b)                                                 \
        case K_NAND: F(~(a & b))                                                \
        default: break;                                                         \
    }
#define T4_(F, i) F(i) F(i + 1) F(i + 2) F(i + 3)
#define T16_(F, i) T4_(F, i) T4_(F, i + 4) T4_(F, i + 8) T4_(F, i + 12)
#define T64_(F, i) T16_(F, i) T16_(F, i + 16) T16_(F, i + 32) T16_(F, i + 48)
#define TERNARY_SWITCH(F, imm) switch (imm) { T64_(F, 0) T64_(F, 64) T64_(F, 128) T64_(F, 192) default: break; }

/* tgates: 3-input gates (a, b, c, result) of kinds 16 + imm (vpternlogq truth table imm). */
static void run_gates(vec *S, int64_t ngroups, const int32_t *groups, const int32_t *gates,
                      const int32_t *tgates, const uint8_t *pf, int64_t pf_bytes) {
    const vec zero = {0};
    (void)tgates;  /* read only by kernels with 3-input gates */
    int64_t n_gates = 0;  /* binary and 3-input */
    for (int64_t gi = 0; gi < ngroups; gi++) n_gates += groups[3 * gi + 2] - groups[3 * gi + 1];
    const int64_t step = n_gates > 0 ? (pf_bytes << 16) / n_gates : 0;  /* bytes per gate, 16.16 fixed point */
    int64_t off = 0;
    for (int64_t gi = 0; gi < ngroups; gi++) {
        const int32_t kind = groups[3 * gi], g0 = groups[3 * gi + 1], g1 = groups[3 * gi + 2];
        const int32_t gm = pf_bytes > 0 ? g1 : g0;
#define BODY(EXPR)                                                   \
        const int32_t *t = gates + 3 * (int64_t)i;                   \
        const vec a = S[t[0]], b = S[t[1]];                          \
        (void)a; (void)b;                                            \
        S[t[2]] = (EXPR);
#define LOOP(EXPR)                                                   \
    {                                                                \
        int32_t i = g0;                                              \
        for (; i < gm; i++) {                                        \
            BODY(EXPR)                                               \
            __builtin_prefetch(pf + (off >> 16), 0, PF_LOCALITY);    \
            off += step;                                             \
        }                                                            \
        for (; i < g1; i++) { BODY(EXPR) }                           \
    }                                                                \
    break;
#if HAS_TERNARY
        if (kind >= 16) {
#define TLOOP(IMM)                                                                          \
    case IMM:                                                                               \
        for (int32_t i = g0; i < g1; i++) {                                                 \
            const int32_t *t = tgates + 4 * (int64_t)i;                                     \
            S[t[3]] = (vec)_mm512_ternarylogic_epi64((__m512i)S[t[0]], (__m512i)S[t[1]],     \
                                                     (__m512i)S[t[2]], IMM);                 \
        }                                                                                   \
        break;
            TERNARY_SWITCH(TLOOP, kind - 16)
#undef TLOOP
            continue;
        }
#endif
        KIND_SWITCH(LOOP, kind)
#undef LOOP
#undef BODY
    }
}

/* acc[s] += sum over k < L of (bit s of plane P[k]) * w[k], for the TILE samples. Chunk by chunk
 * of acc, all planes at once: acc is loaded and stored once per chunk (a masked add per plane in
 * a register, 4 chunks as independent chains), not once per plane. */
static void add_planes(int32_t *acc, const vec *P, int L, const int32_t *w) {
#if defined(__AVX512F__) && VW % 8 == 0
    __m512i inc[64];
    for (int k = 0; k < L; k++) inc[k] = _mm512_set1_epi32(w[k]);
    const uint16_t *bits = (const uint16_t *)P;  /* plane k, samples 16c .. 16c+15: bits[k * TILE / 16 + c] */
    for (int c = 0; c < TILE / 16; c += 4) {  /* 4 chunks at once: 4 independent add chains */
        __m512i r0 = _mm512_load_si512((const void *)(acc + 16 * c)), r1 = _mm512_load_si512((const void *)(acc + 16 * c + 16));
        __m512i r2 = _mm512_load_si512((const void *)(acc + 16 * c + 32)), r3 = _mm512_load_si512((const void *)(acc + 16 * c + 48));
        for (int k = 0; k < L; k++) {
            const uint16_t *b = bits + k * (TILE / 16) + c;
            r0 = _mm512_mask_add_epi32(r0, (__mmask16)b[0], r0, inc[k]);
            r1 = _mm512_mask_add_epi32(r1, (__mmask16)b[1], r1, inc[k]);
            r2 = _mm512_mask_add_epi32(r2, (__mmask16)b[2], r2, inc[k]);
            r3 = _mm512_mask_add_epi32(r3, (__mmask16)b[3], r3, inc[k]);
        }
        _mm512_store_si512((void *)(acc + 16 * c), r0);
        _mm512_store_si512((void *)(acc + 16 * c + 16), r1);
        _mm512_store_si512((void *)(acc + 16 * c + 32), r2);
        _mm512_store_si512((void *)(acc + 16 * c + 48), r3);
    }
#elif defined(__AVX2__) && VW == 4
    __m256i inc[64];
    for (int k = 0; k < L; k++) inc[k] = _mm256_set1_epi32(w[k]);
    const __m256i sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const uint8_t *bits = (const uint8_t *)P;  /* plane k, samples 8c .. 8c+7: bits[k * TILE / 8 + c] */
    for (int c = 0; c < TILE / 8; c += 2) {  /* 2 chunks at once: independent add chains */
        __m256i r0 = _mm256_loadu_si256((const __m256i *)(acc + 8 * c));
        __m256i r1 = _mm256_loadu_si256((const __m256i *)(acc + 8 * c + 8));
        for (int k = 0; k < L; k++) {
            const uint8_t *bk = bits + k * (TILE / 8) + c;
            const __m256i b0 = _mm256_and_si256(_mm256_set1_epi32(bk[0]), sel);
            const __m256i b1 = _mm256_and_si256(_mm256_set1_epi32(bk[1]), sel);
            r0 = _mm256_add_epi32(r0, _mm256_and_si256(_mm256_cmpeq_epi32(b0, sel), inc[k]));
            r1 = _mm256_add_epi32(r1, _mm256_and_si256(_mm256_cmpeq_epi32(b1, sel), inc[k]));
        }
        _mm256_storeu_si256((__m256i *)(acc + 8 * c), r0);
        _mm256_storeu_si256((__m256i *)(acc + 8 * c + 8), r1);
    }
#else
    for (int k = 0; k < L; k++) {
        for (int q = 0; q < VW; q++) {
            const uint64_t word = WORD(P[k], q);
            int32_t *a = acc + 64 * q;
            for (int j = 0; j < 64; j++) a[j] += (int32_t)((word >> j) & 1) * w[k];
        }
    }
#endif
}

/* Popcount of one class's group, per sample, bit-sliced: a Harley-Seal carry-save tree over
 * 16 outputs at a time (15 full adders), whose weight-16 carries ripple into higher planes.
 * Branch-free; about one full adder per output. Then the planes are added into acc. */
#if defined(__AVX512F__) && VW == 8
#define CSA(h, l, a, b, c) do { const __m512i a_ = (__m512i)(a), b_ = (__m512i)(b), c_ = (__m512i)(c); \
    h = (vec)_mm512_ternarylogic_epi64(a_, b_, c_, 0xE8); l = (vec)_mm512_ternarylogic_epi64(a_, b_, c_, 0x96); } while (0)
#else
#define CSA(h, l, a, b, c) do { const vec u_ = (a) ^ (b); h = ((a) & (b)) | (u_ & (c)); l = u_ ^ (c); } while (0)
#endif

/* Harley-Seal step over 16 values X(0..15) (15 full adders) into the count planes ones, twos,
 * fours, eights (locals of the caller, kept in registers); weight-16 carries ripple into P[4..L). */
#define HS16(X)                                                                 \
    do {                                                                        \
        vec twosA, twosB, foursA, foursB, eightsA, eightsB, sixteens;           \
        CSA(twosA, ones, ones, X(0), X(1));                                     \
        CSA(twosB, ones, ones, X(2), X(3));                                     \
        CSA(foursA, twos, twos, twosA, twosB);                                  \
        CSA(twosA, ones, ones, X(4), X(5));                                     \
        CSA(twosB, ones, ones, X(6), X(7));                                     \
        CSA(foursB, twos, twos, twosA, twosB);                                  \
        CSA(eightsA, fours, fours, foursA, foursB);                             \
        CSA(twosA, ones, ones, X(8), X(9));                                     \
        CSA(twosB, ones, ones, X(10), X(11));                                   \
        CSA(foursA, twos, twos, twosA, twosB);                                  \
        CSA(twosA, ones, ones, X(12), X(13));                                   \
        CSA(twosB, ones, ones, X(14), X(15));                                   \
        CSA(foursB, twos, twos, twosA, twosB);                                  \
        CSA(eightsB, fours, fours, foursA, foursB);                             \
        CSA(sixteens, eights, eights, eightsA, eightsB);                        \
        for (int i_ = 4; i_ < L; i_++) {                                        \
            const vec t_ = P[i_] & sixteens;                                    \
            P[i_] ^= sixteens;                                                  \
            sixteens = t_;                                                      \
        }                                                                       \
    } while (0)

/* The head gates (values only the head reads, which never take a slot): for the ng groups tg
 * (kind, first, end) over rows tgates (slot a, slot b, slot c, place in V), V[place] = value. */
static void head_gates(const vec *S, const int32_t *tg, int64_t ng, const int32_t *tgates, vec *V) {
    const vec zero = {0};
    for (int64_t gi = 0; gi < ng; gi++) {
        const int32_t kind = tg[3 * gi], g0 = tg[3 * gi + 1], g1 = tg[3 * gi + 2];
#define PUT(EXPR)                                                                       \
    for (int32_t i = g0; i < g1; i++) {                                                 \
        const int32_t *t = tgates + 4 * (int64_t)i;                                     \
        const vec a = S[t[0]], b = S[t[1]];                                             \
        (void)a; (void)b;                                                               \
        V[t[3]] = (EXPR);                                                               \
    }                                                                                   \
    break;
#if HAS_TERNARY
        if (kind >= 16) {
#define TPUT(IMM)                                                                       \
    case IMM:                                                                           \
        for (int32_t i = g0; i < g1; i++) {                                             \
            const int32_t *t = tgates + 4 * (int64_t)i;                                 \
            V[t[3]] = (vec)_mm512_ternarylogic_epi64((__m512i)S[t[0]], (__m512i)S[t[1]], \
                                                     (__m512i)S[t[2]], IMM);            \
        }                                                                               \
        break;
            TERNARY_SWITCH(TPUT, kind - 16)
#undef TPUT
            continue;
        }
#endif
        KIND_SWITCH(PUT, kind)
#undef PUT
    }
}

/* P[0..L) = per-sample popcount of the m slots outs and the mv values V, bit-sliced (a carry-save
 * count, about one full adder per value; what is left after whole blocks of 16 is zero-padded
 * to a block). Returns L. */
static int group_count(const vec *S, const int32_t *outs, int64_t m, const vec *V, int64_t mv, vec P[64]) {
    int L = 4;
    while (((int64_t)1 << L) <= m + mv) L++;
    for (int i = 4; i < L; i++) P[i] = (vec){0};
    vec ones = {0}, twos = {0}, fours = {0}, eights = {0};
    int64_t o = 0, v = 0;
    for (; o + 16 <= m; o += 16) {
        const int32_t *q = outs + o;
#define XSLOT(i) S[q[i]]
        HS16(XSLOT);
#undef XSLOT
    }
    for (; v + 16 <= mv; v += 16) {
        const vec *q = V + v;
#define XVAL(i) q[i]
        HS16(XVAL);
#undef XVAL
    }
    vec rest[32];
    int nr = 0;
    for (; o < m; o++) rest[nr++] = S[outs[o]];
    for (; v < mv; v++) rest[nr++] = V[v];
    while (nr % 16) rest[nr++] = (vec){0};
    for (int r = 0; r < nr; r += 16) {
        const vec *q = rest + r;
#define XVAL(i) q[i]
        HS16(XVAL);
#undef XVAL
    }
    P[0] = ones; P[1] = twos; P[2] = fours; P[3] = eights;
    return L;
}

/* A (W planes, two's complement) += sign * (P (L planes) << shift): a bit-sliced ripple adder.
 * Subtracting adds ~P + 1 from bit shift up (the planes below are 0 in P << shift). */
static void add_shifted(vec *A, int W, const vec *P, int L, int shift, int sign) {
    const vec zero = {0};
    vec carry = sign < 0 ? ~zero : zero;
    for (int i = shift; i < W; i++) {
        vec p = i - shift < L ? P[i - shift] : zero;
        if (sign < 0) p = ~p;
        const vec a = A[i], u = a ^ p;
        A[i] = u ^ carry;
        carry = (a & p) | (u & carry);
    }
}

/* acc (TILE samples of one class) += the terms t0..t1 of that class: each term's count planes
 * are summed, shifted and signed, into one bit-sliced two's complement number, converted once. */
static void class_count(const vec *S, const int32_t *terms, int64_t t0, int64_t t1, const int32_t *term_slots,
                        const vec *V, int32_t *acc) {
    int64_t total = 0;  /* the largest |score| these terms can reach */
    for (int64_t t = t0; t < t1; t++) {
        const int32_t *tr = terms + 7 * t;
        total += (int64_t)(tr[4] - tr[3] + tr[6] - tr[5]) << tr[1];
    }
    int W = 1;
    while (W < 63 && ((int64_t)1 << (W - 1)) <= total) W++;  /* 2^(W-1) > total: no overflow */
    vec A[64], P[64];
    for (int i = 0; i < W; i++) A[i] = (vec){0};
    for (int64_t t = t0; t < t1; t++) {
        const int32_t *tr = terms + 7 * t;
        const int L = group_count(S, term_slots + tr[3], tr[4] - tr[3], V + tr[5], tr[6] - tr[5], P);
        add_shifted(A, W, P, L, tr[1], tr[2]);
    }
    int32_t w[64];
    for (int i = 0; i + 1 < W; i++) w[i] = (int32_t)((uint32_t)1 << i);
    w[W - 1] = (int32_t)(0u - ((uint32_t)1 << (W - 1)));  /* the sign plane */
    add_planes(acc, A, W, w);
}

/* The working memory of lgc_run, in the order it is carved (each part 64-byte aligned): slots,
 * a zero row (padding rows of a partial tile), row pointers, class accumulators, packing scratch
 * (8 vectors per column block, or one mask per sample and 64-input block), head gate values. */
static void workspace_parts(int64_t n_in, int64_t n_slots, int64_t k, int64_t nterms, const int32_t *terms,
                            size_t part[6]) {
    int64_t nv = 1;  /* head gate values per tile */
    for (int64_t t = 0; t < nterms; t++) nv = terms[7 * t + 6] > nv ? terms[7 * t + 6] : nv;
    part[0] = (size_t)(n_slots > 0 ? n_slots : 1) * sizeof(vec);
    part[1] = (size_t)n_in + 64;
    part[2] = sizeof(uint8_t *) * TILE;
    part[3] = sizeof(int32_t) * TILE * (size_t)(k > 0 ? k : 1);
    part[4] = ((size_t)n_in / 8 + 8) * 64 + ((size_t)n_in + 63) / 64 * (TILE + 8) * 8;
    part[5] = (size_t)nv * sizeof(vec);
    for (int i = 0; i < 6; i++) part[i] = (part[i] + 63) / 64 * 64;
}

/* Bytes of the workspace lgc_run takes (any alignment: it aligns it itself). */
LGC_API int64_t lgc_workspace_bytes(int64_t n_in, int64_t n_slots, int64_t k, int64_t nterms, const int32_t *terms) {
    size_t part[6], total = 64;
    workspace_parts(n_in, n_slots, k, nterms, terms, part);
    for (int i = 0; i < 6; i++) total += part[i];
    return (int64_t)total;
}

/* Run rows [0, n) of x (bool [n, n_in], C-contiguous, any nonzero byte true) or of packed words
 * (uint64 [n_in, wstride], starting at word 0). Writes scores int32 [n, k] (k > 0) or bits uint8
 * [n, n_out] (k == 0). Scores: class c = consts[c] + sum over rows (c, shift, sign, start, end, v0,
 * v1) of terms of sign * popcount(slots term_slots[start:end], head gate values V[v0:v1]) << shift,
 * where the head gates (groups term_groups over rows term_gates) fill V once per tile (see
 * _schedule.Readout). workspace: lgc_workspace_bytes bytes (any alignment), or NULL to allocate
 * them here. Returns 0, or -1 when out of memory. */
LGC_API int lgc_run(int64_t n_in, int64_t n_slots, int64_t ngroups, const int32_t *groups, const int32_t *gates,
            const int32_t *tgates, int64_t n_out, const int32_t *out_slots, int64_t k,
            int64_t nterms, const int32_t *terms, const int32_t *term_slots, int64_t nterm_groups,
            const int32_t *term_groups, const int32_t *term_gates, const int32_t *consts, const uint8_t *x, const uint64_t *packed, int64_t wstride, int64_t n,
            int32_t *scores, uint8_t *bits, void *workspace) {
#ifdef BLK
    init_col_table();
#endif
    void *owned = NULL;
    size_t part[6];
    if (!workspace) {
        workspace = owned = malloc((size_t)lgc_workspace_bytes(n_in, n_slots, k, nterms, terms));
        if (!owned) return -1;
    }
    workspace_parts(n_in, n_slots, k, nterms, terms, part);
    uint8_t *carve = (uint8_t *)workspace + (64 - (uintptr_t)workspace % 64) % 64;
    vec *S = (vec *)carve;
    uint8_t *zero_row = carve += part[0];
    const uint8_t **rows = (const uint8_t **)(void *)(carve += part[1]);
    int32_t *acc = (int32_t *)(void *)(carve += part[2]);
    void *scratch = carve += part[3];
    vec *V = (vec *)(void *)(carve += part[4]);
    memset(zero_row, 0, (size_t)n_in + 64);
    int64_t n_gates = 0;  /* binary and 3-input */
    for (int64_t gi = 0; gi < ngroups; gi++) n_gates += groups[3 * gi + 2] - groups[3 * gi + 1];
    for (int64_t row0 = 0; row0 < n; row0 += TILE) {
        const int64_t nrows = n - row0 < TILE ? n - row0 : TILE;
        prefetch_cursor pf = {NULL, NULL};
        if (!packed && row0 + TILE < n) {  /* fetch the next tile's rows while this one runs */
            const int64_t bytes = (n - row0 - TILE < TILE ? n - row0 - TILE : TILE) * n_in;
            pf.p = x + (row0 + TILE) * n_in;
            pf.end = pf.p + bytes;
        }
        if (packed) {
            const int64_t w0 = row0 / 64, nw = (nrows + 63) / 64;
            for (int64_t j = 0; j < n_in; j++) {
                uint64_t *dst = (uint64_t *)&S[j];
                for (int w = 0; w < VW; w++) dst[w] = w < nw ? packed[j * wstride + w0 + w] : 0;
            }
        } else {
            pack_tile(x + row0 * n_in, n_in, nrows, zero_row, rows, S, scratch, &pf);
        }
#ifdef MASK_PACK
        const int64_t pf_bytes = 0;  /* measured: with the sequential row stream, prefetching during the gates only costs */
#else
        int64_t pf_bytes = pf.p < pf.end ? pf.end - pf.p : 0;
        if (pf_bytes > 64 * n_gates) {  /* more lines than gates: fetch the excess now */
            for (int64_t z = 64 * n_gates; z < pf_bytes; z += 64) __builtin_prefetch(pf.p + z, 0, PF_LOCALITY);
            pf_bytes = 64 * n_gates;
        }
#endif
#ifdef LGC_GATES_AS_CODE
        LGC_GATES_AS_CODE(S);  /* a small circuit's gates as straight-line code (see the emitted C) */
        (void)run_gates; (void)gates; (void)tgates; (void)pf_bytes;
#else
        run_gates(S, ngroups, groups, gates, tgates, pf.p, pf_bytes);
#endif
        if (k > 0) {
            for (int64_t c = 0; c < k; c++)
                for (int s = 0; s < TILE; s++) acc[c * TILE + s] = consts[c];
            head_gates(S, term_groups, nterm_groups, term_gates, V);
            for (int64_t t0 = 0, t1; t0 < nterms; t0 = t1) {  /* runs of terms of one class */
                for (t1 = t0 + 1; t1 < nterms && terms[7 * t1] == terms[7 * t0]; t1++) {}
                class_count(S, terms, t0, t1, term_slots, V, acc + (int64_t)terms[7 * t0] * TILE);
            }
            for (int64_t s = 0; s < nrows; s++) {
                int32_t *dst = scores + (row0 + s) * k;
                for (int64_t c = 0; c < k; c++) dst[c] = acc[c * TILE + s];
            }
        } else {
            for (int64_t s = 0; s < nrows; s++) {
                uint8_t *dst = bits + (row0 + s) * n_out;
                const int w = (int)(s >> 6), sh = (int)(s & 63);
                for (int64_t o = 0; o < n_out; o++) dst[o] = (uint8_t)((WORD(S[out_slots[o]], w) >> sh) & 1);
            }
        }
    }
    free(owned);
    return 0;
}
