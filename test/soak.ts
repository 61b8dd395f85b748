// `npm run soak -- --minutes N`: the reliability suites again and again, with new seeds and larger
// sizes, for as long as it is given; then one table of what ran and what was found. The goal for
// the last five columns is zero. Each round runs a suite in a fresh process (mocha), so a crash or
// hang of one round cannot hide another's results.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ReliabilityRow } from './helpers/reliability.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const mocha = require.resolve('mocha/bin/mocha.js');
// The reporter prints the table for `npm test` and writes the rows the soak adds up; it also
// formats the soak's table, so both read the same.
const reporter = path.join(here, '..', '..', 'test', 'summary-reporter.cjs');
const { formatTable } = require(reporter) as { formatTable: (rows: Row[], extra: [string, (row: Row) => number][]) => string[] };
const minutesArg = process.argv.indexOf('--minutes');
const minutes = minutesArg >= 0 ? Number(process.argv[minutesArg + 1]) : 5;
if (!Number.isFinite(minutes) || minutes <= 0) {
  console.error('usage: npm run soak -- --minutes N');
  process.exit(2);
}

interface Suite {
  /** The table row(s) it fills come from the suite itself (test/helpers/reliability.ts). */
  file: string;
  env: (seed: number) => Record<string, string>;
}

const SUITES: Suite[] = [
  { file: 'crash/power-loss.test.js', env: (seed) => ({ BIRCH_SEED: String(seed), BIRCH_POWER_COMMITS: '800' }) },
  { file: 'crash/io-faults.test.js', env: () => ({ BIRCH_FAULT_COMMITS: '120' }) },
  { file: 'crash/io-faults-async.test.js', env: () => ({ BIRCH_ASYNC_FAULT_CALLERS: '16', BIRCH_ASYNC_FAULT_BATCHES: '16' }) },
  { file: 'crash/corruption.test.js', env: () => ({ BIRCH_CORRUPT_STRIDE: '17', BIRCH_JOURNAL_CORRUPT_STRIDE: '2' }) },
  { file: 'crash/sigkill.test.js', env: (seed) => ({ BIRCH_SEED: String(seed), BIRCH_KILL_CYCLES: '30' }) },
  { file: 'crash/sigkill-async.test.js', env: (seed) => ({ BIRCH_SEED: String(seed), BIRCH_ASYNC_KILL_CYCLES: '30' }) },
  { file: 'property/model.test.js', env: () => ({ BIRCH_MODEL_RUNS: '1000' }) },
  { file: 'property/model-async.test.js', env: () => ({ BIRCH_ASYNC_MODEL_RUNS: '100' }) },
  // The writer kept saturated by 10,000 callers for minutes, memory sampled throughout.
  { file: 'async/load.test.js', env: () => ({ BIRCH_LOAD_SECONDS: '180' }) },
];

/** A suite's table row, added up over its rounds. */
type Row = Omit<ReliabilityRow, 'test' | 'unrecognised' | 'failures'> & { rounds: number };

const totals = new Map<string, Row>();
const failures: string[] = [];
const end = Date.now() + minutes * 60_000;
const rowsFile = path.join(os.tmpdir(), `birch-soak-rows-${process.pid}.json`);
let seed = Date.now() % 1_000_000;
console.log(`soak: ${minutes} minute(s), suites in rotation, each round in a fresh process`);
for (let i = 0; Date.now() < end; i++) {
  const suite = SUITES[i % SUITES.length] as Suite;
  seed++;
  fs.rmSync(rowsFile, { force: true });
  const r = spawnSync(process.execPath, [mocha, '--no-config', '--reporter', reporter, '--timeout', '900000', path.join(here, suite.file)], {
    env: { ...process.env, ...suite.env(seed), BIRCH_SEED: String(seed), BIRCH_RELIABILITY_JSON: rowsFile },
    encoding: 'utf8',
    maxBuffer: 256 << 20,
  });
  const out = `${r.stdout}${r.stderr}`;
  const rows: Row[] = fs.existsSync(rowsFile) ? (JSON.parse(fs.readFileSync(rowsFile, 'utf8')) as Row[]) : [];
  if (rows.length === 0) {
    // Not a test result at all (a missing file, a crash of mocha itself): stop, do not spin.
    console.error(`soak: ${suite.file} reported no rows:\n${out.slice(0, 2000)}`);
    process.exit(2);
  }
  let cases = 0;
  for (const row of rows) {
    const t = totals.get(row.suite) ?? { suite: row.suite, rounds: 0, cases: 0, acked: 0, lost: 0, halfApplied: 0, undetected: 0, wrong: 0, other: 0 };
    t.rounds++;
    for (const k of ['cases', 'acked', 'lost', 'halfApplied', 'undetected', 'wrong', 'other'] as const) t[k] += row[k];
    totals.set(row.suite, t);
    cases += row.cases;
  }
  if (r.status !== 0) failures.push(`${suite.file}, seed ${seed}:\n${out.split('\n').filter((l) => /Error|assert|seed/i.test(l)).slice(0, 6).join('\n')}`);
  process.stdout.write(`  ${rows.map((row) => row.suite).join(', ')}: ${r.status === 0 ? 'clean' : 'FAILED'} (${cases} cases)\n`);
}

console.log('');
for (const line of formatTable([...totals.values()], [['rounds', (row: Row) => row.rounds]])) console.log(line);
for (const f of failures) console.log(`\n${f}`);
process.exitCode = failures.length === 0 ? 0 : 1;
