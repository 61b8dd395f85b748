// The writer thread: wires the Writer (writer.ts) to its messages. Nothing else lives here.
import { parentPort, workerData } from 'node:worker_threads';
import { Writer } from './writer.js';
import { serveWorker } from './threads.js';
import type { FromWriter, ToWriter, WriterInit } from './protocol.js';

if (parentPort === null) throw new Error('writer-worker runs only as a worker thread');
const port = parentPort;
const init = workerData as WriterInit;
const send = (msg: FromWriter): void => port.postMessage(msg);
serveWorker<ToWriter, FromWriter>({
  thread: 'writer',
  port,
  init,
  send,
  start: (dir) => ({ service: new Writer(dir, init, send), ready: () => ({ kind: 'ready' }) }),
  failed: (error) => ({ kind: 'openFailed', error }),
});
