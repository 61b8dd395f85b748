// The reliability table's rows. Each crash, fault, corruption, load and model test registers one
// row and counts into it, per case, what it ran and what went wrong: a case whose checks fail is
// sorted into a column by what its assertion says (a lost write, a half-applied batch, ...), and
// the test goes on to the next case, so the table counts failing cases, not failing tests. The
// test then fails if any column is not zero (assertRowClean). The summary reporter
// (test/summary-reporter.cjs) prints the table after the run; a test that fails outside any case
// counts one "other failure" there. Rows live on globalThis under a registered symbol because the
// reporter is a CommonJS module loaded by mocha, not an import of these ES modules.

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
  /** The first failures, for the test's own error message. */
  failures: string[];
}

const KEY = Symbol.for('birchdb.reliability.rows');

function rows(): ReliabilityRow[] {
  const g = globalThis as unknown as Record<symbol, ReliabilityRow[] | undefined>;
  return (g[KEY] ??= []);
}

/** The row of the running test (`this` in a mocha test function). */
export function reliabilityRow(ctx: Mocha.Context, suite: string, unrecognised: 'other' | 'wrong' = 'other'): ReliabilityRow {
  const row: ReliabilityRow = { suite, test: ctx.test?.fullTitle() ?? suite, cases: 0, acked: 0, lost: 0, halfApplied: 0, undetected: 0, wrong: 0, other: 0, unrecognised, failures: [] };
  rows().push(row);
  return row;
}

/** The column a failed check belongs in, by what its message says. */
export function classify(message: string, unrecognised: 'other' | 'wrong'): 'lost' | 'halfApplied' | 'undetected' | 'wrong' | 'other' {
  if (/was acknowledged|acknowledged .* survived|only \d+ survived|older than acknowledged|is lost|is not visible/.test(message)) return 'lost';
  if (/half-applied|has \d+ of its keys|has \d+ keys \(opened/.test(message)) return 'halfApplied';
  if (/WRONG|wrong value|wrong count|is visible|disagrees with the model/.test(message)) return 'wrong';
  if (/check\(\) missed|untyped|names no page|not detected/.test(message)) return 'undetected';
  return unrecognised;
}

function record(row: ReliabilityRow, where: string, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  row[classify(message, row.unrecognised)]++;
  if (row.failures.length < 5) row.failures.push(`${where}: ${message}`);
}

/**
 * Runs one case's checks (counting the case). A failure is counted in its column and remembered;
 * returns whether the case passed. The test goes on either way.
 */
export function checkCase(row: ReliabilityRow, where: string, fn: () => void): boolean {
  row.cases++;
  try {
    fn();
    return true;
  } catch (err) {
    record(row, where, err);
    return false;
  }
}

export async function checkCaseAsync(row: ReliabilityRow, where: string, fn: () => Promise<void>): Promise<boolean> {
  row.cases++;
  try {
    await fn();
    return true;
  } catch (err) {
    record(row, where, err);
    return false;
  }
}

export function failuresOf(row: ReliabilityRow): number {
  return row.lost + row.halfApplied + row.undetected + row.wrong + row.other;
}

/** Fails the test if any case failed, naming the first ones. */
export function assertRowClean(row: ReliabilityRow): void {
  const n = failuresOf(row);
  if (n > 0) throw new Error(`${n} of ${row.cases} cases failed; first: ${row.failures.join(' | ')}`);
}
