// Model-based test through the public API, with the writer and checkpointer on this thread over a
// memory directory: random sequences of writes (puts, deletes, conditional batches, tree drops,
// bulk loads), snapshots, ranges, checkpoints, clean reopens and crash-reopens, against a Map
// model, compared after every step, with check() after every checkpoint. fast-check prints the seed
// and the shrunk counterexample on failure; BIRCH_MODEL_RUNS raises the number of runs.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BirchError, type BatchOp, type Birch, type Snapshot } from '../../api/index.js';
import { assertClean, memDb } from '../helpers/index.js';
import { reliabilityRow } from '../helpers/reliability.js';

type Op =
  | { t: 'put'; k: number; size: number; tree: number }
  | { t: 'del'; k: number; tree: number }
  | { t: 'cas'; k: number; expect: number | null; size: number }
  | { t: 'drop'; tree: number }
  | { t: 'snap' }
  | { t: 'release'; i: number }
  | { t: 'checkSnap'; i: number }
  | { t: 'range'; lo: number; hi: number; reverse: boolean; limit: number; tree: number }
  | { t: 'reopen' }
  | { t: 'crash' }
  | { t: 'checkpoint' }
  | { t: 'bulk'; start: number; n: number; stride: number; del: boolean; tree: number };

const TREES = [undefined, 'a', 'b'] as const;
/** tree ('' default) -> key -> value */
type Model = Map<string, Map<string, string>>;

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ t: fc.constant('put' as const), k: fc.nat(300), size: fc.oneof(fc.nat(40), fc.constantFrom(1500, 2500, 9000)), tree: fc.nat(2) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('del' as const), k: fc.nat(300), tree: fc.nat(2) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('cas' as const), k: fc.nat(20), expect: fc.option(fc.nat(5), { nil: null }), size: fc.nat(40) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('drop' as const), tree: fc.integer({ min: 1, max: 2 }) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'snap' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('release' as const), i: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('checkSnap' as const), i: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('range' as const), lo: fc.nat(300), hi: fc.nat(300), reverse: fc.boolean(), limit: fc.nat(50), tree: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'crash' as const }) },
  { weight: 2, arbitrary: fc.constant({ t: 'checkpoint' as const }) },
  // Many keys at once, so that trees grow several levels deep and shrink again.
  { weight: 1, arbitrary: fc.record({ t: fc.constant('bulk' as const), start: fc.nat(2000), n: fc.integer({ min: 50, max: 600 }), stride: fc.integer({ min: 1, max: 7 }), del: fc.boolean(), tree: fc.nat(2) }) },
);

const k = (n: number): string => `key${String(n).padStart(5, '0')}`;
const v = (n: number, size: number, salt: number): string => `${n}:${salt}:`.padEnd(size + 8, String.fromCharCode(97 + (n % 26)));
const cloneModel = (m: Model): Model => new Map([...m].map(([t, kv]) => [t, new Map(kv)]));
const treeOpt = (t: string | undefined): { tree?: string } => (t === undefined ? {} : { tree: t });

