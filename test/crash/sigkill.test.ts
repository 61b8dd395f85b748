// A child process committing batches in a loop, with a checkpoint every few batches, is killed
// with SIGKILL at a random moment, so that kills land in checkpoints as much as in journal writes;
// on reopen every acknowledged batch must be there, no batch half-applied, and after checkpointing
// what it replayed, check() clean.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open } from '../../api/index.js';
import { assertClean, isCode, rmDir, rng, tmpDir } from '../helpers/index.js';
import { assertRowClean, checkCaseAsync, reliabilityRow } from '../helpers/reliability.js';

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'child.js');
const CYCLES = Number(process.env.BIRCH_KILL_CYCLES ?? 40);

function runAndKill(dir: string, afterMs: number, whileRunning?: () => void): Promise<{ last: number; count: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let probed = false;
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
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
    const timer = setTimeout(() => p.kill('SIGKILL'), afterMs);
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') return reject(new Error(`child exited on its own (${code}): ${err}`));
      const acks = [...out.matchAll(/^ACK (\d+)$/gm)].map((m) => Number(m[1]));
      resolve({ last: acks.length === 0 ? 0 : Math.max(...acks), count: acks.length });
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
    let checkpoints = 0;
    try {
      let lastAcked = 0;
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        const acked = await runAndKill(dir, 300 + Math.floor(rand() * 700));
        lastAcked = Math.max(lastAcked, acked.last);
        totalAcked += acked.count;
        row.acked += acked.count;
        await checkCaseAsync(row, `cycle ${cycle}`, async () => {
          const db = await open(dir);
          try {
            const last = Number(db.get('last')?.toString() ?? '0');
            assert.ok(last >= lastAcked, `cycle ${cycle}: last batch ${last} is older than acknowledged ${lastAcked}`);
            for (let t = Math.max(1, last - 40); t <= last + 5; t++) {
              const present = [...db.range({ prefix: `t${t}-` })].length;
              const expected = t > last || t <= last - 10 ? 0 : 20;
              assert.equal(present, expected, `cycle ${cycle}: batch ${t} has ${present} of its keys (last ${last})`);
            }
            checkpoints = db.stats({ trees: false }).checkpointId;
            await db.checkpoint();
            assertClean(db);
          } finally {
            await db.close();
          }
        });
      }
      console.log(`      ${CYCLES} kills, ${totalAcked} acknowledged batches, each checked after every later kill; the database went through ${checkpoints} checkpoints`);
      assert.ok(checkpoints > CYCLES * 3, 'checkpoints ran while the children wrote');
      assertRowClean(row);
    } finally {
      rmDir(dir);
    }
  });

  it('refuses to open a directory that another process holds open, and the lock dies with the process', async () => {
    const dir = tmpDir('birch-lock');
    try {
      let refused: Promise<unknown> | undefined;
      await runAndKill(dir, 1500, () => {
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
