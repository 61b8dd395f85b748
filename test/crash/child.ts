// Child process for the SIGKILL test: commits transactions forever and reports each one on
// stdout, synchronously, as soon as commit() returns (i.e. once it is durable).
// Transaction t writes 20 keys `t<t>-<i>`, deletes the 20 keys of transaction t-10, sets `last`.
import { reportSync } from './report.js';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Database } from '../../api/index.js';

const dir = process.argv[2] as string;
const db = Database.open(dir, { journalSegmentSize: 256 * 1024, checkpointBytes: 256 * 1024 });
let t = db.txnId === 0 ? 0 : Number(db.read((r) => r.get('last'))?.toString() ?? '0');
for (;;) {
  t++;
  db.write((w) => {
    for (let i = 0; i < 20; i++) w.put(`t${t}-${String(i).padStart(2, '0')}`, `value of ${t}/${i} `.repeat(1 + (i % 5)));
    if (t > 10) for (let i = 0; i < 20; i++) w.del(`t${t - 10}-${String(i).padStart(2, '0')}`);
    w.put('last', String(t));
  });
  reportSync(`ACK ${t}\n`);
  // Let background data-file flushes make progress, so that kills also land inside them.
  await yieldToLoop();
}
