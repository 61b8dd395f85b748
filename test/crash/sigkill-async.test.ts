// SIGKILL at a random moment while many async callers write through the writer thread; after
// each kill every acknowledged batch must be present, no batch half-applied, check() clean.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open } from '../../api/index.js';
import { assertClean, rmDir, rng, tmpDir } from '../helpers/index.js';
import { assertRowClean, checkCaseAsync, reliabilityRow } from '../helpers/reliability.js';

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'child-async.js');
const CYCLES = Number(process.env.BIRCH_ASYNC_KILL_CYCLES ?? 120);
const CALLERS = 32;

interface KillResult {
  acked: Map<number, number>;
  /** Killed before the child had opened the database: during its recovery of the last crash. */
  duringOpen: boolean;
}

/**
 * Runs the child and kills it `afterMs` after it starts or, with `duringOpen`, `afterMs` after
 * it reports that it is opening (and so recovering what the previous kill left).
 */
function runAndKill(dir: string, afterMs: number, duringOpen = false): Promise<KillResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    const kill = (): void => {
      p.kill('SIGKILL');
    };
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (duringOpen && timer === undefined && out.includes('OPENING\n')) timer = setTimeout(kill, afterMs);
    });
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    if (!duringOpen) timer = setTimeout(kill, afterMs);
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') return reject(new Error(`child exited on its own (${code}): ${err}`));
      const acked = new Map<number, number>();
      for (const m of out.matchAll(/^ACK (\d+) (\d+)$/gm)) acked.set(Number(m[1]), Math.max(acked.get(Number(m[1])) ?? 0, Number(m[2])));
      resolve({ acked, duringOpen: !out.includes('OPEN\n') });
    });
  });
}

describe('crash: SIGKILL while many async callers write', () => {
  it(`keeps every acknowledged batch, none half-applied, over ${CYCLES} cycles of kills`, async function () {
    this.timeout(600_000);
    const row = reliabilityRow(this, 'SIGKILL (async)');
    const dir = tmpDir('birch-kill-async');
    const seed = Number(process.env.BIRCH_SEED ?? Date.now() % 100000);
    const rand = rng(seed);
    const ackedEver = new Map<number, number>();
    let killsInOpen = 0;
    try {
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        const runs = [await runAndKill(dir, 250 + Math.floor(rand() * 500))];
        // One cycle in three, the next process is killed too, 0-70 ms after it starts to open
        // (opening took 50-65 ms on the team's machine): while its writer thread starts, replays
        // the journal the first one left, flushes what it replayed, or just after.
        if (cycle % 3 === 2) runs.push(await runAndKill(dir, Math.floor(rand() * 70), true));
        for (const r of runs) {
          if (r.duringOpen) killsInOpen++;
          for (const [c, s] of r.acked) ackedEver.set(c, Math.max(ackedEver.get(c) ?? 0, s));
        }
        // Every batch acknowledged so far is checked again after this kill.
        row.acked += [...ackedEver.values()].reduce((a, b) => a + b, 0);
        await checkCaseAsync(row, `seed ${seed} cycle ${cycle}`, async () => {
          const db = await open(dir);
          try {
            for (let c = 0; c < CALLERS; c++) {
              const count = Number(db.get(`c${c}-count`)?.toString() ?? '0');
              const ack = ackedEver.get(c) ?? 0;
              assert.ok(count >= ack, `seed ${seed} cycle ${cycle}: caller ${c} acknowledged ${ack} but only ${count} survived`);
              const items = [...db.range({ prefix: `c${c}-item-` })].length;
              assert.equal(items, count, `seed ${seed} cycle ${cycle}: caller ${c} has ${items} items for counter ${count} (a half-applied batch)`);
            }
            await db.checkpoint();
            assertClean(db);
          } finally {
            await db.close();
          }
        });
        row.cases += runs.length - 1;
      }
      const acknowledged = [...ackedEver.values()].reduce((a, b) => a + b, 0);
      console.log(`      ${CYCLES} cycles, ${CYCLES + Math.floor(CYCLES / 3)} kills (${killsInOpen} while opening: replaying the journal, starting the threads, or just after), ${acknowledged} acknowledged batches, each checked after every later kill (seed ${seed})`);
      assert.ok(killsInOpen > 0, 'no kill landed while a process was opening');
      assertRowClean(row);
    } finally {
      rmDir(dir);
    }
  });
});
