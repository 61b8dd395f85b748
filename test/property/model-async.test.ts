// The model test through the async API with its threads: each step issues several batches at once,
// from concurrent callers, without waiting in between. Batches apply in issue order, conditions
// decided against every batch issued before, so a Map that applies the same batches in the same
// order must agree with the database on every outcome and every key. Reopens and snapshots are
// steps too, and a small checkpointBytes makes checkpoints run under the steps.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BirchError, open, type BatchOp, type Birch, type Snapshot } from '../../api/index.js';
import { rmDir, tmpDir } from '../helpers/index.js';
import { reliabilityRow } from '../helpers/reliability.js';

type Write = { ops: { del: boolean; k: number; v: number; tree: number }[]; cond?: { k: number; v: number | null } };
type Step = { t: 'writes'; writes: Write[] } | { t: 'reopen' } | { t: 'snap' } | { t: 'release' };

const TREES = [undefined, 't1'] as const;
const key = (k: number): string => `k${String(k).padStart(3, '0')}`;
const val = (v: number): string => `value-${v}-`.padEnd(20 + (v % 50) * 40, 'x');
const mkey = (tree: string | undefined, k: string): string => `${tree ?? ''}/${k}`;
const treeOpt = (tree: string | undefined): { tree?: string } => (tree === undefined ? {} : { tree });

/** The model's entries of one tree, in key order, as `tree/key=value`. */
function entries(model: Map<string, string>, tree: string | undefined): string[] {
  return [...model].filter(([k]) => k.startsWith(`${tree ?? ''}/`)).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v}`);
}

const writeArb: fc.Arbitrary<Write> = fc.record(
  {
    ops: fc.array(fc.record({ del: fc.boolean(), k: fc.nat(60), v: fc.nat(1000), tree: fc.nat(1) }), { minLength: 1, maxLength: 8 }),
    cond: fc.record({ k: fc.nat(60), v: fc.option(fc.nat(1000), { nil: null }) }),
  },
  { requiredKeys: ['ops'] },
);
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ t: fc.constant('writes' as const), writes: fc.array(writeArb, { minLength: 1, maxLength: 30 }) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'snap' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'release' as const }) },
);

async function run(steps: Step[]): Promise<void> {
  const dir = tmpDir('birch-model-async');
  let db: Birch = await open(dir, { checkpointBytes: 64 * 1024, journalSegmentSize: 256 * 1024 });
  const model = new Map<string, string>();
  const snaps: { s: Snapshot; model: Map<string, string> }[] = [];
  try {
    for (const step of steps) {
      if (step.t === 'reopen') {
        for (const x of snaps.splice(0)) x.s.release();
        await db.close();
        db = await open(dir, { checkpointBytes: 64 * 1024, journalSegmentSize: 256 * 1024 });
      } else if (step.t === 'snap') {
        snaps.push({ s: db.snapshot(), model: new Map(model) });
      } else if (step.t === 'release') {
        snaps.shift()?.s.release();
      } else {
        const expected: boolean[] = [];
        const promises = step.writes.map((w) => {
          // A conditional write on the latest value of a key in the default tree.
          const cond = w.cond === undefined ? undefined : { k: key(w.cond.k), v: w.cond.v === null ? undefined : val(w.cond.v) };
          const holds = cond === undefined || model.get(mkey(undefined, cond.k)) === cond.v;
          expected.push(holds);
          if (holds) {
            for (const o of w.ops) {
              if (o.del) model.delete(mkey(TREES[o.tree], key(o.k)));
              else model.set(mkey(TREES[o.tree], key(o.k)), val(o.v));
            }
          }
          const ops: BatchOp[] = w.ops.map((o) => {
            const tree = TREES[o.tree];
            const base = o.del ? { type: 'del' as const, key: key(o.k) } : { type: 'put' as const, key: key(o.k), value: val(o.v) };
            return tree === undefined ? base : { ...base, tree };
          });
          return db.batch(ops, cond === undefined ? undefined : { ifMatch: [{ key: cond.k, value: cond.v }] });
        });
        const outcomes = await Promise.allSettled(promises);
        outcomes.forEach((o, i) => {
          if (o.status === 'rejected') assert.ok(o.reason instanceof BirchError && o.reason.code === 'CONDITION_FAILED', String(o.reason));
          assert.equal(o.status === 'fulfilled', expected[i], `write ${i} of the step`);
        });
      }
      for (const tree of TREES) {
        const got = [...db.range(treeOpt(tree))].map(([k, v]) => `${mkey(tree, k.toString())}=${v.toString()}`);
        assert.deepEqual(got, entries(model, tree), `tree ${tree ?? '(default)'} disagrees with the model`);
        // Every snapshot still reads every tree as it was when taken.
        for (const x of snaps) {
          const fromSnap = [...x.s.range(treeOpt(tree))].map(([k, v]) => `${mkey(tree, k.toString())}=${v.toString()}`);
          assert.deepEqual(fromSnap, entries(x.model, tree), `a snapshot of tree ${tree ?? '(default)'} disagrees with the model of its time`);
        }
      }
    }
    await db.checkpoint();
    const report = db.check();
    assert.ok(report.ok, report.errors.join('\n'));
  } finally {
    for (const x of snaps) x.s.release();
    await db.close();
    rmDir(dir);
  }
}

describe('property: the async API against a Map model, with concurrent callers', () => {
  it('agrees with the model on every outcome and key', async function () {
    this.timeout(600_000);
    const row = reliabilityRow(this, 'model (async)', 'wrong');
    const numRuns = Number(process.env.BIRCH_ASYNC_MODEL_RUNS ?? 60);
    const counted = async (steps: Step[]): Promise<void> => {
      row.cases++;
      await run(steps);
    };
    await fc.assert(fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 25 }), counted), { numRuns });
  });
});
