// The benchmark workloads: every key and value comes from a seeded generator, so each engine (each
// in its own process) sees exactly the same data in the same order.

export interface BenchOptions {
  txns: number;
  batch: number;
  keySize: number;
  valueSize: number;
  /** Concurrent async callers (concurrent, readwhilewriting). */
  callers: number;
  /** Interleaved ascending streams (streams). */
  streams: number;
  /** Descending keys (fillseq). */
  desc: boolean;
  sync: boolean;
  seed: number;
  /**
   * Page cache in bytes, for engines that have one (--cache). Unset: birchdb its default (a share
   * of memory, taken only as pages are read), the peers PEER_CACHE_BYTES.
   */
  cacheSize: number | undefined;
  /** birchdb's memoryLimit option (--memory-limit); unset: none. */
  memoryLimit?: number;
  /** Sizes drawn uniformly from [min, max] instead of keySize and valueSize (fillbatch). */
  keySizeRange?: [number, number];
  valueSizeRange?: [number, number];
  /** The stores of the versions workload. */
  stores: StoreSpec[];
}

/** One store of the versions workload: its own key and value sizes, churn and deletes. */
export interface StoreSpec {
  name: string;
  keyMean: number;
  keySpread: number;
  valueMean: number;
  valueSpread: number;
  /** Changes (puts and deletes) per version. */
  changes: number;
  /** Fraction of changes that delete an existing key. */
  deleteFraction: number;
}

export const DEFAULT_STORES: StoreSpec[] = [
  { name: 'accounts', keyMean: 24, keySpread: 8, valueMean: 200, valueSpread: 100, changes: 20, deleteFraction: 0.05 },
  { name: 'events', keyMean: 32, keySpread: 4, valueMean: 600, valueSpread: 400, changes: 50, deleteFraction: 0 },
  { name: 'index', keyMean: 48, keySpread: 16, valueMean: 16, valueSpread: 8, changes: 100, deleteFraction: 0.2 },
];

/** Parses `name:keyMean:keySpread:valueMean:valueSpread:changes:deleteFraction,...`. */
export function parseStores(spec: string): StoreSpec[] {
  return spec.split(',').map((part) => {
    const f = part.split(':');
    const nums = f.slice(1).map(Number);
    if (f.length !== 7 || f[0] === '' || nums.some((n) => !Number.isFinite(n) || n < 0) || (nums[5] as number) > 1 || (nums[0] as number) < 1) {
      throw new Error(`bad store "${part}": expected name:keyMean:keySpread:valueMean:valueSpread:changes:deleteFraction (deleteFraction <= 1, keyMean >= 1)`);
    }
    const [keyMean, keySpread, valueMean, valueSpread, changes, deleteFraction] = nums as [number, number, number, number, number, number];
    return { name: f[0] as string, keyMean, keySpread, valueMean, valueSpread, changes, deleteFraction };
  });
}

export type WorkloadKind = 'fill' | 'overwrite' | 'delete' | 'readrandom' | 'readseq' | 'scan' | 'readwhilewriting' | 'concurrent' | 'versions';

/** The kinds that read a prefilled database: their files are read into the OS page cache before the clock. */
export const READ_KINDS: readonly WorkloadKind[] = ['readrandom', 'readseq', 'scan', 'readwhilewriting'];

/** readseq: full scans in the timed phase. */
export const SCAN_PASSES = 5;
/** scan100: ranges per --txns (2 x 10,000 ranges of 100 entries, a few seconds per engine). */
export const RANGES_PER_TXN = 2;
/** readwhilewriting: the writers' puts per prefilled key (800,000 over 1,000,000 keys: about seven of birchdb's checkpoints). */
export const WRITES_PER_KEY = 0.8;

export interface Workload {
  name: string;
  describe: string;
  kind: WorkloadKind;
  /** Key order for fills: the timed phase for fill workloads, the untimed prefill for the rest. */
  keys: 'seq' | 'random' | 'streams';
  defaults: Partial<BenchOptions>;
}

