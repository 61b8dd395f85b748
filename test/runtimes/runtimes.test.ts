// The same compiled package under Node, Bun and Deno (both development dependencies of this
// repository, so `npm install` brings them): the smoke suite in smoke.ts, and a writer killed
// with SIGKILL whose acknowledged batches must all be there when the same runtime reopens.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open } from '../../api/index.js';
import { rmDir, tmpDir } from '../helpers/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../..');
const SMOKE = path.join(here, 'smoke.js');
const BIRCH = path.join(root, 'dist', 'bin', 'birch.js');

interface Runtime {
  name: 'node' | 'bun' | 'deno';
  bin: string;
  args: string[];
}

const RUNTIMES: Runtime[] = [
  { name: 'node', bin: process.execPath, args: [] },
  { name: 'bun', bin: path.join(root, 'node_modules', '.bin', 'bun'), args: [] },
  // -A: the engine reads and writes its files, starts worker threads, reads the environment.
  { name: 'deno', bin: path.join(root, 'node_modules', '.bin', 'deno'), args: ['run', '-A', '--quiet'] },
];

/** smoke.ts's keys of writer 0. */
const key0 = (i: number): string => `k00-${String(i).padStart(4, '0')}`;

function run(rt: Runtime, step: string[], onLine?: (line: string, kill: () => void) => void): Promise<{ lines: string[]; stderr: string; code: number | null; signal: string | null }> {
  return new Promise((resolve, reject) => {
    const p = spawn(rt.bin, [...rt.args, SMOKE, ...step], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    const lines: string[] = [];
    let buf = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        onLine?.(line, () => p.kill('SIGKILL'));
      }
    });
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('exit', (code, signal) => resolve({ lines, stderr, code, signal }));
  });
}

function resultOf(rt: Runtime, r: { lines: string[]; stderr: string; code: number | null }): Record<string, unknown> {
  const last = r.lines[r.lines.length - 1] ?? '';
  assert.ok(last.startsWith('OK '), `${rt.name}: ${last || '(no output)'}\n${r.stderr.slice(-2000)}`);
  assert.equal(r.code, 0, `${rt.name} exit code`);
  return JSON.parse(last.slice(3)) as Record<string, unknown>;
}

describe('runtimes: the package under Node, Bun and Deno', function () {
  this.timeout(120_000);
  for (const rt of RUNTIMES) {
    describe(rt.name, () => {
      let dir: string;
      beforeEach(() => (dir = tmpDir(`birch-${rt.name}`)));
      afterEach(() => rmDir(dir));

      it('is installed as a development dependency', () => {
        assert.ok(fs.existsSync(rt.bin), `${rt.bin} is missing: run npm install`);
      });

      it('open, 64 concurrent writers, snapshots, ranges, a named tree, check(), close and reopen', async () => {
        const r = resultOf(rt, await run(rt, ['basic', dir]));
        const impl = r.implementation as { runtime: { name: string }; threads: string; checksum: string; handoff: string };
        assert.equal(impl.runtime.name, rt.name, 'stats() names the runtime');
        assert.equal(impl.threads, 'worker-threads');
        // Every runtime here has Atomics.waitAsync: commits go through the shared-memory ring.
        assert.equal(impl.handoff, 'shared-memory');
        assert.equal(r.total, 64 * 50 - 1);
        assert.equal(r.snapCount, 64 * 50, 'the snapshot saw every key from before the batch');
        console.log(`      ${rt.name}: ${JSON.stringify(impl)}`);
      });

      it('runs birchdb/level: encodings, the empty key, a sublevel, seek, reopen', async () => {
        const r = resultOf(rt, await run(rt, ['level', dir]));
        assert.deepEqual(r, { keys: ['', '!s!x', key0(0), key0(1)], sought: [key0(30), key0(31), key0(32)], subValue: 'y' });
      });

      it('runs the birch CLI: check and dump', async () => {
        const db = await open(dir);
        await db.batch([{ type: 'put', key: 'a', value: '1' }, { type: 'put', key: 'b', value: '2', tree: 't' }]);
        await db.close();
        for (const [tool, expected] of [['check', /clean/], ['dump', /^birchdb-dump 1\n-\t61\t31\nt\t62\t32\n$/]] as const) {
          const r = spawnSync(rt.bin, [...rt.args, BIRCH, tool, dir], { cwd: root, encoding: 'utf8' });
          assert.equal(r.status, 0, `${rt.name} birch ${tool}: ${r.stderr}`);
          assert.match(r.stdout, expected, `${rt.name} birch ${tool}`);
        }
      });

      it('reopens after a SIGKILL of a writing process with every acknowledged batch whole', async () => {
        let acked = 0;
        let checkpoints = 0;
        const killed = await run(rt, ['write', dir], (line, kill) => {
          const m = /^ACK (\d+) (\d+)$/.exec(line);
          if (m !== null) {
            acked = Number(m[1]);
            checkpoints = Number(m[2]);
          }
          // By then about 2 MiB of operations were buffered (a batch: 21 puts of about 75 bytes plus
          // ENTRY_OVERHEAD_BYTES each), checkpointBytes (256 KiB) several times over: checkpoints
          // have finished, and one may be running. (Measured: 45 to 110 finished, one after nearly
          // every batch: the 4 MiB journal segment held exceeds 4 x checkpointBytes by itself.)
          if (acked === 400) kill();
        });
        assert.equal(killed.signal, 'SIGKILL', `${rt.name} writer: ${killed.lines.slice(-1).join('')} ${killed.stderr.slice(-2000)}`);
        assert.ok(acked >= 400, `${rt.name} writer acknowledged ${acked} batches`);
        console.log(`      ${rt.name}: killed after ${acked} batches and ${checkpoints} finished checkpoints`);
        assert.ok(checkpoints >= 1, `${rt.name} writer: no checkpoint finished in ${acked} batches`);
        const r = resultOf(rt, await run(rt, ['verify', dir, String(acked)]));
        assert.ok((r.last as number) >= acked);
      });
    });
  }

  describe('deno without the permissions birchdb needs', () => {
    const deno = RUNTIMES[2] as Runtime;
    let dir: string;
    beforeEach(() => (dir = tmpDir('birch-deno-perm')));
    afterEach(() => rmDir(dir));

    it('open() fails with UNSUPPORTED naming the runtime and the flag', async () => {
      const r = await run({ ...deno, args: ['run', '--no-prompt', '--quiet', '--allow-read', '--allow-write'] }, ['basic', dir]);
      const last = r.lines[r.lines.length - 1] ?? '';
      assert.match(last, /^FAIL BirchError UNSUPPORTED: deno denied .*--allow-sys/, `${last} ${r.stderr.slice(-1000)}`);
    });

    it('without --allow-run, a live holder is never judged gone: UNSUPPORTED, not a second handle', async () => {
      const holder = spawn(process.execPath, [path.join(here, '..', 'lock', 'lock-child.js'), dir, 'pidfile'], { stdio: ['pipe', 'pipe', 'inherit'] });
      try {
        const first = await new Promise<string>((resolve) => holder.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
        assert.equal(first, 'HELD pidfile');
        const r = await run({ ...deno, args: ['run', '--no-prompt', '--quiet', '--allow-read', '--allow-write', '--allow-env', '--allow-sys'] }, ['basic', dir]);
        const last = r.lines[r.lines.length - 1] ?? '';
        assert.match(last, /^FAIL BirchError UNSUPPORTED: deno denied checking whether process \d+, the lock's holder, is running/, `${last} ${r.stderr.slice(-1000)}`);
      } finally {
        holder.kill('SIGKILL');
      }
    });
  });
});
