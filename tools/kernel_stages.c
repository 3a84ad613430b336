/* Stage timing for lgc's table-driven CPU kernel (benchmarks/kernel_stages.py builds and runs it).
 *
 * Includes cpu_kernel.c (KERNEL) so it can call the static stages directly. Reads a schedule
 * dump (sched.bin) and bool rows (x.bin) written by kernel_stages.py, then prints
 *   full <ns per sample>          (lgc_run over all rows, best of REPS, thread CPU time)
 *   stages <pack> <gates> <readout>  (the same work stage by stage, no overlap; best of 3)
 *   check ok|MISMATCH             (first 1024 rows' scores against ref.bin from lgc.ir.simulate)
 */
#include KERNEL
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *slurp(FILE *f, size_t bytes) {
    void *p = malloc(bytes + 64);
    if (!p || fread(p, 1, bytes, f) != bytes) { fprintf(stderr, "short read\n"); exit(2); }
    return p;
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: %s sched.bin x.bin ref.bin rows [reps]\n", argv[0]); return 2; }
    FILE *f = fopen(argv[1], "rb");
    int64_t h[11];
    if (!f || fread(h, 8, 11, f) != 11) { fprintf(stderr, "cannot read %s\n", argv[1]); return 2; }
    const int64_t n_in = h[0], n_slots = h[1], ng = h[2], nga = h[3], no = h[4], k = h[5], nt = h[6], nts = h[7],
                  ntg = h[8], ntgr = h[9], ntga = h[10];
    int32_t *groups = slurp(f, 12 * ng), *gates = slurp(f, 12 * nga), *outs = slurp(f, 4 * no),
            *terms = slurp(f, 28 * nt), *ts = slurp(f, 4 * nts), *consts = slurp(f, 4 * k),
            *tg = slurp(f, 16 * ntg), *tgr = slurp(f, 12 * ntgr), *tga = slurp(f, 16 * ntga);
    fclose(f);
    const int64_t N = atoll(argv[4]);
    const int reps = argc > 5 ? atoi(argv[5]) : 5;
    f = fopen(argv[2], "rb");
    uint8_t *x = f ? slurp(f, (size_t)(N * n_in)) : NULL;
    if (f) fclose(f);
    if (!x) { fprintf(stderr, "cannot read %s\n", argv[2]); return 2; }
    int32_t *scores = malloc(4 * N * k);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        const double t0 = now();
        lgc_run(n_in, n_slots, ng, groups, gates, tg, no, outs, k, nt, terms, ts, ntgr, tgr, tga, consts, x, NULL, 0, N,
                scores, NULL, NULL);
        const double t = now() - t0;
        best = t < best ? t : best;
    }
    printf("full %.1f\n", best * 1e9 / N);

#ifdef BLK
    init_col_table();
#endif
    vec *S = aligned_alloc(64, (size_t)n_slots * sizeof(vec) + 64), *V = aligned_alloc(64, (size_t)(ntga + 1) * sizeof(vec));
    uint8_t *zero_row = calloc(n_in + 64, 1);
    const uint8_t **rows = malloc(sizeof(uint8_t *) * TILE);
    int32_t *acc = aligned_alloc(64, 4 * TILE * k);
    void *scratch = aligned_alloc(64, ((size_t)n_in / 8 + 8) * 64 + ((size_t)n_in + 63) / 64 * (TILE + 8) * 8);
    double bp = 1e30, bg = 1e30, br = 1e30;
    for (int r = 0; r < 3; r++) {
        double tp = 0, tgt = 0, tr = 0;
        for (int64_t row0 = 0; row0 + TILE <= N; row0 += TILE) {
            prefetch_cursor pf = {NULL, NULL};
            const double a = now();
            pack_tile(x + row0 * n_in, n_in, TILE, zero_row, rows, S, scratch, &pf);
            const double b = now();
            run_gates(S, ng, groups, gates, tg, NULL, 0);
            const double c = now();
            head_gates(S, tgr, ntgr, tga, V);
            for (int64_t t0 = 0, t1; t0 < nt; t0 = t1) {
                for (t1 = t0 + 1; t1 < nt && terms[7 * t1] == terms[7 * t0]; t1++) {}
                class_count(S, terms, t0, t1, ts, V, acc + (int64_t)terms[7 * t0] * TILE);
            }
            const double d = now();
            tp += b - a; tgt += c - b; tr += d - c;
        }
        bp = tp < bp ? tp : bp; bg = tgt < bg ? tgt : bg; br = tr < br ? tr : br;
    }
    const int64_t done = N / TILE * TILE;
    printf("stages %.1f %.1f %.1f\n", bp * 1e9 / done, bg * 1e9 / done, br * 1e9 / done);

    f = fopen(argv[3], "rb");
    int32_t *ref = f ? slurp(f, 1024 * 4 * (size_t)k) : NULL;
    if (f) fclose(f);
    printf("check %s\n", ref && !memcmp(ref, scores, 1024 * 4 * (size_t)k) ? "ok" : "MISMATCH");
    return 0;
}