// Sizes: long enough that every write workload runs through several of birchdb's checkpoints
// (32 MiB of buffered operations each, about 110,000 of these entries), so the figures are steady
// state rather than a buffer filling up; the table says how many ran.
/** The peers' cache without --cache: LevelDB's block cache and SQLite's page cache (their defaults are 8 MiB and 2 MiB). */
export const PEER_CACHE_BYTES = 64 * 1024 * 1024;

export const DEFAULTS: BenchOptions = {
  txns: 10_000, batch: 100, keySize: 16, valueSize: 100, callers: 64, streams: 8, desc: false, sync: true, seed: 42, cacheSize: undefined,
  stores: DEFAULT_STORES,
};

export const WORKLOADS: Record<string, Workload> = {
  fillseq: { name: 'fillseq', kind: 'fill', keys: 'seq', describe: 'ascending keys (descending with --desc), 100 per transaction', defaults: { valueSize: 128 } },
  fillrandom: { name: 'fillrandom', kind: 'fill', keys: 'random', describe: 'random keys, 100 per transaction', defaults: { valueSize: 100 } },
  fillbatch: {
    name: 'fillbatch',
    kind: 'fill',
    keys: 'random',
    describe: 'a bulk load: random keys of 8-64 bytes, values of 20-200, 1,000 per transaction',
    defaults: { txns: 2000, batch: 1000, keySizeRange: [8, 64], valueSizeRange: [20, 200] },
  },
  streams: { name: 'streams', kind: 'fill', keys: 'streams', describe: '--streams interleaved ascending streams with distinct prefixes', defaults: { valueSize: 100 } },
  overwrite: { name: 'overwrite', kind: 'overwrite', keys: 'seq', describe: 'random overwrites of existing keys (after an untimed fill)', defaults: { valueSize: 100 } },
  delete: { name: 'delete', kind: 'delete', keys: 'seq', describe: 'deletes of every key in random order (after an untimed fill)', defaults: { valueSize: 100 } },
  readrandom: { name: 'readrandom', kind: 'readrandom', keys: 'seq', describe: 'random point reads (after an untimed fill; files in the OS page cache)', defaults: { txns: 10000, valueSize: 100 } },
  readseq: { name: 'readseq', kind: 'readseq', keys: 'seq', describe: 'a full ordered scan, repeated (after an untimed fill; files in the OS page cache)', defaults: { txns: 1000, valueSize: 100 } },
  scan100: { name: 'scan100', kind: 'scan', keys: 'seq', describe: 'ascending ranges of --batch entries from random existing keys (after an untimed fill; files in the OS page cache)', defaults: { txns: 10000, valueSize: 100 } },
  readwhilewriting: {
    name: 'readwhilewriting',
    kind: 'readwhilewriting',
    keys: 'seq',
    describe: '--callers async callers awaiting durable overwrites while one reader reads random keys (after an untimed fill; files in the OS page cache)',
    defaults: { txns: 10000, callers: 16, valueSize: 100 },
  },
  concurrent: { name: 'concurrent', kind: 'concurrent', keys: 'random', describe: '--callers async callers, each awaiting single-op puts of random keys', defaults: { txns: 8000, valueSize: 100 } },
  puts: { name: 'puts', kind: 'concurrent', keys: 'random', describe: 'one caller awaiting each single-op put of a random key (one put per durable commit)', defaults: { txns: 5000, callers: 1, valueSize: 100 } },
  versions: { name: 'versions', kind: 'versions', keys: 'random', describe: 'application versions: one transaction each, changing several --stores with their own size distributions and delete fractions', defaults: { txns: 5000 } },
};

/** A size drawn uniformly from mean +- spread, at least `min`. */
function sized(rand: () => number, mean: number, spread: number, min: number): number {
  return Math.max(min, Math.round(mean - spread + rand() * 2 * spread));
}

export interface VersionChange {
  store: string;
  key: Buffer;
  /** null: delete. */
  value: Buffer | null;
}

/**
 * The versions workload's generator: version after version, each store's changes are new keys,
 * updates of live keys, or (deleteFraction of them) deletes of live keys. Deterministic per seed.
 */
