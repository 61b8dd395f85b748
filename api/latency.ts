// Commit latency, as a histogram with buckets of constant relative width (about 5%), from 10 us to
// 100 s: percentiles in O(buckets) with no samples kept, however long the database runs.

const MIN_MS = 0.01;
const BUCKETS_PER_DECADE = 48;
const DECADES = 7;
const BUCKETS = BUCKETS_PER_DECADE * DECADES;

export class LatencyHistogram {
  readonly #counts = new Float64Array(BUCKETS + 1);
  count = 0;

  record(ms: number): void {
    const b = ms <= MIN_MS ? 0 : Math.min(BUCKETS, Math.floor(Math.log10(ms / MIN_MS) * BUCKETS_PER_DECADE) + 1);
    this.#counts[b] = (this.#counts[b] as number) + 1;
    this.count++;
  }

  /** The latency below which a fraction p (0..1) of the recorded ones fall (a bucket's upper edge), or null if none. */
  percentile(p: number): number | null {
    if (this.count === 0) return null;
    const want = p * this.count;
    let seen = 0;
    for (let b = 0; b <= BUCKETS; b++) {
      seen += this.#counts[b] as number;
      if (seen >= want) return MIN_MS * 10 ** (b / BUCKETS_PER_DECADE);
    }
    return MIN_MS * 10 ** DECADES;
  }
}