function sortedEntries(kv: Map<string, string> | undefined): string[][] {
  return [...(kv ?? new Map<string, string>())].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

async function run(ops: Op[]): Promise<void> {
  const h = await memDb({ journalSegmentSize: 96 * 1024, checkpointBytes: 32 * 1024 });
  let db: Birch = h.db;
  let model: Model = new Map();
  /** Trees that exist (a put made them; a drop ends them), besides the default one. */
  let existing = new Set<string>();
  const snaps: { s: Snapshot; model: Model }[] = [];
  let salt = 0;
  const tree = (t: string | undefined): Map<string, string> => {
    let kv = model.get(t ?? '');
    if (kv === undefined) model.set(t ?? '', (kv = new Map()));
    return kv;
  };
  const releaseAll = (): void => {
    for (const s of snaps.splice(0)) s.s.release();
  };
  try {
    for (const op of ops) {
      switch (op.t) {
        case 'put': {
          const t = TREES[op.tree];
          const val = v(op.k, op.size, salt++);
          await db.put(k(op.k), val, treeOpt(t));
          tree(t).set(k(op.k), val);
          if (t !== undefined) existing.add(t);
          break;
        }
        case 'del': {
          const t = TREES[op.tree];
          await db.del(k(op.k), treeOpt(t));
          tree(t).delete(k(op.k));
          break;
        }
        case 'cas': {
          const cur = tree(undefined).get(k(op.k));
          const expect = op.expect === null ? undefined : v(op.k, 3, op.expect);
          const val = v(op.k, 3, op.expect === null ? 0 : (op.expect + 1) % 6);
          const holds = cur === expect;
          const r = await db.batch([{ type: 'put', key: k(op.k), value: val }], { ifMatch: [{ key: k(op.k), value: expect }] }).then(() => 'ok', (e: unknown) => e);
          if (holds) {
            assert.equal(r, 'ok', 'a condition that holds was refused: disagrees with the model');
            tree(undefined).set(k(op.k), val);
          } else assert.ok(r instanceof BirchError && r.code === 'CONDITION_FAILED', `a condition that does not hold was applied: disagrees with the model (${String(r)})`);
          break;
        }
        case 'drop': {
          const t = TREES[op.tree] as string;
          const r = await db.dropTree(t).then(() => 'ok', (e: unknown) => e);
          if (existing.has(t)) {
            assert.equal(r, 'ok', `dropping tree ${t} that exists: disagrees with the model`);
            existing.delete(t);
            model.delete(t);
          } else assert.ok(r instanceof BirchError && r.code === 'TREE_NOT_FOUND', `dropping tree ${t} that does not exist: disagrees with the model (${String(r)})`);
          break;
        }
        case 'snap':
          snaps.push({ s: db.snapshot(), model: cloneModel(model) });
          break;
        case 'release':
          snaps.splice(op.i % Math.max(1, snaps.length), 1)[0]?.s.release();
          break;
        case 'checkSnap': {
          const s = snaps[op.i % Math.max(1, snaps.length)];
          if (s === undefined) break;
          for (const t of TREES) {
            const got: string[][] = [...s.s.range(treeOpt(t))].map(([kk, vv]) => [kk.toString(), vv.toString()]);
            assert.deepEqual(got, sortedEntries(s.model.get(t ?? '')), 'a snapshot disagrees with the model of its time');
          }
          break;
        }
        case 'range': {
          const t = TREES[op.tree];
          const [lo, hi] = op.lo <= op.hi ? [op.lo, op.hi] : [op.hi, op.lo];
          const expected = sortedEntries(model.get(t ?? '')).filter(([kk]) => (kk as string) >= k(lo) && (kk as string) < k(hi));
          if (op.reverse) expected.reverse();
          const got: string[][] = [...db.range({ ...treeOpt(t), gte: k(lo), lt: k(hi), reverse: op.reverse, limit: op.limit })].map(([kk, vv]) => [kk.toString(), vv.toString()]);
          assert.deepEqual(got, expected.slice(0, op.limit), 'a range disagrees with the model');
          break;
        }
        case 'reopen':
          releaseAll();
          db = await h.reopen();
          break;
        case 'crash':
          // Every write so far reached the disk, then the process died: no close().
          releaseAll();
          db = await h.crash();
          break;
        case 'checkpoint':
          await db.checkpoint();
          assertClean(db);
          break;
        case 'bulk': {
          const t = TREES[op.tree];
          const kv = tree(t);
          const batch: BatchOp[] = [];
          for (let i = 0; i < op.n; i++) {
            const n: number = op.start + i * op.stride;
            if (op.del) {
              batch.push({ type: 'del', key: k(n), ...treeOpt(t) });
              kv.delete(k(n));
            } else {
              const val = v(n, (n * 37) % 300, salt++);
              batch.push({ type: 'put', key: k(n), value: val, ...treeOpt(t) });
              kv.set(k(n), val);
            }
          }
          await db.batch(batch);
          if (!op.del && t !== undefined) existing.add(t);
          break;
        }
      }
      // Reads of the newest batch agree with the model, and so does the list of trees.
      for (const t of TREES) {
        const got: string[][] = [...db.range(treeOpt(t))].map(([kk, vv]) => [kk.toString(), vv.toString()]);
        assert.deepEqual(got, sortedEntries(model.get(t ?? '')), `the newest state of tree ${t ?? '(default)'} disagrees with the model`);
      }
      assert.deepEqual(db.trees(), [...existing].sort(), 'the list of trees disagrees with the model');
    }
    releaseAll();
    await h.reopen();
    db = h.db;
    for (const t of TREES) for (const [kk, vv] of model.get(t ?? '') ?? []) assert.equal(db.get(kk, treeOpt(t))?.toString(), vv, 'a value after the last reopen disagrees with the model');
    await db.checkpoint();
    assertClean(db);
  } finally {
    releaseAll();
    await db.close();
  }
}

describe('property: the database against a Map model, with checkpoints and crashes as steps', () => {
  it('agrees with the model over random operation sequences', async function () {
    this.timeout(900_000);
    const row = reliabilityRow(this, 'model (core)', 'wrong');
    const numRuns = Number(process.env.BIRCH_MODEL_RUNS ?? 300);
    const counted = async (ops: Op[]): Promise<void> => {
      row.cases++;
      await run(ops);
    };
    await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 120, size: 'max' }), counted), { numRuns });
  });
});