export function versionMaker(o: BenchOptions): () => VersionChange[] {
  const rand = prng(o.seed ^ 0x7e55);
  const live = o.stores.map(() => [] as Buffer[]);
  return () => {
    const out: VersionChange[] = [];
    o.stores.forEach((st, s) => {
      const keys = live[s] as Buffer[];
      for (let c = 0; c < st.changes; c++) {
        const r = rand();
        if (keys.length > 0 && r < st.deleteFraction) {
          const i = Math.floor(rand() * keys.length);
          const key = keys[i] as Buffer;
          keys[i] = keys[keys.length - 1] as Buffer;
          keys.pop();
          out.push({ store: st.name, key, value: null });
          continue;
        }
        let key: Buffer;
        if (keys.length > 0 && rand() < 0.5) key = keys[Math.floor(rand() * keys.length)] as Buffer;
        else {
          key = Buffer.alloc(Math.min(1024, sized(rand, st.keyMean, st.keySpread, 1)));
          fillRandomBytes(key, rand);
          keys.push(key);
        }
        const value = Buffer.alloc(sized(rand, st.valueMean, st.valueSpread, 0));
        fillRandomBytes(value, rand);
        out.push({ store: st.name, key, value });
      }
    });
    return out;
  };
}

/** mulberry32, seeded. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function fillRandomBytes(buf: Buffer, rand: () => number): void {
  let i = 0;
  for (; i + 4 <= buf.length; i += 4) buf.writeUInt32LE(Math.floor(rand() * 4294967296), i);
  for (; i < buf.length; i++) buf[i] = Math.floor(rand() * 256);
}

/** The key of the i-th item of a fill, in the workload's order. */
export function keyMaker(keys: Workload['keys'], o: BenchOptions): (i: number) => Buffer {
  const total = o.txns * o.batch;
  // Digits written straight into the key (the last keySize of them, zero-padded): the harness's
  // own work is inside the timed loop, so it is kept to a few bytes written per key.
  const decimal = (n: number, prefix = ''): Buffer => {
    const b = Buffer.allocUnsafe(o.keySize).fill(0x30);
    let at = o.keySize;
    for (let v = n; v > 0 && at > prefix.length; v = Math.floor(v / 10)) b[--at] = 0x30 + (v % 10);
    if (prefix !== '') b.write(prefix.slice(-o.keySize), 0, 'latin1');
    return b;
  };
  if (keys === 'seq') return (i) => decimal(o.desc ? total - 1 - i : i);
  if (keys === 'streams') return (i) => decimal(Math.floor(i / o.streams), String.fromCharCode(0x41 + (i % o.streams)));
  const rand = prng(o.seed ^ 0x5eed);
  const range = o.keySizeRange;
  return () => {
    const b = Buffer.alloc(range === undefined ? o.keySize : range[0] + Math.floor(rand() * (range[1] - range[0] + 1)));
    fillRandomBytes(b, rand);
    return b;
  };
}

/** Random bytes the values are cut from: big enough that no two values of a batch overlap often. */
const VALUE_POOL_BYTES = 1 << 20;

/**
 * Values: each a fresh copy of valueSize bytes at a seeded random offset of a pool of random bytes
 * (incompressible, like the values a user stores), so that making one costs a copy, not a random
 * number per 4 bytes (that cost ~1 us a value inside the timed loop, as much as a commit's share).
 */
export function valueMaker(o: BenchOptions): () => Buffer {
  const rand = prng(o.seed);
  const range = o.valueSizeRange;
  const max = range === undefined ? o.valueSize : range[1];
  const pool = Buffer.allocUnsafe(VALUE_POOL_BYTES + max);
  fillRandomBytes(pool, rand);
  return () => {
    const size = range === undefined ? o.valueSize : range[0] + Math.floor(rand() * (range[1] - range[0] + 1));
    const off = Math.floor(rand() * VALUE_POOL_BYTES);
    const b = Buffer.allocUnsafe(size);
    pool.copy(b, 0, off, off + size);
    return b;
  };
}
