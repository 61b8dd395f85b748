// A process that deletes 90% of the keys of `dir` and then compacts it while one caller writes,
// printing each acknowledged write ("ack N"), "deleted", "compact" and "compacted", to be
// SIGKILLed by test/async/compact.test.ts at some point of it.
import { open } from '../../api/index.js';

const [dir, keysArg] = process.argv.slice(2) as [string, string];
const keys = Number(keysArg);
const key = (i: number): string => `k${String(i).padStart(7, '0')}`;
const db = await open(dir);
for (let i = 0; i < keys; i += 1000) {
  await db.batch(Array.from({ length: 1000 }, (_, j) => i + j).filter((k) => k % 10 !== 0 && k < keys).map((k) => ({ type: 'del' as const, key: key(k) })));
}
await db.checkpoint();
process.stdout.write('deleted\n');
let stop = false;
const writer = (async () => {
  for (let n = 0; !stop; n++) {
    await db.put(`a${String(n).padStart(6, '0')}`, `after ${n}`);
    process.stdout.write(`ack ${n}\n`);
  }
})();
process.stdout.write('compact\n');
await db.compact();
process.stdout.write('compacted\n');
stop = true;
await writer;
await db.close();
process.stdout.write('closed\n');
