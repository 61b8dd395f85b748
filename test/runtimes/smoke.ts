// The smoke suite each runtime (Node, Bun, Deno) runs against the compiled library, driven by
// test/runtimes/runtimes.test.ts, which runs it under each runtime. Steps, by argv[2]:
//   basic <dir>   open, 64 concurrent writers, snapshots and ranges, a named tree, check(),
//                 close, reopen: prints `OK <json of what it saw>`.
//   write <dir>   writes batch after batch, printing `ACK <n> <checkpoints>` as each resolves (with
//                 the checkpoints finished so far, as stats() counts them), until killed.
//   verify <dir> <acked>  reopens after the writer was SIGKILLed: every acknowledged batch is
//                 there whole, check() is clean; prints `OK <json>`.
//   level <dir>   birchdb/level: BirchLevel with the json encoding, the empty key, a sublevel,
//                 an iterator with seek, close and reopen: prints `OK <json of what it saw>`.
// Any failure prints `FAIL <message>` and exits 1, so the test shows what the runtime said.
import { writeSync } from 'node:fs';
import { open } from '../../api/index.js';

const [step, dir, ackedArg] = process.argv.slice(2) as [string, string, string | undefined];

function say(line: string): void {
  writeSync(1, line + '\n');
}

function fail(message: string): never {
  say(`FAIL ${message}`);
  process.exit(1);
}

function expect(cond: boolean, message: string): void {
  if (!cond) fail(message);
}

const key = (c: number, i: number): string => `k${String(c).padStart(2, '0')}-${String(i).padStart(4, '0')}`;

async function basic(): Promise<void> {
  const CALLERS = 64;
  const PER_CALLER = 50;
  let db = await open(dir);
  const impl = db.stats({ trees: false }).implementation;
  await Promise.all(Array.from({ length: CALLERS }, async (_, c) => {
    for (let i = 0; i < PER_CALLER; i++) await db.put(key(c, i), `v${c}.${i}`);
  }));
  const snap = db.snapshot();
  await db.batch([{ type: 'put', key: key(0, 0), value: 'changed' }, { type: 'del', key: key(1, 0) }]);
  expect(snap.get(key(0, 0))?.toString() === 'v0.0', 'the snapshot sees the value from before the batch');
  expect(snap.get(key(1, 0))?.toString() === 'v1.0', 'the snapshot still sees the deleted key');
  expect(db.get(key(0, 0))?.toString() === 'changed', 'the handle sees the batch');
  expect(db.get(key(1, 0)) === undefined, 'the handle sees the delete');
  const snapCount = [...snap.range()].length;
  snap.release();
  const range = [...db.range({ gte: key(5, 0), lt: key(6, 0) })].map(([k]) => k.toString());
  expect(range.length === PER_CALLER && range[0] === key(5, 0) && range[PER_CALLER - 1] === key(5, PER_CALLER - 1), `range of caller 5: ${range.length} keys`);
  await db.tree('other').put('x', 'y');
  await db.checkpoint();
  const report = db.check();
  expect(report.ok, `check(): ${report.errors.join('; ')}`);
  await db.close();
  db = await open(dir);
  const total = [...db.range()].length;
  expect(total === CALLERS * PER_CALLER - 1, `after reopening: ${total} keys`);
  expect(db.tree('other').get('x')?.toString() === 'y', 'the named tree survived');
  await db.close();
  say(`OK ${JSON.stringify({ snapCount, total, implementation: impl })}`);
}

async function write(): Promise<void> {
  const db = await open(dir, { checkpointBytes: 256 * 1024 });
  say('OPEN');
  for (let t = 1; ; t++) {
    const ops = [];
    for (let i = 0; i < 20; i++) ops.push({ type: 'put' as const, key: `b${t}-${i}`, value: `batch ${t} item ${i} `.repeat(4) });
    ops.push({ type: 'put' as const, key: 'last', value: String(t) });
    await db.batch(ops);
    say(`ACK ${t} ${db.stats({ trees: false }).checkpoints.count}`);
  }
}

async function verify(): Promise<void> {
  const acked = Number(ackedArg);
  const db = await open(dir);
  const last = Number(db.get('last')?.toString() ?? '0');
  expect(last >= acked, `last batch ${last} is older than the acknowledged ${acked}`);
  for (let t = 1; t <= last; t++) {
    const n = [...db.range({ prefix: `b${t}-` })].length;
    expect(n === 20, `batch ${t} has ${n} of its 20 keys`);
  }
  await db.checkpoint();
  const report = db.check();
  expect(report.ok, `check(): ${report.errors.join('; ')}`);
  await db.close();
  say(`OK ${JSON.stringify({ acked, last })}`);
}

async function level(): Promise<void> {
  const { BirchLevel } = await import('../../level/index.js');
  let db = new BirchLevel<string, unknown>(dir, { valueEncoding: 'json' });
  await db.batch([{ type: 'put', key: '', value: { n: 0 } }, ...Array.from({ length: 50 }, (_, i) => ({ type: 'put' as const, key: key(0, i), value: { n: i } }))]);
  const sub = db.sublevel<string, string>('s', { valueEncoding: 'utf8' });
  await sub.put('x', 'y');
  const it = db.iterator({ lt: key(0, 40) });
  it.seek(key(0, 30));
  const sought = await it.nextv(3);
  await it.close();
  await db.close();
  db = new BirchLevel<string, unknown>(dir, { valueEncoding: 'json', createIfMissing: false });
  await db.open();
  const keys = await db.keys({ lt: key(0, 2) }).all();
  const subValue = await db.sublevel<string, string>('s', { valueEncoding: 'utf8' }).get('x');
  await db.close();
  say(`OK ${JSON.stringify({ keys, sought: sought.map(([k]) => k), subValue })}`);
}

try {
  if (step === 'basic') await basic();
  else if (step === 'level') await level();
  else if (step === 'write') await write();
  else if (step === 'verify') await verify();
  else fail(`unknown step ${step}`);
} catch (err) {
  fail(err instanceof Error ? `${err.name} ${(err as { code?: string }).code ?? ''}: ${err.message}` : String(err));
}
