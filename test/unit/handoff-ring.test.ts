// The commit hand-off ring (api/handoff-ring.ts) and both of its ends (api/ring-link.ts on the main
// thread, api/ring-driver.ts on the writer), driven without threads: the full state, wrap-around
// of the entries and of the 32-bit counters, acknowledgements past 2^32, chunks the writer learns
// of by a control message, messages split over two chunks, and a full ring's backlog.
import assert from 'node:assert/strict';
import { ENTRY_BATCHES, RingConsumer, RingProducer, type RingEntry } from '../../api/handoff-ring.js';
import { RingDriver, type RingControl } from '../../api/ring-driver.js';
import { RingLink } from '../../api/ring-link.js';
import type { Writer } from '../../api/writer.js';
import type { FromWriter, ToWriter } from '../../api/protocol.js';
import type { JournalStats } from '../../journal/journal.js';

const blank = (): RingEntry => ({ kind: 0, flags: 0, chunk: 0, offset: 0, length: 0, ops: 0, firstSeq: 0, lastSeq: 0 });
const entry = (i: number): RingEntry => ({ kind: ENTRY_BATCHES, flags: i % 2, chunk: i, offset: i * 3, length: i * 5 + 1, ops: i * 7, firstSeq: 2 ** 40 + i, lastSeq: 2 ** 40 + i + 1 });
const stats = (n: number): JournalStats => ({ records: n, ops: n + 1, rawBytes: n + 2, storedBytes: n + 3, bytesWritten: n + 4, syncs: n + 5, segments: n + 6, segmentsCreated: n + 7, segmentsRecycled: n + 8, storedRecords: n + 9 });

describe('handoff ring', () => {
  it('refuses an entry when full, asks for room, and is told when the consumer takes one', () => {
    const p = RingProducer.create(4);
    const c = new RingConsumer(p.sab);
    for (let i = 0; i < 4; i++) assert.equal(p.publish(entry(i)), true);
    assert.equal(p.inFlight, 4);
    assert.equal(p.publish(entry(4)), false, 'a fifth entry fits a ring of four');
    const acks = p.acks;
    assert.deepEqual(c.take(blank()), entry(0));
    c.roomMade();
    assert.equal(p.acks, acks + 2, 'the producer that waits for room is not woken');
    c.roomMade();
    assert.equal(p.acks, acks + 2, 'room is announced once per request');
    assert.equal(p.publish(entry(4)), true);
    for (let i = 1; i <= 4; i++) assert.deepEqual(c.take(blank()), entry(i));
    assert.equal(c.take(blank()), undefined);
    assert.equal(p.inFlight, 0);
  });

  it('keeps entries in order through thousands of wrap-arounds, and across the 32-bit counters', () => {
    // Both counters start just below 2^31, so HEAD and TAIL go negative on the way.
    const p = RingProducer.create(8, 0x7fffff00);
    const c = new RingConsumer(p.sab);
    let published = 0;
    let taken = 0;
    const got = blank();
    for (let round = 0; round < 3000; round++) {
      // Publish 1..8 entries, then take 1..8 (whatever is there): every fill level and offset.
      const put = 1 + (round % 8);
      for (let k = 0; k < put; k++) if (p.publish(entry(published))) published++;
      const take = 1 + ((round * 5) % 8);
      for (let k = 0; k < take && c.take(got) !== undefined; k++) assert.deepEqual(got, entry(taken++));
      assert.equal(p.inFlight, published - taken);
      assert.ok(p.inFlight >= 0 && p.inFlight <= 8);
    }
    while (c.take(got) !== undefined) assert.deepEqual(got, entry(taken++));
    assert.equal(taken, published);
    assert.ok(published > 0x100, 'the counters crossed 2^31');
  });

  it('carries acknowledgements of sequence numbers past 2^32, and the journal statistics', () => {
    const p = RingProducer.create(4);
    const c = new RingConsumer(p.sab);
    c.acknowledge(2 ** 33 + 17, 5, 4096, stats(10));
    const a = p.ack();
    assert.equal(a.acks, 2, 'an acknowledgement counts ACKS up by two (odd while written)');
    assert.equal(a.lastSeq, 2 ** 33 + 17);
    assert.equal(a.records, 5);
    assert.equal(a.journalBytesHeld, 4096);
    assert.deepEqual(a.journal, stats(10));
  });
});

