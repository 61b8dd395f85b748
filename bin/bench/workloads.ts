// The benchmark workloads: every key and value comes from a seeded generator, so each engine (each
// in its own process) sees exactly the same data in the same order.

export interface BenchOptions {
  txns: number;
  batch: number;
  keySize: number;
  valueSize: number;
  /** Concurrent async callers (concurrent). */
  callers: number;
  /** Interleaved ascending streams (streams). */
  streams: number;
  /** Descending keys (fillseq). */
  desc: boolean;
  sync: boolean;
  seed: number;
  /** Page cache in bytes, for engines that have one. */
  cacheSize: number;
}

export type WorkloadKind = 'fill' | 'overwrite' | 'delete' | 'readrandom' | 'readseq' | 'concurrent';

export interface Workload {
  name: string;
  describe: string;
  kind: WorkloadKind;
  /** Key order for fills: the timed phase for fill workloads, the untimed prefill for the rest. */
  keys: 'seq' | 'random' | 'streams';
  defaults: Partial<BenchOptions>;
}

export const DEFAULTS: BenchOptions = {
  txns: 1000, batch: 100, keySize: 16, valueSize: 100, callers: 64, streams: 8, desc: false, sync: true, seed: 42, cacheSize: 64 * 1024 * 1024,
};

export const WORKLOADS: Record<string, Workload> = {
  fillseq: { name: 'fillseq', kind: 'fill', keys: 'seq', describe: 'ascending keys (descending with --desc), 100 per transaction', defaults: { valueSize: 128 } },
  fillrandom: { name: 'fillrandom', kind: 'fill', keys: 'random', describe: 'random keys, 100 per transaction', defaults: { valueSize: 100 } },
  streams: { name: 'streams', kind: 'fill', keys: 'streams', describe: '--streams interleaved ascending streams with distinct prefixes', defaults: { valueSize: 100 } },
  overwrite: { name: 'overwrite', kind: 'overwrite', keys: 'seq', describe: 'random overwrites of existing keys (after an untimed fill)', defaults: { valueSize: 100 } },
  delete: { name: 'delete', kind: 'delete', keys: 'seq', describe: 'deletes of every key in random order (after an untimed fill)', defaults: { valueSize: 100 } },
  readrandom: { name: 'readrandom', kind: 'readrandom', keys: 'seq', describe: 'random point reads (after an untimed fill)', defaults: { valueSize: 100 } },
  readseq: { name: 'readseq', kind: 'readseq', keys: 'seq', describe: 'a full ordered scan, repeated (after an untimed fill)', defaults: { valueSize: 100 } },
  concurrent: { name: 'concurrent', kind: 'concurrent', keys: 'random', describe: '--callers async callers, each awaiting single-op puts of random keys', defaults: { txns: 640, valueSize: 100 } },
};

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
  for (let i = 0; i < buf.length; i += 4) {
    const v = Math.floor(rand() * 4294967296);
    for (let j = 0; j < 4 && i + j < buf.length; j++) buf[i + j] = (v >>> (j * 8)) & 0xff;
  }
}

/** The key of the i-th item of a fill, in the workload's order. */
export function keyMaker(keys: Workload['keys'], o: BenchOptions): (i: number) => Buffer {
  const total = o.txns * o.batch;
  const decimal = (n: number, prefix = ''): Buffer => {
    const b = Buffer.alloc(o.keySize, 0x30);
    const s = prefix + String(n).padStart(o.keySize - prefix.length, '0');
    b.write(s.slice(-o.keySize), 0, 'latin1');
    return b;
  };
  if (keys === 'seq') return (i) => decimal(o.desc ? total - 1 - i : i);
  if (keys === 'streams') return (i) => decimal(Math.floor(i / o.streams), String.fromCharCode(0x41 + (i % o.streams)));
  const rand = prng(o.seed ^ 0x5eed);
  return () => {
    const b = Buffer.alloc(o.keySize);
    fillRandomBytes(b, rand);
    return b;
  };
}

export function valueMaker(o: BenchOptions): () => Buffer {
  const rand = prng(o.seed);
  return () => {
    const b = Buffer.alloc(o.valueSize);
    fillRandomBytes(b, rand);
    return b;
  };
}
