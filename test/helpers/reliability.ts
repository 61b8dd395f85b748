// The reliability table's rows. Each crash, fault, corruption, load and model test registers one
// row and counts what it ran into it as it goes; the summary reporter (test/summary-reporter.cjs)
// prints the table after the run and sorts each failed test's assertion into the row's columns.
// Rows live on globalThis under a registered symbol because the reporter is a CommonJS module
// loaded by mocha, not an import of these ES modules.

export interface ReliabilityRow {
  /** The table's first column. */
  suite: string;
  /** mocha's full title of the test that owns the row: how the reporter finds it on a failure. */
  test: string;
  cases: number;
  /** Acknowledged writes (commits or batches) checked after a crash, fault or load; 0: not applicable. */
  acked: number;
  lost: number;
  halfApplied: number;
  undetected: number;
  wrong: number;
  other: number;
  /** Where a failure no pattern recognises goes: a model test's mismatch is a wrong answer. */
  unrecognised: 'other' | 'wrong';
}

const KEY = Symbol.for('birchdb.reliability.rows');

function rows(): ReliabilityRow[] {
  const g = globalThis as unknown as Record<symbol, ReliabilityRow[] | undefined>;
  return (g[KEY] ??= []);
}

/** The row of the running test (`this` in a mocha test function). */
export function reliabilityRow(ctx: Mocha.Context, suite: string, unrecognised: 'other' | 'wrong' = 'other'): ReliabilityRow {
  const row: ReliabilityRow = { suite, test: ctx.test?.fullTitle() ?? suite, cases: 0, acked: 0, lost: 0, halfApplied: 0, undetected: 0, wrong: 0, other: 0, unrecognised };
  rows().push(row);
  return row;
}
