'use strict';
// Mocha's spec output, then the reliability table (the rows test/helpers/reliability.ts collects:
// each test counts its own cases and failing cases), then one plain closing line,
// `N passed, N failed`, which CI reads. A reliability test that fails outside any of its cases (a
// crash of the test itself) counts one "other failure" in its row, so no failure goes unseen.
//
// With BIRCH_RELIABILITY_JSON set, the rows are also written to that file (the soak adds up its
// rounds from them).
const fs = require('node:fs');
const Mocha = require('mocha');

const ROWS = Symbol.for('birchdb.reliability.rows');

const COLUMNS = [
  ['suite', (r) => r.suite],
  ['cases run', (r) => r.cases],
  ['acked writes checked', (r) => (r.acked > 0 ? r.acked : '-')],
  ['writes lost', (r) => r.lost],
  ['half-applied', (r) => r.halfApplied],
  ['undetected corruptions', (r) => r.undetected],
  ['wrong answers', (r) => r.wrong],
  ['other failures', (r) => r.other],
];

/** Rows with the same suite name added up, in first-seen order. */
function merge(rows) {
  const out = new Map();
  for (const r of rows) {
    const m = out.get(r.suite);
    if (m === undefined) out.set(r.suite, { ...r });
    else for (const k of ['cases', 'acked', 'lost', 'halfApplied', 'undetected', 'wrong', 'other']) m[k] += r[k];
  }
  return [...out.values()];
}

/** The table as lines; `extra` adds columns after the suite name (the soak's rounds). */
function formatTable(rows, extra = []) {
  const cols = [COLUMNS[0], ...extra, ...COLUMNS.slice(1)];
  const table = [cols.map(([h]) => h), ...rows.map((r) => cols.map(([, f]) => String(f(r))))];
  const widths = cols.map((_, c) => Math.max(...table.map((line) => line[c].length)));
  return table.map((line) => line.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
}

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const rows = () => globalThis[ROWS] ?? [];
    runner.on('fail', (test) => {
      const title = typeof test.fullTitle === 'function' ? test.fullTitle() : '';
      const row = rows().find((r) => r.test === title);
      // Failing cases were counted by the test itself (its error says how many); a test that
      // failed with no failing case counted died outside its cases.
      if (row !== undefined && row.lost + row.halfApplied + row.undetected + row.wrong + row.other === 0) row.other++;
    });
    runner.once('end', () => {
      const merged = merge(rows());
      if (merged.length > 0) {
        process.stdout.write(`\nreliability (goal: zero in the last five columns)\n${formatTable(merged).join('\n')}\n\n`);
      }
      if (process.env.BIRCH_RELIABILITY_JSON) fs.writeFileSync(process.env.BIRCH_RELIABILITY_JSON, JSON.stringify(merged));
      const { passes, failures, pending } = runner.stats;
      const skipped = pending > 0 ? `, ${pending} skipped` : '';
      process.stdout.write(`${passes} passed, ${failures} failed${skipped}\n`);
    });
  }
}

SummaryReporter.formatTable = formatTable;
SummaryReporter.merge = merge;
module.exports = SummaryReporter;
