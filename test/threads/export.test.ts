// Snapshot export in chunks (db.export) and import (db.import): the chunks depend on the entries
// alone (not on thread count, page layout or history), an export holds exactly one snapshot while
// writes go on, an import restores it, and a damaged or missing file is refused before anything
// is written, by name.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { open, type Birch } from '../../api/index.js';
import { rmDir, tmpDir } from '../helpers/index.js';

const key = (i: number): string => `key${String(i).padStart(6, '0')}`;
/** Values of varied length, some past a leaf's inline limit (overflow pages). */
const value = (i: number, tag = ''): string => `${tag}v${i}-${'x'.repeat((i * 37) % 300)}${i % 500 === 0 ? 'y'.repeat(9000) : ''}`;
const N = 12_000;

async function put(db: Birch, ops: { type: 'put' | 'del'; key: string; value?: string; tree?: string }[]): Promise<void> {
  for (let i = 0; i < ops.length; i += 500) await db.batch(ops.slice(i, i + 500).map((o) => (o.type === 'put' ? { type: 'put', key: o.key, value: o.value as string, ...(o.tree === undefined ? {} : { tree: o.tree }) } : { type: 'del', key: o.key, ...(o.tree === undefined ? {} : { tree: o.tree }) })));
}

function files(dir: string): Map<string, Buffer> {
  return new Map(fs.readdirSync(dir).sort().map((f) => [f, fs.readFileSync(path.join(dir, f))]));
}

/** Every entry of every tree, as text. */
function contents(db: Birch): Map<string, string> {
  const out = new Map<string, string>();
  for (const tree of [undefined, ...db.trees()]) {
    for (const [k, v] of db.range(tree === undefined ? {} : { tree })) out.set(`${tree ?? ''}/${k.toString()}`, v.toString());
  }
  return out;
}

