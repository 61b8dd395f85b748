// A child process committing batches in a loop, with a checkpoint every few batches, is killed
// with SIGKILL at a random moment (once it has acknowledged a random number of batches, so that
// how many checkpoints it makes depends on what it wrote, not on this machine's speed), so that
// kills land in checkpoints as much as in journal writes;
// on reopen every acknowledged batch must be there, no batch half-applied, and after checkpointing
// what it replayed, check() clean.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NodeDirectory, open } from '../../api/index.js';
import { DATA_FILE, readMetas } from '../../pager/data-file.js';
import { assertClean, isCode, rmDir, rng, tmpDir } from '../helpers/index.js';
import { assertRowClean, checkCaseAsync, reliabilityRow } from '../helpers/reliability.js';

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'child.js');
const CYCLES = Number(process.env.BIRCH_KILL_CYCLES ?? 40);

/** The newest checkpoint id in the data file's metas, read from disk without opening the database. */
function checkpointIdOnDisk(dir: string): number {
  const file = new NodeDirectory(dir).open(DATA_FILE, { create: false, readOnly: true });
  try {
    return readMetas(file).newest.checkpointId;
  } finally {
    file.close();
  }
}

/**
 * Runs the child until `afterMs` have passed or it has acknowledged `afterAcks` batches (it goes on
 * writing until the signal lands), then kills it. `last`: the newest acknowledged batch; `count`:
 * how many were acknowledged; `checkpoints`: how many checkpoints the child's stats() counted as
 * finished at its last acknowledgement.
 */
function runAndKill(dir: string, when: { afterMs: number } | { afterAcks: number }, whileRunning?: () => void): Promise<{ last: number; count: number; checkpoints: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let probed = false;
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if ('afterAcks' in when && !p.killed && (out.match(/^ACK /gm)?.length ?? 0) >= when.afterAcks) p.kill('SIGKILL');
      if (!probed && whileRunning !== undefined) {
        probed = true;
        try {
          whileRunning();
        } catch (e) {
          p.kill('SIGKILL');
          reject(e as Error);
        }
      }
    });
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = 'afterMs' in when ? setTimeout(() => p.kill('SIGKILL'), when.afterMs) : undefined;
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') return reject(new Error(`child exited on its own (${code}): ${err}`));
      const acks = [...out.matchAll(/^ACK (\d+) (\d+)$/gm)].map((m) => ({ t: Number(m[1]), checkpoints: Number(m[2]) }));
      const last = acks[acks.length - 1];
      resolve({ last: last?.t ?? 0, count: acks.length, checkpoints: last?.checkpoints ?? 0 });
    });
  });
}

describe('crash: SIGKILL during journal writes and checkpoints', () => {
  it(`keeps every acknowledged batch, atomically, over ${CYCLES} kills`, async function () {
    this.timeout(600_000);
    const row = reliabilityRow(this, 'SIGKILL (checkpoints)');
    const dir = tmpDir('birch-kill');
    const rand = rng(Number(process.env.BIRCH_SEED ?? Date.now() % 100000));
    let totalAcked = 0;
    // The checkpoints the children made, counted on disk: each writes one meta, under the next
    // checkpoint id, and nothing else writes a meta while a child runs (it opens metas that the
    // harness's close settled, so its open settles nothing). The newest checkpoint id after a kill,
    // less the one before the child started, counts them; the harness's own checkpoint() and
    // close() fall between children and are not counted.
    let childCheckpoints = 0;
    let cyclesWithCheckpoints = 0;
    try {
      // The data file created and its metas settled before the first child, as for every later one.
      await (await open(dir)).close();
      let lastAcked = 0;
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        const before = checkpointIdOnDisk(dir);
        const acked = await runAndKill(dir, { afterAcks: 1 + Math.floor(rand() * 300) });
        const made = checkpointIdOnDisk(dir) - before;
        childCheckpoints += made;
        if (made > 0) cyclesWithCheckpoints++;
        lastAcked = Math.max(lastAcked, acked.last);
        totalAcked += acked.count;
        row.acked += acked.count;
        await checkCaseAsync(row, `cycle ${cycle}`, async () => {
          // Every checkpoint the child's stats() counted as finished wrote its meta first.
          assert.ok(made >= acked.checkpoints, `cycle ${cycle}: the child counted ${acked.checkpoints} finished checkpoints, the data file's metas show ${made}`);
          const db = await open(dir);
          try {
            const last = Number(db.get('last')?.toString() ?? '0');
            assert.ok(last >= lastAcked, `cycle ${cycle}: last batch ${last} is older than acknowledged ${lastAcked}`);
            for (let t = Math.max(1, last - 40); t <= last + 5; t++) {
              const present = [...db.range({ prefix: `t${t}-` })].length;
              const expected = t > last || t <= last - 10 ? 0 : 20;
              assert.equal(present, expected, `cycle ${cycle}: batch ${t} has ${present} of its keys (last ${last})`);
            }
            await db.checkpoint();
            assertClean(db);
          } finally {
            await db.close();
          }
        });
      }
      console.log(`      ${CYCLES} kills, ${totalAcked} acknowledged batches, each checked after every later kill; the children made ${childCheckpoints} checkpoints (counted from the data file's metas), in ${cyclesWithCheckpoints} of ${CYCLES} runs`);
      // A batch buffers about 8.4 KiB (40 operations: key, value and ENTRY_OVERHEAD_BYTES each), so
      // with checkpointBytes 96 KiB a checkpoint follows every 12 batches, or every 23 at worst (a
      // checkpoint slower than the writes lets the next generation grow to the hard limit, twice
      // checkpointBytes). A child acknowledges 150 batches on average before its kill: 6 checkpoints
      // a run even at worst, 10 as measured (422 in 40 runs, 5,790 batches). More than 3 a run is required.
      assert.ok(childCheckpoints > CYCLES * 3, `the children made only ${childCheckpoints} checkpoints in ${CYCLES} runs: kills did not land among checkpoints`);
      assertRowClean(row);
    } finally {
      rmDir(dir);
    }
  });

  it('refuses to open a directory that another process holds open, and the lock dies with the process', async () => {
    const dir = tmpDir('birch-lock');
    try {
      let refused: Promise<unknown> | undefined;
      await runAndKill(dir, { afterMs: 1500 }, () => {
        refused = open(dir).then((db) => db.close(), (e: unknown) => e);
      });
      const e = await refused;
      assert.ok(isCode('DB_LOCKED')(e), `expected DB_LOCKED, got ${String(e)}`);
      await (await open(dir)).close();
    } finally {
      rmDir(dir);
    }
  });

  it('refuses a second open of a directory that is open in this process', async () => {
    const dir = tmpDir('birch-lock');
    try {
      const db = await open(dir);
      await assert.rejects(open(dir), isCode('DB_LOCKED'));
      await db.close();
      await (await open(dir)).close();
    } finally {
      rmDir(dir);
    }
  });
});
