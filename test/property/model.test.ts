// Model-based test: random sequences of operations against birchdb and against a Map, compared
// after every step, with check() after every commit. fast-check prints the seed and the shrunk
// counterexample on failure; BIRCH_MODEL_RUNS raises the number of runs.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Database, MemoryDirectory, type ReadTxn, type WriteTxn } from '../../api/index.js';
import { assertClean } from '../helpers/index.js';
import { reliabilityRow } from '../helpers/reliability.js';

type Op =
  | { t: 'put'; k: number; size: number; tree: number }
  | { t: 'del'; k: number; tree: number }
  | { t: 'commit' }
  | { t: 'abort' }
  | { t: 'snap' }
  | { t: 'release'; i: number }
  | { t: 'checkSnap'; i: number }
  | { t: 'range'; lo: number; hi: number; reverse: boolean; limit: number }
  | { t: 'reopen' }
  | { t: 'crash' }
  | { t: 'checkpoint' }
  | { t: 'bulk'; start: number; n: number; stride: number; del: boolean; tree: number };

const TREES = [undefined, 'a', 'b'] as const;
type Model = Map<string, Map<string, string>>;

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ t: fc.constant('put' as const), k: fc.nat(300), size: fc.oneof(fc.nat(40), fc.constantFrom(1500, 2500, 9000)), tree: fc.nat(2) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('del' as const), k: fc.nat(300), tree: fc.nat(2) }) },
  { weight: 3, arbitrary: fc.constant({ t: 'commit' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'abort' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'snap' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('release' as const), i: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('checkSnap' as const), i: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('range' as const), lo: fc.nat(300), hi: fc.nat(300), reverse: fc.boolean(), limit: fc.nat(50) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'crash' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'checkpoint' as const }) },
  // Many keys at once, so that trees grow several levels deep and shrink again (splits, merges).
  { weight: 1, arbitrary: fc.record({ t: fc.constant('bulk' as const), start: fc.nat(2000), n: fc.integer({ min: 50, max: 600 }), stride: fc.integer({ min: 1, max: 7 }), del: fc.boolean(), tree: fc.nat(2) }) },
);

const k = (n: number): string => `key${String(n).padStart(5, '0')}`;
const v = (n: number, size: number, salt: number): string => `${n}:${salt}:`.padEnd(size + 8, String.fromCharCode(97 + (n % 26)));
const treeKey = (tree: string | undefined): string => tree ?? '';
const cloneModel = (m: Model): Model => new Map([...m].map(([t, kv]) => [t, new Map(kv)]));