describe('export and import', function () {
  this.timeout(300_000);
  let base: string;
  const opened: Birch[] = [];
  const openDb = async (name: string): Promise<Birch> => {
    const db = await open(path.join(base, name));
    opened.push(db);
    return db;
  };
  beforeEach(() => {
    base = tmpDir('birch-export');
  });
  afterEach(async () => {
    for (const db of opened.splice(0)) if (!db.closed) await db.close();
    rmDir(base);
  });

  it('gives byte-identical chunks and manifest for the same entries, whatever the threads, layout or history', async () => {
    // In order, in one pass.
    const a = await openDb('a');
    await put(a, Array.from({ length: N }, (_, i) => ({ type: 'put' as const, key: key(i), value: value(i) })));
    await put(a, [{ type: 'put', key: 'n1', value: 'one', tree: 'named' }, { type: 'put', key: 'n2', value: 'two', tree: 'named' }]);
    // In a scattered order, over other values, with keys that come and go and a tree that empties.
    const b = await openDb('b');
    const order = Array.from({ length: N }, (_, i) => (i * 7919) % N);
    await put(b, order.map((i) => ({ type: 'put' as const, key: key(i), value: value(i, 'old') })));
    await put(b, [{ type: 'put', key: 'gone', value: 'soon' }, { type: 'put', key: 'n2', value: 'two', tree: 'named' }, { type: 'put', key: 'e', value: 'e', tree: 'emptied' }]);
    await b.checkpoint();
    await put(b, order.map((i) => ({ type: 'put' as const, key: key(i), value: value(i) })));
    await put(b, [{ type: 'del', key: 'gone' }, { type: 'put', key: 'n1', value: 'one', tree: 'named' }, { type: 'del', key: 'e', tree: 'emptied' }]);
    await b.compact();

    const chunkBytes = 16 * 1024;
    const ref = await a.export(path.join(base, 'a1'), { threads: 1, chunkBytes });
    assert.ok(ref.chunks >= 40, `enough chunks to cut across ranges: ${ref.chunks}`);
    assert.equal(ref.entries, N + 2);
    const want = files(ref.dir);
    for (const [db, threads] of [[a, 2], [a, 4], [b, 1], [b, 3]] as const) {
      const r = await db.export(path.join(base, `${db === a ? 'a' : 'b'}${threads}`), { threads, chunkBytes });
      assert.deepEqual([...files(r.dir).keys()], [...want.keys()], `files of ${r.dir}`);
      for (const [f, bytes] of files(r.dir)) assert.ok(bytes.equals(want.get(f) as Buffer), `${f} of ${r.dir} differs`);
    }
    // Other options, other chunks: the option is honoured.
    const other = await a.export(path.join(base, 'big'), { threads: 2, chunkBytes: 256 * 1024 });
    assert.ok(other.chunks < ref.chunks / 4);
  });

  it('holds exactly one snapshot while writes go on, and import restores it', async () => {
    const db = await openDb('src');
    await put(db, Array.from({ length: 5000 }, (_, i) => ({ type: 'put' as const, key: key(i), value: value(i) })));
    // One writer, one awaited batch at a time: db.seq after each is that batch's number.
    const log: { seq: number; ops: [string, string | null][] }[] = [];
    let stop = false;
    const writes = (async () => {
      for (let round = 0; !stop; round++) {
        const ops: [string, string | null][] = [];
        for (let j = 0; j < 50; j++) {
          const i = (round * 131 + j * 97) % 6000;
          ops.push([key(i), (round + j) % 5 === 0 ? null : value(i, `r${round}-`)]);
        }
        await db.batch(ops.map(([k, v]) => (v === null ? { type: 'del' as const, key: k } : { type: 'put' as const, key: k, value: v })));
        log.push({ seq: db.seq, ops });
        if (round % 20 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    const seqAtStart = db.seq;
    const r = await db.export(path.join(base, 'ex'), { threads: 2, chunkBytes: 8192 });
    stop = true;
    await writes;
    assert.ok(r.seq >= seqAtStart, 'it holds every batch acknowledged before export() was called');
    assert.ok(log.some((l) => l.seq > r.seq), 'writes went on past the snapshot');
    const model = new Map<string, string>();
    for (let i = 0; i < 5000; i++) model.set(key(i), value(i));
    for (const l of log) {
      if (l.seq > r.seq) break;
      for (const [k, v] of l.ops) {
        if (v === null) model.delete(k);
        else model.set(k, v);
      }
    }
    const into = await openDb('restored');
    const imp = await into.import(r.dir);
    assert.equal(imp.entries, model.size);
    assert.deepEqual(contents(into), new Map([...model].map(([k, v]) => [`/${k}`, v])));
  });

  it('refuses a flipped bit in any chunk or in the manifest, or a missing chunk, by name, before writing anything', async () => {
    const db = await openDb('src');
    await put(db, Array.from({ length: 3000 }, (_, i) => ({ type: 'put' as const, key: key(i), value: value(i) })));
    const r = await db.export(path.join(base, 'ex'), { threads: 2, chunkBytes: 16 * 1024 });
    const names = fs.readdirSync(r.dir).sort();
    assert.ok(names.length > 5);
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    for (const name of names) {
      const copy = path.join(base, `copy-${name}`);
      fs.cpSync(r.dir, copy, { recursive: true });
      const file = path.join(copy, name);
      const bytes = fs.readFileSync(file);
      // The manifest's last byte is its newline: whitespace JSON does not read.
      const at = rand(name === 'manifest.json' ? bytes.length - 1 : bytes.length);
      bytes[at] = (bytes[at] as number) ^ (1 << rand(8));
      fs.writeFileSync(file, bytes);
      const into = await openDb(`into-${name}`);
      await assert.rejects(into.import(copy), (e: Error & { code?: string }) => e.code === 'BAD_EXPORT' && e.message.includes(name), `a flipped bit at ${at} of ${name}`);
      assert.equal([...into.range()].length, 0, 'nothing was written');
    }
    const missing = path.join(base, 'missing');
    fs.cpSync(r.dir, missing, { recursive: true });
    fs.rmSync(path.join(missing, names[2] as string));
    const into = await openDb('into-missing');
    await assert.rejects(into.import(missing), (e: Error & { code?: string }) => e.code === 'BAD_EXPORT' && e.message.includes(names[2] as string) && e.message.includes('missing'));
    // The untouched export imports whole.
    const good = await openDb('into-good');
    assert.equal((await good.import(r.dir)).entries, 3000);
    assert.equal(good.get(key(1234))?.toString(), value(1234));
  });

  it('checks its options and never writes over a directory', async () => {
    const db = await openDb('src');
    await db.put('a', 'b');
    fs.mkdirSync(path.join(base, 'there'));
    await assert.rejects(db.export(path.join(base, 'there')), { code: 'BAD_OPTION' });
    await assert.rejects(db.export(path.join(base, 'x'), { chunkBytes: 10 }), { code: 'BAD_OPTION' });
    await assert.rejects(db.export(path.join(base, 'x'), { threads: 0 }), { code: 'BAD_OPTION' });
    await assert.rejects(db.export(path.join(base, 'x'), { chunkSize: 1 } as never), /chunkBytes/);
    await assert.rejects(db.import(path.join(base, 'nothing')), { code: 'BAD_EXPORT' });
    assert.equal(fs.readdirSync(base).filter((f) => f.startsWith('.')).length, 0, 'no temporary directory left');
  });
});