/** A writer that records what the driver hands it. */
function fakeWriter(): { writer: Writer; got: ToWriter[] } {
  const got: ToWriter[] = [];
  let queued = false;
  const writer = {
    receive: (m: ToWriter) => {
      got.push(m);
      if (m.kind === 'batches') queued = true;
    },
    fail: (err: unknown) => {
      throw err;
    },
    get closed() {
      return false;
    },
    get hasQueued() {
      return queued;
    },
    writeQueued: () => {
      queued = false;
    },
    idleStep: () => false,
  };
  return { writer: writer as unknown as Writer, got };
}

/**
 * Both ends on one thread: what the link is posted, the driver hands its writer. hideControls():
 * the driver's next look at the control port finds nothing, as when a chunk's message lands just
 * after a drain began. waitAsync: the link waits for ACKS as on a worker thread.
 */
function pair(capacity: number, waitAsync = false): { link: RingLink; driver: RingDriver; got: ToWriter[]; delivered: FromWriter[]; consumer: RingConsumer; hideControls(): void; chunks(): number } {
  const ring = RingProducer.create(capacity);
  const consumer = new RingConsumer(ring.sab);
  const control: RingControl[] = [];
  const delivered: FromWriter[] = [];
  const link = new RingLink({
    ring,
    control: (m) => control.push(m),
    wakeWriter: () => undefined,
    deliver: (m) => delivered.push(m),
    thread: { ref: () => undefined, unref: () => undefined, terminate: async () => undefined },
    waitAsync,
  });
  const { writer, got } = fakeWriter();
  let hide = false;
  let chunks = 0;
  const next = (): RingControl | undefined => {
    if (hide) {
      hide = false;
      return undefined;
    }
    const m = control.shift();
    if (m?.kind === 'chunk') chunks++;
    return m;
  };
  return { link, driver: new RingDriver(writer, consumer, next), got, delivered, consumer, hideControls: () => (hide = true), chunks: () => chunks };
}

const bytesOf = (m: ToWriter): number[][] => (m.kind === 'batches' ? m.parts.map((v) => [...v]) : []);

