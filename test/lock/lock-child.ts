// Child process for the lock tests: opens the directory with the lock mode it is given, reports
// on one line what happened (`HELD <kind>` or `REFUSED <code>`), and then, if it holds the
// database, keeps it open until it is killed or its stdin closes.
import { open, BirchError, type LockMode } from '../../api/index.js';

const dir = process.argv[2] as string;
const mode = (process.argv[3] ?? 'auto') as LockMode;
try {
  const db = await open(dir, { lock: mode });
  process.stdout.write(`HELD ${db.stats({ trees: false }).implementation.lock}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => void db.close().then(() => process.exit(0)));
} catch (err) {
  process.stdout.write(`REFUSED ${err instanceof BirchError ? err.code : String(err)}\n`);
  process.exit(0);
}
