// The writer thread: wires the Writer (writer.ts) to the main thread. With the handoff ring
// (api/handoff-ring.ts), the ring driver takes batches and control messages and this thread blocks
// on the ring's bell between records; otherwise every message is handed to the writer as it comes.
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { Writer } from './writer.js';
import { serveWorker } from './threads.js';
import { RingConsumer } from './handoff-ring.js';
import { RingDriver, type RingControl } from './ring-driver.js';
import type { FromWriter, ToWriter, WriterInit } from './protocol.js';

if (parentPort === null) throw new Error('writer-worker runs only as a worker thread');
const port = parentPort;
const init = workerData as WriterInit;
const ring = init.ring;
const post = (msg: FromWriter): void => port.postMessage(msg);
serveWorker<ToWriter, FromWriter>({
  thread: 'writer',
  port,
  init,
  send: post,
  start: (dir) => {
    if (ring === undefined) return { service: new Writer(dir, init, post), ready: () => ({ kind: 'ready' }) };
    const consumer = new RingConsumer(ring.sab);
    // Acknowledgements go into the ring; anything else ('fatal', 'closed') is a message, posted
    // after the acknowledgement it follows is stored.
    const send = (msg: FromWriter): void => {
      if (msg.kind !== 'synced') return post(msg);
      consumer.report(msg);
    };
    const writer = new Writer(dir, { ...init, loop: true }, send);
    const driver = new RingDriver(writer, consumer, () => receiveMessageOnPort(ring.port)?.message as RingControl | undefined);
    return {
      service: writer,
      ready: () => ({ kind: 'ready' }),
      run: (closed) => driver.run(() => {
        ring.port.close();
        closed();
      }),
    };
  },
  failed: (error) => ({ kind: 'openFailed', error }),
});