describe('handoff ring: link and driver', () => {
  it('hands the writer each message as sent: its parts from two chunks, boundaries, and control messages in order', () => {
    const { link, driver, got } = pair(16);
    const a = new Uint8Array(new SharedArrayBuffer(16));
    const b = new Uint8Array(new SharedArrayBuffer(16));
    a.set([1, 2, 3, 4, 5, 6]);
    b.set([9, 8, 7]);
    link.post({ kind: 'batches', parts: [a.subarray(0, 2)], ops: 1, firstSeq: 1, lastSeq: 1, freeze: false });
    // A turn whose batches span the old chunk and a new one: one message of two parts.
    link.post({ kind: 'batches', parts: [a.subarray(2, 6), b.subarray(0, 3)], ops: 3, firstSeq: 2, lastSeq: 4, freeze: true });
    link.post({ kind: 'boundary' });
    link.post({ kind: 'release', upToSeq: 4 });
    assert.equal(driver.step(), 'busy');
    assert.deepEqual(got.map((m) => m.kind), ['release', 'batches', 'batches', 'boundary']);
    assert.deepEqual(bytesOf(got[1] as ToWriter), [[1, 2]]);
    assert.deepEqual(bytesOf(got[2] as ToWriter), [[3, 4, 5, 6], [9, 8, 7]]);
    assert.deepEqual({ ...(got[2] as ToWriter), parts: [] }, { kind: 'batches', parts: [], ops: 3, firstSeq: 2, lastSeq: 4, freeze: true });
    // The views are of the very memory the main thread encoded into: no copy.
    const parts = (got[2] as Extract<ToWriter, { kind: 'batches' }>).parts;
    assert.equal(parts[1]?.buffer, b.buffer);
    assert.equal(driver.step(), 'idle');
  });

  it('learns of a chunk registered after its drain began (the entry never comes before its chunk)', () => {
    const { link, driver, got, hideControls } = pair(16);
    const a = new Uint8Array(new SharedArrayBuffer(8)).fill(3);
    link.post({ kind: 'batches', parts: [a.subarray(0, 4)], ops: 1, firstSeq: 1, lastSeq: 1, freeze: false });
    hideControls();
    driver.step();
    const b = new Uint8Array(new SharedArrayBuffer(8)).fill(4);
    link.post({ kind: 'batches', parts: [b.subarray(0, 2)], ops: 1, firstSeq: 2, lastSeq: 2, freeze: false });
    link.post({ kind: 'batches', parts: [a.subarray(4, 8)], ops: 1, firstSeq: 3, lastSeq: 3, freeze: false });
    hideControls();
    driver.step();
    assert.deepEqual(got.map(bytesOf), [[[3, 3, 3, 3]], [[4, 4]], [[3, 3, 3, 3]]]);
  });

  it('sends a chunk that a part fills whole for that entry alone, and the chunk it came back to again', () => {
    const { link, driver, got, chunks } = pair(16);
    const a = new Uint8Array(new SharedArrayBuffer(8)).fill(1);
    const own = new Uint8Array(new SharedArrayBuffer(4)).fill(2);
    link.post({ kind: 'batches', parts: [a.subarray(0, 2)], ops: 1, firstSeq: 1, lastSeq: 1, freeze: false });
    link.post({ kind: 'batches', parts: [own], ops: 1, firstSeq: 2, lastSeq: 2, freeze: false });
    link.post({ kind: 'batches', parts: [a.subarray(2, 4)], ops: 1, firstSeq: 3, lastSeq: 3, freeze: false });
    link.post({ kind: 'batches', parts: [a.subarray(4, 6)], ops: 1, firstSeq: 4, lastSeq: 4, freeze: false });
    driver.step();
    assert.deepEqual(got.map(bytesOf), [[[1, 1]], [[2, 2, 2, 2]], [[1, 1]], [[1, 1]]]);
    // a, the whole chunk, a again (neither side kept it past the whole one); not a fourth time.
    assert.equal(chunks(), 3);
  });

  it('holds entries back while the ring is full and publishes them, in order, as the writer makes room', () => {
    const { link, driver, got, consumer } = pair(4);
    const a = new Uint8Array(new SharedArrayBuffer(64));
    for (let i = 0; i < 10; i++) link.post({ kind: 'batches', parts: [a.subarray(i, i + 1)], ops: 1, firstSeq: i + 1, lastSeq: i + 1, freeze: false });
    driver.step();
    assert.equal(got.length, 4, 'the first four fit');
    // The writer acknowledged nothing yet, but took entries: the link publishes more when it looks.
    link.poll();
    driver.step();
    assert.equal(got.length, 8);
    consumer.acknowledge(8, 1, 0, stats(0));
    link.poll();
    driver.step();
    link.poll();
    assert.deepEqual(got.map((m) => (m.kind === 'batches' ? m.firstSeq : 0)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('on a worker thread\'s terms (waiting for ACKS): the room the writer makes wakes the link, which publishes what waited', async () => {
    const { link, driver, got } = pair(4, true);
    const a = new Uint8Array(new SharedArrayBuffer(64));
    for (let i = 0; i < 10; i++) link.post({ kind: 'batches', parts: [a.subarray(i, i + 1)], ops: 1, firstSeq: i + 1, lastSeq: i + 1, freeze: false });
    try {
      for (let round = 0; round < 10 && got.length < 10; round++) {
        driver.step();
        // No poll() here: only the writer's word that it made room brings the rest.
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.deepEqual(got.map((m) => (m.kind === 'batches' ? m.firstSeq : 0)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    } finally {
      link.stop();
    }
  });

  it('delivers the acknowledgement stored before a failure first, so durable batches resolve', () => {
    const { link, consumer, delivered } = pair(4);
    const a = new Uint8Array(new SharedArrayBuffer(8));
    link.post({ kind: 'batches', parts: [a], ops: 1, firstSeq: 1, lastSeq: 3, freeze: false });
    consumer.acknowledge(2, 1, 0, stats(1));
    link.received({ kind: 'fatal', error: { name: 'FatalIoError', code: 'FATAL_IO', message: 'sync failed', site: { thread: 'writer' } } });
    assert.deepEqual(delivered.map((m) => m.kind), ['synced', 'fatal']);
    assert.equal((delivered[0] as Extract<FromWriter, { kind: 'synced' }>).lastSeq, 2);
    // An acknowledgement already delivered is not delivered again.
    link.poll();
    assert.equal(delivered.length, 2);
  });
});
