/* SPDX-License-Identifier: MIT */
/*
 * hist.c - log-linear latency histogram (see bench.h for the error bound).
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static unsigned bucket_of(uint64_t v)
{
    if (v < (uint64_t)2 * HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 7; /* v >> shift lies in [128, 255] */
    return shift * HIST_SUB + (unsigned)(v >> shift);
}

/* Lower bound and width of bucket i. */
static void bucket_range(unsigned i, uint64_t *lo, uint64_t *width)
{
    if (i < 2 * HIST_SUB) {
        *lo = i;
        *width = 1;
        return;
    }
    unsigned shift = i / HIST_SUB - 1;
    uint64_t mant = i - (uint64_t)shift * HIST_SUB;
    *lo = mant << shift;
    *width = (uint64_t)1 << shift;
}

void hist_add(struct hist *h, uint64_t v)
{
    h->b[bucket_of(v)]++;
    h->count++;
    h->sum += (long double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t lo, width;
            bucket_range(i, &lo, &width);
            uint64_t v = lo + width / 2;
            if (v < h->min)
                v = h->min;
            if (v > h->max)
                v = h->max;
            return v;
        }
    }
    return h->max;
}

double hist_mean(const struct hist *h)
{
    return h->count ? (double)(h->sum / h->count) : 0.0;
}

/* Java HdrHistogram's percentile iterator, over our buckets: a row each time
 * the cumulative count reaches the next percentile level; after a level,
 * the next is 1/(5 * 2^(floor(log2(100 / (100 - level))) + 1)) of 100
 * further, so the rows thicken towards the tail.  The bucket that holds the
 * last value reports once, then the 100% row (without 1/(1-Percentile)).
 * A row's value is the highest value of its bucket, as HdrHistogram's
 * highestEquivalentValue. */
int hist_write_hgrm(const struct hist *h, FILE *f, double scale)
{
    uint64_t total = h->count, cum = 0, lo, width;
    double level = 0.0, mean = hist_mean(h), var = 0.0;

    fprintf(f, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    for (unsigned i = 0; i < HIST_BUCKETS && cum < total; i++) {
        if (!h->b[i])
            continue;
        bucket_range(i, &lo, &width);
        cum += h->b[i];
        double v = (double)(lo + width - 1) / scale;
        double mid = (double)(lo + width / 2) - mean;
        var += mid * mid * (double)h->b[i];
        while (100.0 * (double)cum / (double)total >= level) {
            fprintf(f, "%12.3f %2.12f %10llu %14.2f\n", v, level / 100.0, (unsigned long long)cum,
                    1.0 / (1.0 - level / 100.0));
            level += 100.0 / (5.0 * pow(2.0, floor(log2(100.0 / (100.0 - level))) + 1.0));
            if (cum == total)
                break;
        }
        if (cum == total)
            fprintf(f, "%12.3f %2.12f %10llu\n", v, 1.0, (unsigned long long)cum);
    }
    fprintf(f, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", mean / scale,
            total ? sqrt(var / (double)total) / scale : 0.0);
    /* Max as HdrHistogram's getMaxValue: the top of the max's bucket, the
     * value of the 100% row */
    bucket_range(bucket_of(h->max), &lo, &width);
    fprintf(f, "#[Max     = %12.3f, Total count    = %12llu]\n",
            total ? (double)(lo + width - 1) / scale : 0.0, (unsigned long long)total);
    /* 256 sub-buckets (0..255 exact, then 128 per power of two), and the
     * 57 buckets that take them to 2^64 */
    fprintf(f, "#[Buckets = %12d, SubBuckets     = %12d]\n", 57, 2 * HIST_SUB);
    return ferror(f) ? -1 : 0;
}

/* Every value maps into a bucket that contains it and is narrow enough;
 * quantiles of a known distribution come out within 1%. */
int hist_selftest(void)
{
    static struct hist h;
    for (uint64_t v = 0; v < (1u << 20); v = v < 4096 ? v + 1 : v + v / 97) {
        uint64_t lo, width;
        unsigned i = bucket_of(v);
        bucket_range(i, &lo, &width);
        if (i >= HIST_BUCKETS || v < lo || v >= lo + width ||
            (v >= 256 && (double)width / (double)lo > 1.0 / 128)) {
            fprintf(stderr, "hist: value %llu in bad bucket %u\n", (unsigned long long)v, i);
            return 1;
        }
    }
    if (bucket_of(UINT64_MAX) >= HIST_BUCKETS) {
        fprintf(stderr, "hist: UINT64_MAX out of range\n");
        return 1;
    }
    hist_init(&h);
    for (uint64_t v = 1; v <= 1000000; v++)
        hist_add(&h, v * 1000);
    const double qs[] = {0.5, 0.9, 0.99, 0.999};
    for (unsigned k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
        double want = qs[k] * 1e9, got = (double)hist_quantile(&h, qs[k]);
        if (fabs(got - want) / want > 0.01) {
            fprintf(stderr, "hist: q%.3f = %.0f, want %.0f\n", qs[k], got, want);
            return 1;
        }
    }
    if (hist_quantile(&h, 1.0) != 1000000000ull) {
        fprintf(stderr, "hist: max wrong\n");
        return 1;
    }
    return 0;
}
