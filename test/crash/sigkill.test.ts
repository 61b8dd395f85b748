// A child process committing in a loop is killed with SIGKILL at a random moment; on reopen every
// acknowledged commit must be there, no commit half-applied, check() clean.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Database } from '../../api/index.js';
import { assertClean, rmDir, rng, tmpDir } from '../helpers/index.js';
import { reliabilityRow } from '../helpers/reliability.js';

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

describe('crash: SIGKILL during commits and flushes', () => {
  it(`keeps every acknowledged commit, atomically, over ${CYCLES} kills`, async function () {
    this.timeout(300_000);
    const row = reliabilityRow(this, 'SIGKILL (core)');
    const dir = tmpDir('birch-kill');
    const rand = rng(Number(process.env.BIRCH_SEED ?? Date.now() % 100000));
    let totalAcked = 0;
    try {
      let lastAcked = 0;
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        const acked = await runAndKill(dir, 300 + Math.floor(rand() * 700));
        lastAcked = Math.max(lastAcked, acked.last);
        totalAcked += acked.count;
        const db = Database.open(dir);
        try {
          const last = Number(db.read((r) => r.get('last'))?.toString() ?? '0');
          assert.ok(last >= lastAcked, `cycle ${cycle}: last commit ${last} is older than acknowledged ${lastAcked}`);
          db.read((r) => {
            for (let t = Math.max(1, last - 40); t <= last + 5; t++) {
              const present = [...r.range({ prefix: `t${t}-` })].length;
              const expected = t > last || t <= last - 10 ? 0 : 20;
              assert.equal(present, expected, `cycle ${cycle}: txn ${t} has ${present} of its keys (last ${last})`);
            }
          });
          assertClean(db);
        } finally {
          db.close();
        }
        row.cases++;
        row.acked += acked.count;
      }
      console.log(`      ${CYCLES} kills, ${totalAcked} acknowledged commits, each checked after every later kill`);
    } finally {
      rmDir(dir);
    }
  });

  it('refuses to open a directory that another process holds open', async () => {
    const dir = tmpDir('birch-lock');
    try {
      let refused: unknown;
      await runAndKill(dir, 1500, () => {
        try {
          Database.open(dir).close();
        } catch (e) {
          refused = e;
        }
      });
      assert.ok(refused instanceof Error && (refused as { code?: string }).code === 'DB_LOCKED', `expected DB_LOCKED, got ${String(refused)}`);
      Database.open(dir).close(); // the lock died with the process
    } finally {
      rmDir(dir);
    }
  });

  it('refuses a second open of a directory that is open in this process', () => {
    const dir = tmpDir('birch-lock');
    try {
      const db = Database.open(dir);
      assert.throws(() => Database.open(dir), (e: unknown) => e instanceof Error && (e as { code?: string }).code === 'DB_LOCKED');
      db.close();
      Database.open(dir).close();
    } finally {
      rmDir(dir);
    }
  });
});
