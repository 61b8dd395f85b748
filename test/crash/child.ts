// Child process for the SIGKILL-during-checkpoints test: one caller commits batches forever through
// the public API, with a small checkpointBytes so that a checkpoint runs every few batches, and
// reports each acknowledged batch on stdout, synchronously, as soon as its promise resolves, with
// the number of checkpoints it has finished.
// Batch t writes 20 keys `t<t>-<i>`, deletes the 20 keys of batch t-10, sets `last`.
import { reportSync } from './report.js';
import { open } from '../../api/index.js';

const dir = process.argv[2] as string;
const db = await open(dir, { journalSegmentSize: 256 * 1024, checkpointBytes: 96 * 1024 });
let t = Number(db.get('last')?.toString() ?? '0');
for (;;) {
  t++;
  const ops: Parameters<typeof db.batch>[0] = [];
  for (let i = 0; i < 20; i++) ops.push({ type: 'put', key: `t${t}-${String(i).padStart(2, '0')}`, value: `value of ${t}/${i} `.repeat(1 + (i % 5)) });
  if (t > 10) for (let i = 0; i < 20; i++) ops.push({ type: 'del', key: `t${t - 10}-${String(i).padStart(2, '0')}` });
  ops.push({ type: 'put', key: 'last', value: String(t) });
  await db.batch(ops);
  // With the checkpoints finished so far, as this process's stats() counts them.
  reportSync(`ACK ${t} ${db.stats({ trees: false }).checkpoints.count}\n`);
}
