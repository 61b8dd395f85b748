// The published package as a user gets it: `npm pack`, then installed into empty apps with
// `npm install --ignore-scripts` (no native build, as a locked-down CI would), and used from an
// ES module, a CommonJS module and TypeScript compiled with --strict, both module formats.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { rmDir, tmpDir } from '../helpers/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const TSC = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const PEERS = ['lmdb', 'classic-level', 'better-sqlite3'];

interface PackJson {
  filename: string;
  files: { path: string }[];
}

function npm(args: string[], cwd: string): string {
  return execFileSync(NPM, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false' } });
}

function node(args: string[], cwd: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, args, { cwd, encoding: 'utf8', env: { ...process.env, BIRCH_LOCK: '' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// What every program below does, and prints: write, read, close, reopen, read again.
const BODY = `
  const dir = process.argv[2];
  let db = await open(dir);
  await Promise.all([db.put('a', '1'), db.put('b', '2'), db.batch([{ type: 'put', key: 'c', value: '3' }])]);
  const before = db.get('b')?.toString();
  await db.close();
  db = await open(dir);
  const after = [...db.range()].map(([k, v]) => k.toString() + '=' + v.toString()).join(',');
  const impl = db.stats({ trees: false }).implementation;
  await db.close();
  let locked = '';
  try { await open(dir, { lock: 'bogus' }); } catch (e) { locked = e instanceof BirchError ? e.code : 'not a BirchError'; }
  console.log(JSON.stringify({ before, after, lock: impl.lock, checksum: impl.checksum, badOption: locked }));
`;

const APPS: Record<string, string> = {
  'esm.mjs': `import { open, BirchError } from 'birchdb';\n${BODY}`,
  'cjs.cjs': `const { open, BirchError } = require('birchdb');\n(async () => {${BODY}})().catch((e) => { console.error(e); process.exit(1); });`,
  // TypeScript, both formats, compiled with --strict: the types are complete enough for real use.
  'typed.mts': `import { open, BirchError, type BirchStats, type ErrorCode, type LockMode } from 'birchdb';
const codeOf = (e: unknown): ErrorCode | 'other' => (e instanceof BirchError ? e.code : 'other');
// @ts-expect-error: error codes are a closed union
const notACode: ErrorCode = 'NO_SUCH_CODE';
const mode: LockMode = 'pidfile';
const stats = (s: BirchStats): string => s.implementation.lock + s.checkpoints.count.toFixed(0) + (s.latency.p99Ms ?? 0).toFixed(1);
void notACode; void mode; void stats; void codeOf;
${BODY.replace('const dir = process.argv[2];', 'const dir = process.argv[2] as string;').replace("{ lock: 'bogus' }", "{ lock: 'bogus' as LockMode }")}`,
  'typed.cts': `import { open, BirchError, type ErrorCode } from 'birchdb';
const codeOf = (e: unknown): ErrorCode | 'other' => (e instanceof BirchError ? e.code : 'other');
void codeOf;
(async () => {${BODY.replace('const dir = process.argv[2];', 'const dir = process.argv[2] as string;').replace("{ lock: 'bogus' }", "{ lock: 'bogus' as 'auto' }")}})().catch((e: unknown) => { console.error(e); process.exit(1); });`,
};

describe('package: what npm pack ships, installed into fresh apps', function () {
  this.timeout(300_000);
  let work: string;
  let tarball: string;
  let files: string[];

  before(() => {
    work = tmpDir('birch-pack');
    const packed = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', work], root)) as PackJson[];
    const p = packed[0] as PackJson;
    tarball = path.join(work, p.filename);
    files = p.files.map((f) => f.path).sort();
  });
  after(() => rmDir(work));

  it('contains only the compiled library, the CLI, types, README, FORMAT.md and LICENSE', () => {
    const allowed = /^(package\.json|README\.md|FORMAT\.md|LICENSE|dist\/(platform|pager|journal|btree|db|api|level|bin)\/.+\.(js|d\.ts)|dist\/cjs\/package\.json|dist\/cjs\/(api|level)\/index\.cjs|dist\/cjs\/(platform|pager|journal|btree|db|api|level)\/.+\.d\.ts)$/;
    const stray = files.filter((f) => !allowed.test(f));
    assert.deepEqual(stray, [], 'files that users do not need');
    for (const must of ['LICENSE', 'README.md', 'FORMAT.md', 'dist/api/index.js', 'dist/api/index.d.ts', 'dist/api/writer-worker.js', 'dist/api/checkpoint-worker.js', 'dist/cjs/api/index.cjs', 'dist/cjs/api/index.d.ts', 'dist/cjs/package.json', 'dist/bin/birch.js', 'dist/level/index.js', 'dist/level/index.d.ts', 'dist/cjs/level/index.cjs', 'dist/cjs/level/index.d.ts']) {
      assert.ok(files.includes(must), `${must} is missing from the package`);
    }
    assert.ok(!files.some((f) => f.startsWith('dist/test/') || f.startsWith('dist/perf/') || f.endsWith('.map')), 'no tests, benchmarks or source maps');
  });

  it("lists no rival engine among the package's dependencies, and fs-ext only as optional", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
    for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies']) {
      for (const peer of PEERS) assert.ok(!(peer in (pkg[field] ?? {})), `${peer} in ${field}`);
    }
    assert.ok(!('fs-ext' in (pkg.dependencies ?? {})), 'fs-ext is not required');
    assert.ok('fs-ext' in (pkg.optionalDependencies ?? {}), 'fs-ext stays the first choice where it builds');
  });

  it('installs into an empty app with --ignore-scripts and runs from ESM, CommonJS and strict TypeScript of both formats', () => {
    const app = path.join(work, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'fresh-app', version: '1.0.0', private: true }));
    npm(['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', tarball], app);
    for (const peer of PEERS) assert.ok(!fs.existsSync(path.join(app, 'node_modules', peer)), `${peer} was installed with birchdb`);
    assert.ok(!fs.existsSync(path.join(app, 'node_modules', 'abstract-level')), 'abstract-level (for birchdb/level only) was installed with birchdb');
    for (const [name, text] of Object.entries(APPS)) fs.writeFileSync(path.join(app, name), text);
    const tsc = spawnSync(process.execPath, [TSC, '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--typeRoots', path.join(root, 'node_modules', '@types'), 'typed.mts', 'typed.cts'], { cwd: app, encoding: 'utf8' });
    assert.equal(tsc.status, 0, `tsc --strict: ${tsc.stdout}${tsc.stderr}`);
    for (const program of ['esm.mjs', 'cjs.cjs', 'typed.mjs', 'typed.cjs']) {
      const dir = path.join(work, `db-${program}`);
      const r = node([program, dir], app);
      assert.equal(r.status, 0, `${program}: ${r.stderr}`);
      const out = JSON.parse(r.stdout.trim().split('\n').pop() as string) as Record<string, string>;
      // Installed without scripts, fs-ext was never built: the lock falls back to the owner record.
      assert.deepEqual(out, { before: '2', after: 'a=1,b=2,c=3', lock: 'pidfile', checksum: 'xxhash-wasm', badOption: 'BAD_OPTION' }, program);
    }
    // birchdb/level once the app installs abstract-level: ESM, CommonJS, and strict TypeScript.
    npm(['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', 'abstract-level@^3.1.0'], app);
    const LEVEL_BODY = `
  const db = new BirchLevel(process.argv[2], { valueEncoding: 'json' });
  await db.batch([{ type: 'put', key: '', value: { n: 0 } }, { type: 'put', key: 'a', value: { n: 1 } }]);
  const keys = await db.keys({ gte: '' }).all();
  await db.close();
  console.log(JSON.stringify({ keys }));
`;
    fs.writeFileSync(path.join(app, 'level.mjs'), `import { BirchLevel } from 'birchdb/level';\n${LEVEL_BODY}`);
    fs.writeFileSync(path.join(app, 'level.cjs'), `const { BirchLevel } = require('birchdb/level');\n(async () => {${LEVEL_BODY}})().catch((e) => { console.error(e); process.exit(1); });`);
    fs.writeFileSync(path.join(app, 'level-typed.mts'), `import { BirchLevel } from 'birchdb/level';\nconst db: BirchLevel<string, { n: number }> = new BirchLevel('x', { valueEncoding: 'json', birch: { cacheSize: 2 ** 24 } });\nexport const get = (k: string): Promise<{ n: number } | undefined> => db.get(k);\n`);
    const tscLevel = spawnSync(process.execPath, [TSC, '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--typeRoots', path.join(root, 'node_modules', '@types'), '--skipLibCheck', 'level-typed.mts'], { cwd: app, encoding: 'utf8' });
    assert.equal(tscLevel.status, 0, `tsc --strict (birchdb/level): ${tscLevel.stdout}${tscLevel.stderr}`);
    for (const program of ['level.mjs', 'level.cjs']) {
      const r = node([program, path.join(work, `db-${program}`)], app);
      assert.equal(r.status, 0, `${program}: ${r.stderr}`);
      assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop() as string), { keys: ['', 'a'] }, program);
    }
    // The CLI from the installed package, in an app without the peers: birchdb alone, and the one command that adds them.
    const benchDir = path.join(work, 'bench-dbs');
    const bench = node([path.join(app, 'node_modules', 'birchdb', 'dist', 'bin', 'birch.js'), 'bench', 'fillseq', '--txns', '20', '--batch', '10', '--dir', benchDir], app);
    assert.equal(bench.status, 0, bench.stderr);
    assert.match(bench.stdout, /install them: npm install --save-dev lmdb classic-level better-sqlite3/);
    assert.match(bench.stdout, /fillseq: 20 txns x 10 ops/);
    assert.deepEqual(fs.readdirSync(benchDir), ['fillseq-birchdb'], '--dir holds no folder for the peers that were skipped');
  });
});
