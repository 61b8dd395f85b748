// A reader thread for the tests: opens a reader from the handle in workerData and runs the
// commands it is sent, one reply each ({ ok } or { error: code }).
import { parentPort, workerData } from 'node:worker_threads';
import { BirchError, openReader, type ReaderHandle, type ReaderSnapshot } from '../../api/index.js';

export type ReaderCommand =
  | { op: 'get'; key: string; tree?: string }
  | { op: 'scan'; tree?: string }
  | { op: 'snapshot' }
  | { op: 'snapScan' }
  | { op: 'snapGetMany'; keys: string[] }
  | { op: 'snapRelease' }
  | { op: 'trees' }
  | { op: 'put' }
  | { op: 'reopen' }
  | { op: 'close' };

const port = parentPort;
if (port === null) throw new Error('reader-worker runs only as a worker thread');
const handle = (workerData as { handle: ReaderHandle }).handle;
const reader = await openReader(handle);
let snap: ReaderSnapshot | undefined;
const text = (b: Buffer | undefined): string | null => (b === undefined ? null : b.toString('utf8'));

function run(c: ReaderCommand): unknown {
  switch (c.op) {
    case 'get':
      return text(reader.get(c.key, c.tree === undefined ? {} : { tree: c.tree }));
    case 'scan':
      return [...reader.range(c.tree === undefined ? {} : { tree: c.tree })].map(([k, v]) => [k.toString('utf8'), v.toString('utf8')]);
    case 'snapshot':
      snap = reader.snapshot();
      return snap.seq;
    case 'snapScan':
      return [...(snap as ReaderSnapshot).range()].map(([k, v]) => [k.toString('utf8'), v.toString('utf8')]);
    case 'snapGetMany':
      return (snap as ReaderSnapshot).getMany(c.keys).map(text);
    case 'snapRelease':
      snap?.release();
      return null;
    case 'trees':
      return reader.trees();
    case 'put':
      return reader.put();
    case 'reopen':
      return openReader(handle).then(() => 'opened twice');
    case 'close':
      reader.close();
      return null;
  }
}

port.on('message', async (c: ReaderCommand) => {
  try {
    port.postMessage({ ok: await run(c) });
  } catch (err) {
    port.postMessage({ error: err instanceof BirchError ? err.code : String(err) });
  }
});
port.postMessage({ ok: 'ready' });
