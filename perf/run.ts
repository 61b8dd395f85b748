// `npm run perf`: micro-benchmarks and the journal preallocation measurement. Speed goals are
// reported here, never asserted in tests.
import os from 'node:os';
import { journalPreallocBench } from './journal-prealloc.js';
import { microBenches } from './micro.js';

console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}, node ${process.version}`);
for (const line of journalPreallocBench()) console.log(line);
console.log('micro-benchmarks (benchmark.js):');
for (const line of await microBenches()) console.log(line);
