// Every read path against a Map model, through the async API with its threads: get, getMany,
// getView and ranges (bounds, prefixes, reverse, limits), of the live state and of snapshots, in
// the default tree and a named one. Reads happen with the batches in the active buffer, in the
// frozen buffer while a checkpoint runs, in the trees after it, inside snapshots held across
// checkpoints, after a reopen; through a page cache far smaller than the data (16 frames of 4 KiB,
// values up to 6 KiB so that some live on overflow pages) and through one that holds it all; with
// every cache hit verified (BIRCH_VERIFY=1: a frame that does not hold the page asked for fails).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { open, type AllocationPolicy, type BatchOp, type Birch, type Snapshot } from '../../api/index.js';
import { rmDir, tmpDir } from '../helpers/index.js';
import { reliabilityRow } from '../helpers/reliability.js';

const TREES = [undefined, 'named'] as const;
type TreeName = (typeof TREES)[number];
type Model = Map<string, string>[];

const key = (k: number): string => `k${String(k).padStart(4, '0')}`;
/** Values from a few bytes to past the inline limit (2,036-byte cells go to overflow pages). */
const val = (v: number, size: number): string => `v${v}:`.padEnd(size, String.fromCharCode(97 + (v % 26)));

interface RangeSpec {
  lo?: { k: number; inclusive: boolean };
  hi?: { k: number; inclusive: boolean };
  prefix?: string;
  reverse: boolean;
  limit?: number;
}

type Step =
  | { t: 'writes'; tree: number; ops: { del: boolean; k: number; v: number; size: number }[][] }
  | { t: 'checkpoint' }
  | { t: 'reopen' }
  | { t: 'snap' }
  | { t: 'release' };

const sizeArb = fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 300 }) }, { weight: 1, arbitrary: fc.integer({ min: 1900, max: 6000 }) });
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      t: fc.constant('writes' as const),
      tree: fc.nat(1),
      ops: fc.array(fc.array(fc.record({ del: fc.boolean(), k: fc.nat(150), v: fc.nat(9999), size: sizeArb }), { minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 6 }),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ t: 'checkpoint' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'snap' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'release' as const }) },
);
const rangeArb: fc.Arbitrary<RangeSpec> = fc.record(
  {
    lo: fc.record({ k: fc.nat(160), inclusive: fc.boolean() }),
    hi: fc.record({ k: fc.nat(160), inclusive: fc.boolean() }),
    prefix: fc.constantFrom('k0', 'k00', 'k01', 'k009', 'k014', 'x'),
    reverse: fc.boolean(),
    limit: fc.nat(60),
  },
  { requiredKeys: ['reverse'] },
);

/** The model's answer to a range: entries of the tree within the bounds, in order, up to the limit. */
function modelRange(m: Map<string, string>, r: RangeSpec): string[] {
  let keys = [...m.keys()].sort();
  if (r.lo !== undefined) {
    const lo = key(r.lo.k);
    keys = keys.filter((k) => (r.lo?.inclusive === true ? k >= lo : k > lo));
  }
  if (r.hi !== undefined) {
    const hi = key(r.hi.k);
    keys = keys.filter((k) => (r.hi?.inclusive === true ? k <= hi : k < hi));
  }
  if (r.prefix !== undefined) keys = keys.filter((k) => k.startsWith(r.prefix as string));
  if (r.reverse) keys.reverse();
  if (r.limit !== undefined) keys = keys.slice(0, r.limit);
  return keys.map((k) => `${k}=${m.get(k) as string}`);
}

function rangeOptions(r: RangeSpec, tree: TreeName): Record<string, unknown> {
  return {
    ...(r.lo === undefined ? {} : { [r.lo.inclusive ? 'gte' : 'gt']: key(r.lo.k) }),
    ...(r.hi === undefined ? {} : { [r.hi.inclusive ? 'lte' : 'lt']: key(r.hi.k) }),
    ...(r.prefix === undefined ? {} : { prefix: r.prefix }),
    reverse: r.reverse,
    ...(r.limit === undefined ? {} : { limit: r.limit }),
    ...(tree === undefined ? {} : { tree }),
  };
}

interface Reader {
  get(k: string, o?: { tree?: string }): Buffer | undefined;
  getMany(ks: string[], o?: { tree?: string }): (Buffer | undefined)[];
  getView(k: string, o?: { tree?: string }): Buffer | undefined;
  range(o: Record<string, unknown>): Iterable<[Buffer, Buffer]>;
}

/** Every read path of `r` against `model`, for both trees; `probe` keys and `ranges` vary per call. */
function checkReads(r: Reader, model: Model, probe: number[], ranges: RangeSpec[], what: string): void {
  TREES.forEach((tree, t) => {
    const m = model[t] as Map<string, string>;
    const o = tree === undefined ? {} : { tree };
    const all = [...r.range(o)].map(([k, v]) => `${k.toString()}=${v.toString()}`);
    assert.deepEqual(all, modelRange(m, { reverse: false }), `${what}: the whole ${tree ?? 'default'} tree`);
    for (const spec of ranges) {
      const got = [...r.range(rangeOptions(spec, tree))].map(([k, v]) => `${k.toString()}=${v.toString()}`);
      assert.deepEqual(got, modelRange(m, spec), `${what}: range ${JSON.stringify(spec)} of ${tree ?? 'default'}`);
    }
    const keys = probe.map(key);
    const many = r.getMany(keys, o).map((v) => v?.toString());
    keys.forEach((k, i) => {
      assert.equal(r.get(k, o)?.toString(), m.get(k), `${what}: get ${k} of ${tree ?? 'default'}`);
      assert.equal(many[i], m.get(k), `${what}: getMany ${k}`);
      // A view is compared before the next read, which may change it.
      const view = r.getView(k, o);
      assert.equal(view?.toString(), m.get(k), `${what}: getView ${k}`);
    });
  });
}