function run(ops: Op[]): void {
  let dir = new MemoryDirectory();
  const opts = { journalSegmentSize: 96 * 1024, checkpointBytes: 64 * 1024 };
  let db = Database.open('model', { ...opts, backend: dir });
  let committed: Model = new Map();
  let pending: Model = new Map();
  let w: WriteTxn | undefined;
  const snaps: { r: ReadTxn; model: Model }[] = [];
  let salt = 0;
  const writer = (): WriteTxn => (w ??= db.beginWrite());
  const tree = (m: Model, t: string | undefined): Map<string, string> => {
    let kv = m.get(treeKey(t));
    if (kv === undefined) m.set(treeKey(t), (kv = new Map()));
    return kv;
  };
  const dropHandles = (): void => {
    for (const s of snaps.splice(0)) s.r.release();
    w?.abort();
    w = undefined;
    pending = cloneModel(committed);
  };
  for (const op of ops) {
    switch (op.t) {
      case 'put': {
        const t = TREES[op.tree];
        const val = v(op.k, op.size, salt++);
        writer().put(k(op.k), val, t);
        tree(pending, t).set(k(op.k), val);
        break;
      }
      case 'del': {
        const t = TREES[op.tree];
        const txn = writer();
        const exists = t === undefined || txn.hasTree(t);
        const expected = tree(pending, t).has(k(op.k));
        if (exists) assert.equal(txn.del(k(op.k), t), expected);
        tree(pending, t).delete(k(op.k));
        break;
      }
      case 'commit':
        if (w !== undefined) {
          w.commit();
          w = undefined;
          committed = cloneModel(pending);
          assertClean(db);
        }
        break;
      case 'abort':
        w?.abort();
        w = undefined;
        pending = cloneModel(committed);
        break;
      case 'snap':
        snaps.push({ r: db.beginRead(), model: cloneModel(committed) });
        break;
      case 'release':
        snaps.splice(op.i % Math.max(1, snaps.length), 1)[0]?.r.release();
        break;
      case 'checkSnap': {
        const s = snaps[op.i % Math.max(1, snaps.length)];
        if (s === undefined) break;
        for (const t of TREES) {
          const expected = [...(s.model.get(treeKey(t)) ?? new Map<string, string>())].sort(([a], [b]) => (a < b ? -1 : 1));
          const got: string[][] = t === undefined || s.r.hasTree(t) ? [...s.r.range({}, t)].map(([kk, vv]) => [kk.toString(), vv.toString()]) : [];
          assert.deepEqual(got, expected);
        }
        break;
      }
      case 'range': {
        const [lo, hi] = op.lo <= op.hi ? [op.lo, op.hi] : [op.hi, op.lo];
        const expected = [...tree(committed, undefined)].filter(([kk]) => kk >= k(lo) && kk < k(hi)).sort(([a], [b]) => (a < b ? -1 : 1));
        if (op.reverse) expected.reverse();
        const got: string[][] = db.read((r) => [...r.range({ gte: k(lo), lt: k(hi), reverse: op.reverse, limit: op.limit })]).map(([kk, vv]) => [kk.toString(), vv.toString()]);
        assert.deepEqual(got, expected.slice(0, op.limit));
        break;
      }
      case 'reopen':
        dropHandles();
        db.close();
        db = Database.open('model', { ...opts, backend: dir });
        break;
      case 'crash': {
        // Everything written so far reached the disk, then the process died: no close().
        const image = dir.clone();
        dropHandles();
        db.close();
        dir = image;
        db = Database.open('model', { ...opts, backend: dir });
        break;
      }
      case 'checkpoint':
        if (w === undefined) db.checkpointSync();
        break;
      case 'bulk': {
        const t = TREES[op.tree];
        const txn = writer();
        if (op.del && t !== undefined && !txn.hasTree(t)) break;
        const kv = tree(pending, t);
        for (let i = 0; i < op.n; i++) {
          const n: number = op.start + i * op.stride;
          if (op.del) {
            assert.equal(txn.del(k(n), t), kv.has(k(n)));
            kv.delete(k(n));
          } else {
            const val = v(n, (n * 37) % 300, salt++);
            txn.put(k(n), val, t);
            kv.set(k(n), val);
          }
        }
        break;
      }
    }
    if (w === undefined) {
      // Reads of the newest commit agree with the model.
      db.read((r) => {
        for (const t of TREES) {
          const kv = committed.get(treeKey(t));
          if (t !== undefined && !r.hasTree(t)) {
            assert.ok(kv === undefined || kv.size === 0 || false, `tree ${t} missing`);
            continue;
          }
          assert.equal(r.count(t), kv?.size ?? 0);
        }
      });
    }
  }
  dropHandles();
  db.close();
  const final = Database.open('model', { ...opts, backend: dir });
  for (const t of TREES) {
    const kv = committed.get(treeKey(t)) ?? new Map<string, string>();
    for (const [kk, vv] of kv) assert.equal(final.read((r) => r.get(kk, t))?.toString(), vv);
  }
  assertClean(final);
  final.close();
}

describe('property: the core against a Map model', () => {
  it('agrees with the model over random operation sequences with crashes and reopens', function () {
    this.timeout(600_000);
    const row = reliabilityRow(this, 'model (core)', 'wrong');
    const numRuns = Number(process.env.BIRCH_MODEL_RUNS ?? 500);
    const counted = (ops: Op[]): void => {
      row.cases++;
      run(ops);
    };
    fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 150, size: 'max' }), counted), { numRuns });
  });
});
