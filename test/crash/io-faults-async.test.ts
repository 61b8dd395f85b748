// The I/O error sweep through the public async API with its threads: the database's Nth write or
// sync (EIO or ENOSPC, once or from then on; the writer and checkpointer threads count together,
// in shared memory) fails, for every N a workload of concurrent callers reaches. Every time: every
// promise settles (nothing hangs), every failure is typed, a write rejected or later than the
// failure is never visible, writes refuse with FATAL_IO until reopen, and reopening finds every
// acknowledged batch, no batch in part, and a clean check().
//
// The sweep runs on the real disk (a worker thread cannot share the in-memory simulated disk), so
// it shows what the threads and the handle do with the error, not what a power cut leaves: the
// power-loss sweep covers that, through the same classes on this thread. How batches group into
// records varies with timing, so the operations a run makes vary too: a fault whose number the run
// never reached (its counters say so) is counted as not reached, by name; every reached fault must
// surface.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { BirchError, open, type Birch } from '../../api/index.js';
import { FAULT_COUNTERS_BYTES, faultCounts, type FaultOp } from '../../pager/faults.js';
import { rmDir, tmpDir } from '../helpers/index.js';
import { assertRowClean, checkCaseAsync, reliabilityRow } from '../helpers/reliability.js';

const CALLERS = Number(process.env.BIRCH_ASYNC_FAULT_CALLERS ?? 8);
const BATCHES = Number(process.env.BIRCH_ASYNC_FAULT_BATCHES ?? 12);
// Small segments and checkpoints: the sweep then also fails segment switches and checkpoints.
const OPTS = { journalSegmentSize: 64 * 1024, checkpointBytes: 16 * 1024 };
const SEEDED = 12;

const batchKey = (c: number, s: number, part: 'a' | 'b'): string => `c${c}-s${String(s).padStart(3, '0')}-${part}`;

interface RunResult {
  /** Per caller, the batches whose promise resolved. */
  acked: Set<number>[];
  failed: boolean;
  /** Operations of the fault's kind the run made (from the shared counters, via stats). */
  reached: number;
}

function assertTyped(err: unknown, where: string): BirchError {
  assert.ok(err instanceof BirchError, `${where}: untyped error ${String(err)}`);
  return err;
}

async function withDeadline<T>(p: Promise<T>, where: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${where}: did not settle within 30 s (a hang)`)), 30_000);
  });
  try {
    return await Promise.race([p, hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** The workload with the fault in place; returns what was acknowledged. */
async function runWithFault(dir: string, op: FaultOp, n: number, sticky: boolean, code: 'EIO' | 'ENOSPC'): Promise<RunResult> {
  const where = `${op} #${n} (${sticky ? 'from then on' : 'once'}, ${code})`;
  const acked = Array.from({ length: CALLERS }, () => new Set<number>());
  const counters = new SharedArrayBuffer(FAULT_COUNTERS_BYTES);
  let db: Birch;
  try {
    db = await withDeadline(open(dir, { ...OPTS, faults: { op, n, sticky, code, counters } }), `${where}, open`);
  } catch (err) {
    assertTyped(err, `${where}, open`);
    return { acked, failed: true, reached: faultCounts(counters)[op] };
  }
  let firstFailure: BirchError | undefined;
  const rejectedBatches: [number, number][] = [];
  await withDeadline(
    Promise.all(
      Array.from({ length: CALLERS }, async (_, c) => {
        for (let s = 1; s <= BATCHES; s++) {
          const tag = `${c}:${s}`;
          try {
            await db.batch([
              { type: 'put', key: batchKey(c, s, 'a'), value: tag },
              { type: 'put', key: `c${c}-last`, value: String(s) },
              { type: 'put', key: batchKey(c, s, 'b'), value: tag.repeat(1 + ((c + s) % 40)) },
            ]);
            acked[c]?.add(s);
          } catch (err) {
            const e = assertTyped(err, `${where}, caller ${c} batch ${s}`);
            assert.equal(e.code, 'FATAL_IO', `${where}, caller ${c} batch ${s}: ${e.message}`);
            firstFailure ??= e;
            rejectedBatches.push([c, s]);
          }
        }
      }),
    ),
    `${where}, writes`,
  );
  let failed = firstFailure !== undefined;
  if (failed) {
    // Refused until reopened, though the disk would now take it (a one-off fault): no retry.
    await withDeadline(assert.rejects(db.put('after', 'x'), (e: unknown) => assertTyped(e, where).code === 'FATAL_IO'), `${where}, later write`);
    for (const [c, s] of rejectedBatches) {
      assert.equal(db.get(batchKey(c, s, 'a')), undefined, `${where}: rejected batch ${c}:${s} is visible`);
    }
  }
  for (let c = 0; c < CALLERS; c++) {
    for (const s of acked[c] ?? []) assert.equal(db.get(batchKey(c, s, 'a'))?.toString(), `${c}:${s}`, `${where}: acknowledged batch ${c}:${s} is not visible`);
  }
  try {
    await withDeadline(db.close(), `${where}, close`);
  } catch (err) {
    assertTyped(err, `${where}, close`);
    failed = true;
  }
  return { acked, failed, reached: faultCounts(counters)[op] };
}

