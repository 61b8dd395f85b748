// The writer thread: wires the Writer (writer.ts) to its messages. Nothing else lives here.
import { parentPort, workerData } from 'node:worker_threads';
import { NodeDirectory } from '../pager/backend.js';
import { checksumReady } from '../pager/checksum.js';
import { Writer } from './writer.js';
import { endWorkerPort, faultyIfPlanned } from './threads.js';
import { toWireError, type FromWriter, type ToWriter, type WriterInit } from './protocol.js';

if (parentPort === null) throw new Error('writer-worker runs only as a worker thread');
const port = parentPort;
const init = workerData as WriterInit;
const send = (msg: FromWriter): void => port.postMessage(msg);
// The main thread posts nothing before 'ready', so no message can arrive before the listener.
void checksumReady().then(() => {
  let writer: Writer;
  try {
    writer = new Writer(faultyIfPlanned(new NodeDirectory(init.dir), init.faults, 'writer'), init, send);
  } catch (err) {
    send({ kind: 'openFailed', error: toWireError(err, 'writer') });
    process.exit(0);
  }
  port.on('message', (msg: ToWriter) => {
    writer.receive(msg);
    if (msg.kind === 'close') endWorkerPort(port);
  });
  send({ kind: 'ready' });
});
