// `npm run soak -- --minutes N`: the reliability suites again and again, with new seeds and larger
// sizes, for as long as it is given; then one table of what ran and what was found. The goal for
// the last four columns is zero. Each round runs a suite in a fresh process (mocha), so a crash or
// hang of one round cannot hide another's results.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const mocha = createRequire(import.meta.url).resolve('mocha/bin/mocha.js');
const minutesArg = process.argv.indexOf('--minutes');
const minutes = minutesArg >= 0 ? Number(process.argv[minutesArg + 1]) : 5;
if (!Number.isFinite(minutes) || minutes <= 0) {
  console.error('usage: npm run soak -- --minutes N');
  process.exit(2);
}

interface Suite {
  name: string;
  file: string;
  env: (seed: number) => Record<string, string>;
  /** Pulls "cases" and "acknowledged writes checked" out of the suite's own report lines. */
  count: (out: string) => { cases: number; acked: number };
}

const num = (out: string, re: RegExp): number => [...out.matchAll(re)].reduce((s, m) => s + Number(m[1]), 0);

const SUITES: Suite[] = [
  { name: 'power loss', file: 'crash/power-loss.test.js', env: (seed) => ({ BIRCH_SEED: String(seed), BIRCH_POWER_COMMITS: '200' }), count: (o) => ({ cases: num(o, /(\d+) crash images verified/g), acked: 0 }) },
  { name: 'I/O errors', file: 'crash/io-faults.test.js', env: () => ({ BIRCH_FAULT_COMMITS: '40' }), count: (o) => ({ cases: num(o, /(\d+) runs:/g), acked: 0 }) },
  { name: 'corruption', file: 'crash/corruption.test.js', env: () => ({}), count: (o) => ({ cases: num(o, /(\d+) flips over/g) + num(o, /(\d+) journal record flips/g), acked: 0 }) },
  { name: 'SIGKILL (core)', file: 'crash/sigkill.test.js', env: (seed) => ({ BIRCH_SEED: String(seed), BIRCH_KILL_CYCLES: '30' }), count: (o) => ({ cases: num(o, /(\d+) kills, \d+ acknowledged commits/g), acked: num(o, /kills, (\d+) acknowledged commits/g) }) },
  { name: 'SIGKILL (async)', file: 'crash/sigkill-async.test.js', env: (seed) => ({ BIRCH_SEED: String(seed), BIRCH_ASYNC_KILL_CYCLES: '30' }), count: (o) => ({ cases: num(o, /(\d+) kills \(/g), acked: num(o, /(\d+) acknowledged batches/g) }) },
  { name: 'model (core)', file: 'property/model.test.js', env: () => ({ BIRCH_MODEL_RUNS: '1000' }), count: (o) => ({ cases: /passing/.test(o) ? 1000 : 0, acked: 0 }) },
  { name: 'model (async)', file: 'property/model-async.test.js', env: () => ({ BIRCH_ASYNC_MODEL_RUNS: '100' }), count: (o) => ({ cases: /passing/.test(o) ? 100 : 0, acked: 0 }) },
];

interface Row {
  rounds: number;
  cases: number;
  acked: number;
  lost: number;
  halfApplied: number;
  undetected: number;
  wrong: number;
  other: number;
}

/** Sorts a failing round by what its assertion says went wrong. */
function classify(out: string, row: Row): void {
  if (/was acknowledged|acknowledged .* survived|only \d+ survived|but txn \d+ was acknowledged/.test(out)) row.lost++;
  else if (/half-applied|has \d+ of its keys|has \d+ keys \(opened/.test(out)) row.halfApplied++;
  else if (/WRONG|wrong value|wrong count/.test(out)) row.wrong++;
  else if (/check\(\) missed|untyped|names no page/.test(out)) row.undetected++;
  else row.other++;
}

const rows = new Map<string, Row>(SUITES.map((s) => [s.name, { rounds: 0, cases: 0, acked: 0, lost: 0, halfApplied: 0, undetected: 0, wrong: 0, other: 0 }]));
const failures: string[] = [];
const end = Date.now() + minutes * 60_000;
let seed = Date.now() % 1_000_000;
console.log(`soak: ${minutes} minute(s), suites in rotation, each round in a fresh process`);
for (let i = 0; Date.now() < end; i++) {
  const suite = SUITES[i % SUITES.length] as Suite;
  seed++;
  const r = spawnSync(process.execPath, [mocha, '--no-config', '--reporter', 'spec', '--timeout', '900000', path.join(here, suite.file)], {
    env: { ...process.env, ...suite.env(seed) },
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  });
  const out = `${r.stdout}${r.stderr}`;
  if (!/passing|failing/.test(out)) {
    // Not a test result at all (a missing file, a crash of mocha itself): stop, do not spin.
    console.error(`soak: ${suite.name} did not run:\n${out.slice(0, 2000)}`);
    process.exit(2);
  }
  const row = rows.get(suite.name) as Row;
  row.rounds++;
  const c = suite.count(out);
  row.cases += c.cases;
  row.acked += c.acked;
  if (r.status !== 0) {
    classify(out, row);
    failures.push(`${suite.name}, seed ${seed}:\n${out.split('\n').filter((l) => /Error|assert|seed/i.test(l)).slice(0, 6).join('\n')}`);
  }
  process.stdout.write(`  ${suite.name}: ${r.status === 0 ? 'clean' : 'FAILED'} (${c.cases} cases)\n`);
}

const header = ['suite', 'rounds', 'cases run', 'acked writes checked', 'writes lost', 'half-applied', 'undetected corruptions', 'wrong answers', 'other failures'];
const table = [header, ...[...rows].map(([name, r]) => [name, r.rounds, r.cases, r.acked, r.lost, r.halfApplied, r.undetected, r.wrong, r.other].map(String))];
const widths = header.map((_, c) => Math.max(...table.map((row) => (row[c] ?? '').length)));
console.log('');
for (const row of table) console.log(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0))).join('  '));
for (const f of failures) console.log(`\n${f}`);
process.exitCode = failures.length === 0 ? 0 : 1;