/** Reopens without faults: every acknowledged batch is there, none in part, check() clean. */
async function verifyReopened(dir: string, r: RunResult, where: string): Promise<void> {
  const db = await open(dir, OPTS);
  try {
    for (let i = 0; i < SEEDED; i++) assert.equal(db.get(`seed${i}`)?.toString(), 'v', `${where}: seeded key ${i} was acknowledged before the run`);
    for (let c = 0; c < CALLERS; c++) {
      for (let s = 1; s <= BATCHES; s++) {
        const a = db.get(batchKey(c, s, 'a'));
        const b = db.get(batchKey(c, s, 'b'));
        assert.equal(a === undefined, b === undefined, `${where}: batch ${c}:${s} is half-applied`);
        if (r.acked[c]?.has(s)) assert.notEqual(a, undefined, `${where}: batch ${c}:${s} was acknowledged but is lost`);
      }
    }
    await db.checkpoint();
    const report = db.check();
    assert.ok(report.ok, `${where}: ${report.errors.slice(0, 3).join('; ')}`);
  } finally {
    await db.close();
  }
}

describe('crash: an I/O error at every write and sync of the async writer thread', () => {
  it(`settles every promise typed, never retries, and recovers every acknowledged batch (${CALLERS} callers x ${BATCHES} batches)`, async function () {
    this.timeout(900_000);
    const row = reliabilityRow(this, 'I/O errors (async)');
    const root = tmpDir('birch-async-faults');
    try {
      const template = path.join(root, 'template');
      const seeded = await open(template, OPTS);
      for (let i = 0; i < SEEDED; i++) await seeded.put(`seed${i}`, 'v');
      await seeded.close();
      const reached = { write: 0, sync: 0 };
      const notReached: string[] = [];
      for (const op of ['write', 'sync'] as const) {
        // Up to the first N the workload does not reach even once in a sticky run.
        for (let n = 1; ; n++) {
          let past = false;
          for (const sticky of [true, false]) {
            const code = n % 2 === 0 ? 'ENOSPC' : 'EIO';
            const where = `${op} #${n} (${sticky ? 'from then on' : 'once'}, ${code})`;
            await checkCaseAsync(row, where, async () => {
              const dir = path.join(root, `run-${op}-${n}-${sticky ? 's' : 'o'}`);
              fs.cpSync(template, dir, { recursive: true });
              try {
                const r = await runWithFault(dir, op, n, sticky, code);
                row.acked += r.acked.reduce((k, s) => k + s.size, 0);
                if (!r.failed) {
                  // Unseen is allowed only for a fault the run never reached, as its counters show.
                  assert.ok(r.reached < n, `${where}: the fault was reached (${r.reached} ${op}s) but not detected`);
                  notReached.push(where);
                  if (sticky) past = true;
                }
                await verifyReopened(dir, r, where);
              } finally {
                rmDir(dir);
              }
            });
          }
          if (past) break;
          reached[op] = n;
          assert.ok(n < 10_000, 'the sweep ends');
        }
      }
      console.log(`      ${row.cases} runs through the writer and checkpointer threads: ${reached.write} writes and ${reached.sync} syncs each failed in turn, once and from then on; ${row.cases - notReached.length} surfaced as typed errors, ${notReached.length} not reached by their run (${notReached.filter((w) => w.includes('once')).slice(0, 3).join('; ')}, ...); every acknowledged batch recovered, none half-applied`);
      assert.ok(reached.write > 0 && reached.sync > 0, 'the workload reached both kinds of operation');
      assertRowClean(row);
    } finally {
      rmDir(root);
    }
  });
});
