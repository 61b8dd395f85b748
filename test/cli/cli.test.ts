// The birch command line, run as a user runs it: a separate process, checked by exit status and output.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open } from '../../api/index.js';
import { PAGE_SIZE } from '../../pager/page-format.js';
import { rmDir, tmpDir } from '../helpers/index.js';
import { DEFAULTS, WORKLOADS } from '../../bin/bench/workloads.js';
import { htmlReport, ticks } from '../../bin/bench/report.js';
import type { BenchResult } from '../../bin/bench/measure.js';

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'birch.js');

function birch(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', input, maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function smallDb(dir: string): Promise<void> {
  const db = await open(dir);
  await db.batch([
    ...Array.from({ length: 300 }, (_, i) => ({ type: 'put' as const, key: `key${String(i).padStart(4, '0')}`, value: `value ${i}\twith a tab` })),
    { type: 'put', key: Buffer.from([0, 255, 10, 13, 9]), value: Buffer.from([1, 2, 3, 0]), tree: 'odd\tname%' },
    { type: 'put', key: 'empty', value: '', tree: 'albums' },
    { type: 'put', key: 'big', value: Buffer.alloc(20000, 7), tree: 'albums' },
  ]);
  await db.del('key0007');
  await db.close();
}

describe('cli: birch', () => {
  let dir: string;
  beforeEach(async () => {
    dir = tmpDir('birch-cli');
    await smallDb(dir);
  });
  afterEach(() => rmDir(dir));

  it('rejects bad arguments with a message naming the problem, the usage, status 1 and no stack trace', () => {
    const cases: [string[], string, string][] = [
      [['bench', 'versions', '--stores', 'a:1:2'], `error: option '--stores <spec>' argument 'a:1:2' is invalid. bad store "a:1:2": expected name:keyMean:keySpread:valueMean:valueSpread:changes:deleteFraction (deleteFraction <= 1, keyMean >= 1)`, 'birch bench'],
      [['bench', 'nosuch'], `birch: unknown workload "nosuch"; choose from ${Object.keys(WORKLOADS).join(', ')}`, 'birch'],
      [['bench', '--txns', '0'], "error: option '--txns <n>' argument '0' is invalid. --txns must be a positive integer", 'birch bench'],
      [['bench', '--compare', 'mysql'], `error: option '--compare <engines>' argument 'mysql' is invalid. unknown engine "mysql"; choose from lmdb, level, sqlite, floor, birchlevel`, 'birch bench'],
      [['bench', '--batch', 'x'], "error: option '--batch <n>' argument 'x' is invalid. --batch must be a positive integer", 'birch bench'],
      [['frobnicate'], "error: unknown command 'frobnicate'", 'birch'],
      [['check'], "error: missing required argument 'dir'", 'birch check'],
    ];
    for (const [args, message, usage] of cases) {
      const what = `birch ${args.join(' ')}`;
      const r = birch(args);
      assert.equal(r.status, 1, what);
      assert.equal(r.stdout, '', what);
      const lines = r.stderr.split('\n');
      assert.equal(lines[0], message, what);
      assert.ok(lines.some((l) => l.startsWith(`Usage: ${usage} [options]`)), `${what}: the usage of ${usage} follows`);
      assert.doesNotMatch(r.stderr, /^\s+at |Error:|node:internal/m, `${what}: a stack trace`);
    }
  });

  it('the HTML report puts its axis ticks on round numbers', () => {
    assert.deepEqual(ticks(18.8), [0, 5, 10, 15, 20]);
    assert.deepEqual(ticks(25), [0, 10, 20, 30]);
    assert.deepEqual(ticks(0.37), [0, 0.1, 0.2, 0.3, 0.4]);
    assert.deepEqual(ticks(1_234_567), [0, 500_000, 1_000_000, 1_500_000]);
    assert.deepEqual(ticks(0), [0, 1]);
    for (const v of [3, 7.7, 99, 123_456, 0.05]) {
      const t = ticks(v);
      assert.ok((t[t.length - 1] as number) >= v && t.length >= 2 && t.length <= 11, `${v}: ${t.join(', ')}`);
      const step = (t[1] as number) - (t[0] as number);
      assert.match(String(step / 10 ** Math.floor(Math.log10(step))), /^(1|2|5)$/, `${v}: a step of 1, 2 or 5 times a power of ten`);
    }
  });

  it('the HTML report marks birchdb\'s checkpoints, plots latency over time and renders its tables as HTML', () => {
    const result = (engine: string, checkpoints: number[]): BenchResult => ({
      workload: 'fillrandom', engine, ops: 4000, seconds: 2, opsPerSec: 2000, p50Ms: 1, p99Ms: 5, userBytes: 4000 * 116,
      diskBytesWritten: null, writeAmplification: null, fileBytes: 1 << 20, peakRssBytes: 100 << 20,
      extra: engine === 'birchdb' ? { checkpoints: 2 } : {},
      timeline: checkpoints.map((c, i) => [0.25 * (i + 1), 500 * (i + 1), 90 << 20, 1 << 20, c, 1 + i / 10, 5 + i] as BenchResult['timeline'][number]),
    });
    const html = htmlReport([result('birchdb', [0, 0, 1, 1, 1, 2, 2, 2]), result('lmdb', [-1, -1, -1, -1, -1, -1, -1, -1])], [{ name: 'fillrandom', options: { ...DEFAULTS, txns: 40 } }], 'machine: test');
    // Two checkpoints (at 0.75 s and 1.5 s), marked on the throughput and the latency charts.
    assert.equal((html.match(/<line [^>]*class="m"><title>birchdb checkpoint at (0\.75|1\.50) s/g) ?? []).length, 4);
    assert.match(html, /aria-label="latency per interval: p50 solid, p99 dashed"/);
    assert.equal((html.match(/stroke-dasharray="5 3"/g) ?? []).length, 2, 'a dashed p99 line per engine');
    assert.match(html, /<table><thead><tr><th><\/th><th>birchdb<\/th><th>lmdb<\/th><\/tr><\/thead>/);
    assert.match(html, /<tr><th scope="row">ops\/s<\/th><td>2,000<\/td><td>2,000<\/td><\/tr>/);
    assert.doesNotMatch(html, /<pre>/, 'no table as preformatted text');
  });

  it('--version prints the package version', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(BIN), '..', '..', 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = birch([flag]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), pkg.version);
    }
  });

  it('check: exit 0 and "clean" for a sound database', () => {
    const r = birch(['check', dir]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /clean/);
    assert.match(r.stdout, /, 3 trees\n/, 'the default tree and two named ones: the catalog is not counted');
  });

  it('check: exit 1 with a readable report for a corrupt page', () => {
    const file = path.join(dir, 'data.birch');
    const data = fs.readFileSync(file);
    // Damage every leaf page (kind byte at offset 8 is 3) in the middle: the file still opens,
    // and the verifier must find the reachable ones.
    let damaged = 0;
    for (let p = 3; (p + 1) * PAGE_SIZE <= data.length; p++) {
      if (data[p * PAGE_SIZE + 8] === 3) {
        data[p * PAGE_SIZE + 2000] = (data[p * PAGE_SIZE + 2000] as number) ^ 0xff;
        damaged++;
      }
    }
    assert.ok(damaged > 0);
    fs.writeFileSync(file, data);
    const r = birch(['check', dir]);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /error: .*checksum mismatch/);
    assert.match(r.stdout, /problem\(s\) found/);
    // The other tools stop with one clear line naming the page, not a stack trace.
    for (const tool of ['stat', 'dump']) {
      const t = birch([tool, dir]);
      assert.equal(t.status, 2, tool);
      assert.match(t.stderr, /^birch: CORRUPTION: .*page \d+/m, tool);
      assert.doesNotMatch(t.stderr, /\n\s+at /, tool);
    }
  });

  it('every tool: a clear message and status 2 for a missing directory, a non-database and a locked database', async () => {
    const empty = tmpDir('birch-empty');
    try {
      for (const tool of ['check', 'stat', 'dump', 'journal']) {
        let r = birch([tool, path.join(dir, 'missing')]);
        assert.equal(r.status, 2, tool);
        assert.match(r.stderr, /does not exist/);
        r = birch([tool, empty]);
        assert.equal(r.status, 2, tool);
        assert.match(r.stderr, /not a birchdb database/);
      }
      const db = await open(dir);
      try {
        for (const tool of ['check', 'stat', 'dump', 'journal']) {
          const r = birch([tool, dir]);
          assert.equal(r.status, 2, tool);
          assert.match(r.stderr, /DB_LOCKED/, tool);
        }
      } finally {
        await db.close();
      }
    } finally {
      rmDir(empty);
    }
  });

  it('stat prints the statistics as JSON', () => {
    const r = birch(['stat', dir]);
    assert.equal(r.status, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { seq: number; checkpoints: { count: number }; trees: { name: string | null; entries: number }[] };
    assert.equal(s.seq, 2);
    assert.deepEqual(s.trees.map((t) => [t.name, t.entries]), [[null, 299], ['albums', 2], ['odd\tname%', 1]]);
  });

  it('dump and load round-trip every key and value of every tree', async () => {
    const dump = birch(['dump', dir]);
    assert.equal(dump.status, 0, dump.stderr);
    assert.equal(dump.stdout.split('\n')[0], 'birchdb-dump 1');
    assert.equal(dump.stdout.trim().split('\n').length, 1 + 299 + 2 + 1);
    const copy = path.join(tmpDir('birch-copy'), 'db');
    try {
      const load = birch(['load', copy], dump.stdout);
      assert.equal(load.status, 0, load.stderr);
      const again = birch(['dump', copy]);
      assert.equal(again.stdout, dump.stdout);
      const db = await open(copy);
      assert.deepEqual(db.get(Buffer.from([0, 255, 10, 13, 9]), { tree: 'odd\tname%' }), Buffer.from([1, 2, 3, 0]));
      assert.ok(db.get('big', { tree: 'albums' })?.equals(Buffer.alloc(20000, 7)));
      await db.close();
      const one = birch(['dump', dir, '--tree', 'albums']);
      assert.equal(one.stdout.trim().split('\n').length, 3);
    } finally {
      rmDir(path.dirname(copy));
    }
  });

  it('backup writes a checked copy that dumps the same, refuses an existing target; compact gives space back', () => {
    const parent = tmpDir('birch-cli-backup');
    try {
      const target = path.join(parent, 'copy');
      const r = birch(['backup', dir, target]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^backup of batch \d+: 302 entries in 3 trees, .* MiB, checked, in .* s: /);
      assert.equal(birch(['dump', target]).stdout, birch(['dump', dir]).stdout);
      assert.equal(birch(['check', target]).status, 0);
      const pages = path.join(parent, 'pages');
      const p = birch(['backup', dir, pages, '--no-compact']);
      assert.equal(p.status, 0, p.stderr);
      assert.equal(birch(['dump', pages]).stdout, birch(['dump', dir]).stdout);
      const again = birch(['backup', dir, target]);
      assert.equal(again.status, 2);
      assert.match(again.stderr, /already exists/);
      const c = birch(['compact', dir]);
      assert.equal(c.status, 0, c.stderr);
      assert.match(c.stdout, /MiB -> .* MiB in \d+ ms/);
      assert.equal(birch(['dump', target]).stdout, birch(['dump', dir]).stdout, 'compacting changed no entry');
    } finally {
      rmDir(parent);
    }
  });

  it('export writes chunks that import restores, the same for any thread count; import refuses a damaged chunk and removes the database it created', () => {
    const parent = tmpDir('birch-cli-export');
    try {
      const ex = path.join(parent, 'ex');
      const r = birch(['export', dir, ex, '--chunk-bytes', '4096', '--threads', '2']);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^export of batch \d+: 302 entries in \d+ chunks, .* MiB, 2 threads, in .* s: /);
      const ex1 = path.join(parent, 'ex1');
      assert.equal(birch(['export', dir, ex1, '--chunk-bytes', '4096', '--threads', '1']).status, 0);
      for (const f of fs.readdirSync(ex)) assert.ok(fs.readFileSync(path.join(ex, f)).equals(fs.readFileSync(path.join(ex1, f))), f);
      const into = path.join(parent, 'into');
      const i = birch(['import', ex, into]);
      assert.equal(i.status, 0, i.stderr);
      assert.match(i.stdout, /^imported 302 entries from \d+ chunks/);
      assert.equal(birch(['dump', into]).stdout, birch(['dump', dir]).stdout);
      const chunk = path.join(ex, 'chunk-000000.bin');
      const bytes = fs.readFileSync(chunk);
      bytes[40] = (bytes[40] as number) ^ 4;
      fs.writeFileSync(chunk, bytes);
      const fresh = path.join(parent, 'fresh');
      const bad = birch(['import', ex, fresh]);
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /BAD_EXPORT: .*chunk-000000\.bin.*was removed/);
      assert.ok(!fs.existsSync(fresh));
    } finally {
      rmDir(parent);
    }
  });

  it('load refuses malformed input with the line number: it removes a database it created and wrote nothing to, and says what it kept otherwise', async () => {
    const parent = tmpDir('birch-bad');
    try {
      const fresh = path.join(parent, 'fresh');
      const r = birch(['load', fresh], 'birchdb-dump 1\n-\t6161\t6262\n-\tnot-hex\t00\n');
      assert.equal(r.status, 2);
      assert.match(r.stderr, /line 3/);
      assert.match(r.stderr, /nothing was written, and the database the load had created in .* was removed/);
      assert.ok(!fs.existsSync(fresh), 'no empty database left behind');
      assert.equal(birch(['load', fresh], 'something else\n').status, 2);
      assert.ok(!fs.existsSync(fresh));
      const empty = path.join(parent, 'empty');
      fs.mkdirSync(empty);
      assert.equal(birch(['load', empty], 'bad\n').status, 2);
      assert.deepEqual(fs.readdirSync(empty), [], 'an empty directory of the user stays, empty');

      const lines = Array.from({ length: 1500 }, (_, i) => `-\t${Buffer.from(`k${String(i).padStart(5, '0')}`).toString('hex')}\t00`);
      const partial = path.join(parent, 'partial');
      const p = birch(['load', partial], `birchdb-dump 1\n${lines.join('\n')}\n-\tzz\t00\n`);
      assert.equal(p.status, 2);
      assert.match(p.stderr, /line 1502.*the 1000 entries before it were committed to .* and kept/);
      const db = await open(partial);
      assert.equal([...db.range()].length, 1000);
      await db.close();

      const existing = birch(['load', dir], 'birchdb-dump 1\n-\tzz\t00\n');
      assert.equal(existing.status, 2);
      assert.match(existing.stderr, /nothing was written, .* is as it was/);
      assert.equal(birch(['check', dir]).status, 0, 'an existing database is never removed');
    } finally {
      rmDir(parent);
    }
  });

  it('journal lists the records of a crashed database and says which are checkpointed and which to replay', async () => {
    // A crash image: the files as they are while the database is open, with batches after its
    // last checkpoint only in the journal.
    const crashed = tmpDir('birch-crashed');
    try {
      const db = await open(dir, { checkpointBytes: 2 ** 40 });
      await db.put('a', '1');
      await db.batch([{ type: 'put', key: 'b', value: '2' }, { type: 'del', key: 'a' }]);
      fs.cpSync(dir, crashed, { recursive: true });
      await db.close();
      fs.rmSync(path.join(crashed, 'LOCK'), { force: true });
      const r = birch(['journal', crashed]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /holds batches up to 2 /);
      assert.match(r.stdout, /batches 3\.\.3 .* 1 ops .* to replay/);
      assert.match(r.stdout, /batches 4\.\.4 .* 2 ops .* to replay/);
      assert.doesNotMatch(r.stdout, /not intact/, 'the spare segment is not reported as damaged');
      assert.equal(birch(['check', crashed]).status, 0, 'the crashed copy opens and checks clean');
    } finally {
      rmDir(crashed);
    }
  });

  it('bench --compare floor adds the bare write-plus-fdatasync bound beside birchdb on a write workload, and fillbatch draws its sizes', function () {
    this.timeout(120_000);
    const r = birch(['bench', 'puts', 'fillbatch', '--txns', '2', '--batch', '10', '--compare', 'floor']);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n');
    const header = lines[lines.findIndex((l) => l.startsWith('puts:')) + 1] ?? '';
    assert.deepEqual(header.trim().split(/\s+/), ['birchdb', 'floor']);
    assert.match(r.stdout, /fillbatch: 2 txns x 10 ops, 8-64 B keys, 20-200 B values/);
    const bad = birch(['bench', 'puts', '--compare', 'floors']);
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /unknown engine "floors"; choose from lmdb, level, sqlite, floor/);
  });

  it('bench --compare birchlevel,level runs birchdb through birchdb/level beside classic-level, on writes, reads and ranges', function () {
    this.timeout(120_000);
    const r = birch(['bench', 'fillrandom', 'readrandom', 'scan100', '--txns', '3', '--batch', '10', '--compare', 'birchlevel,level']);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n');
    for (const w of ['fillrandom:', 'readrandom:', 'scan100:']) {
      const header = lines[lines.findIndex((l) => l.startsWith(w)) + 1] ?? '';
      assert.deepEqual(header.trim().split(/\s+/), ['birchdb', 'birchlevel', 'level'], w);
    }
  });

  it('bench runs a tiny workload on birchdb and every installed peer, and prints each one\'s ratio to birchdb', function () {
    this.timeout(120_000);
    const r = birch(['bench', 'fillseq', 'readrandom', '--txns', '3', '--batch', '10']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /fillseq: 3 txns x 10 ops/);
    const lines = r.stdout.split('\n');
    const header = lines[lines.findIndex((l) => l.startsWith('fillseq:')) + 1] ?? '';
    const engines = header.trim().split(/\s+/);
    const skipped = [...r.stdout.matchAll(/^skipped: (\w+) is not installed/gm)].map((m) => m[1]);
    assert.deepEqual(engines, ['birchdb', ...['lmdb', 'level', 'sqlite'].filter((e) => !skipped.includes(e))], 'a column for birchdb and each peer that is installed');
    const ratios = (lines.find((l) => l.startsWith('  vs birchdb')) ?? '').trim().split(/\s+/).slice(2);
    assert.equal(ratios.length, engines.length);
    for (const x of ratios) assert.match(x, /^\d+\.\d\dx$/, 'each engine has its ratio to birchdb');
    assert.match(r.stdout, /^checkpoints\s+\d+/m, 'birchdb reports its checkpoints');
    // 30 writes never reach a checkpoint: the fill says so; the read workload has no such line.
    const warnings = r.stdout.split('\n').filter((l) => l.startsWith('warning: birchdb ran no checkpoint'));
    assert.equal(warnings.length, 1, 'one warning, for the write workload');
    assert.ok(r.stdout.indexOf(warnings[0] as string) < r.stdout.indexOf('readrandom:'), 'under the fillseq table');
  });

  it('bench --help shows each option\'s default; read workloads take --keys', function () {
    this.timeout(120_000);
    const help = birch(['bench', '--help']).stdout.replace(/\s+/g, ' ');
    assert.match(help, /--txns <n> transactions of the write workloads .*\(default: 10,000; fillbatch 2,000; concurrent 8,000/);
    assert.match(help, /--keys <n> keys of the read workloads .*\(default: 1,000,000; readseq 100,000\)/);
    assert.match(help, /--value-size <bytes> value size \(default: 100; fillseq 128; fillbatch 20-200, drawn per value\)/);
    assert.match(help, /--callers <n> .*\(default: 64; readwhilewriting 16; puts 1\)/);
    const r = birch(['bench', 'readrandom', '--keys', '500', '--batch', '10', '--compare', '']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /readrandom: 500 random reads of 500 keys/);
  });

  it('Ctrl-C during a bench stops it and removes its temporary databases', async function () {
    this.timeout(120_000);
    const tmp = tmpDir('birch-sigint');
    try {
      const p = spawn(process.execPath, [BIN, 'bench', 'fillrandom', '--txns', '1000000', '--compare', ''], { env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      // Wait until the engine has written a database of some size under the temporary directory.
      const size = (dir: string): number => fs.readdirSync(dir, { withFileTypes: true, recursive: true }).reduce((n, e) => (e.isFile() ? n + fs.statSync(path.join(e.parentPath ?? e.path, e.name)).size : n), 0);
      for (let t = 0; t < 600 && size(tmp) < 4 << 20; t++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(size(tmp) >= 4 << 20, 'the bench had written a database');
      p.kill('SIGINT');
      const code = await new Promise<number | null>((r) => p.once('exit', (c) => r(c)));
      assert.equal(code, 130);
      assert.match(err, /bench interrupted \(SIGINT\); its temporary databases were removed/);
      assert.deepEqual(fs.readdirSync(tmp), [], 'nothing left behind');
    } finally {
      rmDir(tmp);
    }
  });

  it('bench runs ranges and reads while writing on every engine, with reads/s and writes/s side by side', function () {
    this.timeout(120_000);
    // 30 keys: 6 ranges of 10 (each engine's count is checked against the keys it must find) and 24 puts.
    const r = birch(['bench', 'scan100', 'readwhilewriting', '--txns', '3', '--batch', '10']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /scan100: 6 ranges of 10 entries from random keys of 30, files in the OS page cache/);
    assert.match(r.stdout, /readwhilewriting: 16 callers, 24 single-op overwrites of 30 keys while one reader reads random keys/);
    const lines = r.stdout.split('\n');
    const table = lines.slice(lines.findIndex((l) => l.startsWith('readwhilewriting:')));
    const engines = (table[1] ?? '').trim().split(/\s+/);
    const row = (label: string): string[] => (table.find((l) => l.startsWith(label)) ?? '').slice(label.length).trim().split(/\s{2,}/);
    for (const label of ['ops/s', 'writes/s']) {
      const cells = row(label);
      assert.equal(cells.length, engines.length, `a ${label} cell per engine`);
      for (const c of cells) assert.ok(Number(c.replace(/,/g, '')) > 0, `${label}: ${c}`);
    }
    const ratios = table.filter((l) => l.startsWith('  vs birchdb'));
    assert.equal(ratios.length, 2, 'a ratio row for the reads and one for the writes');
    assert.match(row('page cache hit ratio')[0] ?? '', /^\d+\.\d%$/, "birchdb's hit ratio over the timed phase");
    assert.ok(row('read p99 during checkpoints').length === engines.length);
  });
});
