// Child process for the async SIGKILL test: CALLERS concurrent callers, each committing batches
// of two puts (its next item and its counter) and reporting every resolved batch on stdout,
// synchronously, before the next one. A small checkpointBytes keeps checkpoints frequent, so that
// kills also land in the middle of one.
import { reportSync } from './report.js';
import { open } from '../../api/index.js';

const dir = process.argv[2] as string;
const CALLERS = 32;
// OPENING/OPEN let the test kill this process while it recovers the previous one's crash.
reportSync('OPENING\n');
const db = await open(dir, { checkpointBytes: 512 * 1024, journalSegmentSize: 1 << 20 });
reportSync('OPEN\n');
const caller = async (c: number): Promise<void> => {
  let seq = Number(db.get(`c${c}-count`)?.toString() ?? '0');
  for (;;) {
    seq++;
    await db.batch([
      { type: 'put', key: `c${c}-item-${String(seq).padStart(8, '0')}`, value: `payload ${c}/${seq} `.repeat(1 + (seq % 7)) },
      { type: 'put', key: `c${c}-count`, value: String(seq) },
    ]);
    reportSync(`ACK ${c} ${seq}\n`);
  }
};
await Promise.all(Array.from({ length: CALLERS }, (_, c) => caller(c)));
