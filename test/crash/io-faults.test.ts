// The I/O error sweep on the simulated disk, through the public async API (the writer and the
// checkpointer on this thread, so the run is deterministic): for every write and every sync of a
// workload in turn, fail it (EIO or ENOSPC, once or from then on). Every time: the failure
// surfaces as a typed error (a rejected batch, open or close), later writes refuse with FATAL_IO
// until reopen (an fsync is never retried), and a power cut right after leaves a database that
// opens with every acknowledged batch, none in part. A fault is counted "not reached" only if the
// run made fewer operations of its kind than its number (the counters say so); every reached fault
// must surface.
import assert from 'node:assert/strict';
import { BirchError, open, type Birch } from '../../api/index.js';
import { FaultyDirectory, type FaultOp } from '../../pager/faults.js';
import { CrashDirectory } from '../helpers/crash-dir.js';
import { assertRowClean, checkCaseAsync, reliabilityRow } from '../helpers/reliability.js';

const BATCHES = Number(process.env.BIRCH_FAULT_COMMITS ?? 60);
// Small segments and checkpoints: the sweep fails segment switches and checkpoints too.
const OPTS = { journalSegmentSize: 64 * 1024, checkpointBytes: 32 * 1024 };
const keyOf = (t: number, i: number): string => `t${t}-${String(i).padStart(2, '0')}`;

function batch(db: Birch, t: number): Promise<void> {
  const ops: Parameters<Birch['batch']>[0] = [];
  for (let i = 0; i < 15; i++) ops.push({ type: 'put', key: keyOf(t, i), value: `v${t}-${i}-`.repeat(1 + (i % 4)) });
  if (t > 5) for (let i = 0; i < 15; i++) ops.push({ type: 'del', key: keyOf(t - 5, i) });
  ops.push({ type: 'put', key: 'last', value: String(t) });
  return db.batch(ops);
}

function typed(err: unknown, where: string): BirchError {
  assert.ok(err instanceof BirchError, `${where}: untyped error ${String(err)}`);
  return err;
}

/**
 * Runs the workload with the fault; returns what was acknowledged and where the fault surfaced.
 * `onAck` is told of each acknowledged batch as the test sees it.
 */
async function runWithFault(faulty: FaultyDirectory, where: string, onAck?: (t: number) => void): Promise<{ acked: number; surfaced: string | undefined }> {
  let db: Birch;
  try {
    db = await open('f', { ...OPTS, backend: faulty });
  } catch (err) {
    typed(err, `${where}, open`);
    return { acked: 0, surfaced: 'open' };
  }
  let acked = 0;
  let surfaced: string | undefined;
  for (let t = 1; t <= BATCHES; t++) {
    try {
      await batch(db, t);
      acked = t;
      onAck?.(t);
    } catch (err) {
      const e = typed(err, `${where}, batch ${t}`);
      assert.equal(e.code, 'FATAL_IO', `${where}, batch ${t}: ${e.message}`);
      surfaced = `batch ${t}`;
      // No retry: the next write refuses even though the disk would now accept it.
      faulty.setPlan(undefined);
      await assert.rejects(batch(db, t + 1), (x: unknown) => x instanceof BirchError && x.code === 'FATAL_IO');
      // Reads go on, and show the acknowledged batches exactly: batch t failed, none of it shows.
      assert.equal(db.get('last')?.toString(), acked === 0 ? undefined : String(acked), `${where}: after batch ${t} failed, reads show batch ${db.get('last')?.toString() ?? 'none'} as the last, where ${acked} was acknowledged`);
      assert.equal(db.get(keyOf(t, 0)), undefined, `${where}: the failed batch ${t} is visible`);
      if (t > 5) assert.equal(db.get(keyOf(t - 5, 0))?.toString(), `v${t - 5}-0-`, `${where}: a key the failed batch ${t} deletes is not visible`);
      break;
    }
  }
  try {
    await db.close();
  } catch (err) {
    typed(err, `${where}, close`);
    surfaced ??= 'close';
  }
  return { acked, surfaced };
}