/**
 * Two caches: 16 frames, far smaller than the data (every read path meets misses and evictions by
 * both threads); and 4 MiB, which holds it all, so that an image the cache should have dropped (a
 * page number the checkpointer reused) would survive to be read.
 */
const CACHE_SIZES = [16 * 4096, 4 << 20];

async function run(steps: Step[], probes: number[][], ranges: RangeSpec[][], cacheSize: number, policy: AllocationPolicy, seen: { frozen: number; snapshots: number }): Promise<void> {
  // first-fit reuses freed page numbers at once, so cached images of old pages meet their numbers' new pages.
  const OPTS = { checkpointBytes: 48 * 1024, journalSegmentSize: 256 * 1024, cacheSize, allocation: { policy } };
  const dir = tmpDir('birch-model-reads');
  let db: Birch = await open(dir, OPTS);
  const model: Model = TREES.map(() => new Map<string, string>());
  const snaps: { s: Snapshot; model: Model }[] = [];
  const reads = (i: number): [number[], RangeSpec[]] => [probes[i % probes.length] as number[], ranges[i % ranges.length] as RangeSpec[]];
  try {
    for (const [i, step] of steps.entries()) {
      if (step.t === 'reopen') {
        for (const x of snaps.splice(0)) x.s.release();
        await db.close();
        db = await open(dir, OPTS);
      } else if (step.t === 'snap') {
        snaps.push({ s: db.snapshot(), model: model.map((m) => new Map(m)) });
      } else if (step.t === 'release') {
        snaps.shift()?.s.release();
      } else if (step.t === 'checkpoint') {
        // Reads while it runs see the frozen generation (on the checkpointer's way into the trees).
        const done = db.checkpoint();
        const s = db.stats();
        if (s.checkpoints.inFlight && s.buffer.generations === 2) seen.frozen++;
        checkReads(db, model, ...reads(i), 'during a checkpoint');
        await done;
      } else {
        const tree = TREES[step.tree];
        const batches = step.ops.map((ops) => {
          const m = model[step.tree] as Map<string, string>;
          for (const o of ops) {
            if (o.del) m.delete(key(o.k));
            else m.set(key(o.k), val(o.v, o.size));
          }
          return db.batch(ops.map((o): BatchOp => {
            const base = o.del ? { type: 'del' as const, key: key(o.k) } : { type: 'put' as const, key: key(o.k), value: val(o.v, o.size) };
            return tree === undefined ? base : { ...base, tree };
          }));
        });
        await Promise.all(batches);
      }
      checkReads(db, model, ...reads(i + 1), `after step ${i} (${step.t})`);
      for (const x of snaps) {
        checkReads(x.s, x.model, ...reads(i + 2), `a snapshot, after step ${i}`);
        seen.snapshots++;
      }
    }
    await db.checkpoint();
    checkReads(db, model, ...reads(0), 'after the last checkpoint');
    const report = db.check();
    assert.ok(report.ok, report.errors.join('\n'));
  } finally {
    for (const x of snaps) x.s.release();
    await db.close();
    rmDir(dir);
  }
}

describe('property: every read path against a Map model, through a small shared page cache', () => {
  let verify: string | undefined;
  before(() => {
    verify = process.env.BIRCH_VERIFY;
    process.env.BIRCH_VERIFY = '1';
  });
  after(() => {
    if (verify === undefined) delete process.env.BIRCH_VERIFY;
    else process.env.BIRCH_VERIFY = verify;
  });

  it('agrees with the model on get, getMany, getView and ranges, live and in snapshots, across checkpoints and reopens', async function () {
    this.timeout(600_000);
    const row = reliabilityRow(this, 'model (reads)', 'wrong');
    const numRuns = Number(process.env.BIRCH_READS_MODEL_RUNS ?? 40);
    const seen = { frozen: 0, snapshots: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.array(stepArb, { minLength: 1, maxLength: 18 }),
        fc.array(fc.array(fc.nat(160), { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.array(rangeArb, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 4 }),
        fc.constantFrom(...CACHE_SIZES),
        fc.constantFrom<AllocationPolicy>('first-fit', 'runs-first'),
        async (steps, probes, ranges, cacheSize, policy) => {
          row.cases++;
          await run(steps, probes, ranges, cacheSize, policy, seen);
        },
      ),
      { numRuns },
    );
    console.log(`      reads checked during ${seen.frozen} checkpoints in flight (frozen buffer), and in ${seen.snapshots} snapshot states`);
    assert.ok(seen.frozen > 0, 'some reads ran while a checkpoint held the frozen generation');
    assert.ok(seen.snapshots > 0, 'some snapshots were read');
  });
});
