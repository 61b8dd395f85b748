// A process that backs up `src` into `target`, printing a line per slice copied, to be SIGKILLed
// by test/async/backup.test.ts at some point of it.
import { open } from '../../api/index.js';

const [src, target] = process.argv.slice(2) as [string, string];
const db = await open(src);
await db.backup(target, { onProgress: (p) => process.stdout.write(p.phase === 'copy' ? 'slice\n' : `${p.phase}\n`) });
process.stdout.write('done\n');
await db.close();