async function verifyAfterCut(sim: CrashDirectory, acked: number, where: string): Promise<void> {
  for (const [name, keep] of [['nothing unsynced kept', () => 0], ['everything kept', (_f: string, _i: number, s: number) => s]] as const) {
    const db = await open('cut', { ...OPTS, backend: sim.crashImage(keep) });
    try {
      const last = Number(db.get('last')?.toString() ?? '0');
      assert.ok(last >= acked, `${where}, ${name}: opened at batch ${last} but ${acked} was acknowledged`);
      for (let t = Math.max(1, last - 7); t <= last + 1; t++) {
        const present = [...db.range({ prefix: `t${t}-` })].length;
        assert.equal(present, t > last || t <= last - 5 ? 0 : 15, `${where}, ${name}: batch ${t} has ${present} keys (opened at ${last})`);
      }
      await db.checkpoint();
      const report = db.check();
      assert.ok(report.ok, `${where}, ${name}: ${report.errors.slice(0, 3).join('; ')}`);
    } finally {
      await db.close();
    }
  }
}

describe('crash: an I/O error at every write and sync of a workload (simulated disk, async API)', () => {
  it(`fails typed, never retries a sync, and recovers every acknowledged batch (${BATCHES} batches)`, async function () {
    this.timeout(900_000);
    const row = reliabilityRow(this, 'I/O errors (core)');
    // Count the operations of a clean run, and how many of each kind came before each acknowledgement.
    const clean = new FaultyDirectory(new CrashDirectory());
    const countsAtAck: { write: number; sync: number }[] = [];
    const r = await runWithFault(clean, 'clean run', () => countsAtAck.push(clean.counts));
    assert.equal(r.acked, BATCHES);
    const totals = clean.counts;
    // The run is deterministic, and with a fault at the nth operation of a kind every earlier one
    // succeeds: each batch the clean run acknowledged with fewer than n operations of that kind
    // behind it must be acknowledged again.
    const ackedBefore = (op: FaultOp, n: number): number => countsAtAck.filter((c) => c[op] < n).length;
    let runsWithAcks = 0;
    let runsDueAcks = 0;
    const notReached: string[] = [];
    for (const op of ['write', 'sync'] as FaultOp[]) {
      for (let n = 1; n <= totals[op]; n++) {
        for (const sticky of [false, true]) {
          const code = n % 2 === 0 ? 'ENOSPC' : 'EIO';
          const where = `${op} #${n} (${sticky ? 'from then on' : 'once'}, ${code})`;
          await checkCaseAsync(row, where, async () => {
            const sim = new CrashDirectory();
            const faulty = new FaultyDirectory(sim, { op, n, sticky, code });
            const { acked, surfaced } = await runWithFault(faulty, where);
            row.acked += acked;
            const due = ackedBefore(op, n);
            if (acked > 0) runsWithAcks++;
            if (due > 0) runsDueAcks++;
            assert.ok(acked >= due, `${where}: ${acked} batches acknowledged, where the clean run had acknowledged ${due} before this operation`);
            if (surfaced === undefined) {
              // Only a fault the run never reached may go unseen, and the counters must show it.
              assert.ok(faulty.counts[op] < n, `${where}: the fault was reached (${faulty.counts[op]} ${op}s) but not detected`);
              notReached.push(where);
            }
            await verifyAfterCut(sim, acked, where);
          });
        }
      }
    }
    console.log(`      ${row.cases} runs: ${totals.write} writes and ${totals.sync} syncs each failed in turn, once and from then on; ${row.cases - notReached.length} surfaced as typed errors, ${notReached.length} not reached (${notReached.slice(0, 4).join('; ')}${notReached.length > 4 ? '; ...' : ''}); ${runsWithAcks} runs had acknowledged batches to recover (${runsDueAcks} had to); every acknowledged batch recovered`);
    assertRowClean(row);
    // The workload exists to check acknowledged batches after faults: only the faults among the
    // open's operations and the first batch's (one run in eight) come before any acknowledgement.
    assert.ok(runsWithAcks >= runsDueAcks && runsDueAcks >= (3 / 4) * row.cases, `only ${runsWithAcks} of ${row.cases} runs had acknowledged batches (${runsDueAcks} due)`);
  });
});
