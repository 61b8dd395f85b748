// The catalogue of wrong calls at the public API: each maps to a typed error with a stable code,
// and nothing is written.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { MAX_KEY_BYTES, MAX_VALUE_BYTES, open, type Birch, type BirchOptions } from '../../api/index.js';
import { isCode, rmDir, tmpDir } from '../helpers/index.js';

describe('bad input at the public API: a typed error with a stable code, nothing written', () => {
  let dir: string;
  let db: Birch;
  beforeEach(async () => {
    dir = tmpDir('birch-bad');
    db = await open(dir);
    await db.put('keep', 'me');
  });
  afterEach(async () => {
    await db.close();
    rmDir(dir);
  });

  it('refuses every wrong write with its code and writes nothing', async () => {
    const cases: [string, () => Promise<unknown>, string][] = [
      ['a number key', () => db.put(42 as unknown as string, 'v'), 'KEY_INVALID'],
      ['a null key', () => db.put(null as unknown as string, 'v'), 'KEY_INVALID'],
      ['an object key', () => db.put({} as unknown as string, 'v'), 'KEY_INVALID'],
      ['an empty key', () => db.put('', 'v'), 'KEY_INVALID'],
      [`a ${MAX_KEY_BYTES + 1}-byte key`, () => db.put(Buffer.alloc(MAX_KEY_BYTES + 1, 1), 'v'), 'KEY_INVALID'],
      ['a number value', () => db.put('k', 7 as unknown as string), 'VALUE_INVALID'],
      ['an undefined value', () => db.put('k', undefined as unknown as string), 'VALUE_INVALID'],
      ['a value over the limit', () => db.put('k', Buffer.alloc(MAX_VALUE_BYTES + 1)), 'VALUE_INVALID'],
      ['batch of a non-array', () => db.batch({} as unknown as []), 'BAD_OPTION'],
      ['an op of an unknown type', () => db.batch([{ type: 'merge', key: 'k' } as unknown as { type: 'del'; key: string }]), 'BAD_OPTION'],
      ['a bad key inside a batch', () => db.batch([{ type: 'put', key: 'ok', value: 'v' }, { type: 'put', key: '', value: 'v' }]), 'KEY_INVALID'],
      ['ifMatch that is not an array', () => db.batch([], { ifMatch: 3 as unknown as [] }), 'BAD_OPTION'],
      ['an empty tree name', () => db.put('k', 'v', { tree: '' }), 'TREE_NAME_INVALID'],
      ['a tree name that is not a string', () => db.put('k', 'v', { tree: 5 as unknown as string }), 'TREE_NAME_INVALID'],
      ['a 256-byte tree name', () => db.put('k', 'v', { tree: 'x'.repeat(256) }), 'TREE_NAME_INVALID'],
      ['a tree name with a lone surrogate (it would come back from UTF-8 as another name)', () => db.put('k', 'v', { tree: 'a\uD800' }), 'TREE_NAME_INVALID'],
      ['dropping a tree that does not exist', () => db.dropTree('nope'), 'TREE_NOT_FOUND'],
    ];
    const before = db.seq;
    for (const [what, call, expected] of cases) await assert.rejects(call(), isCode(expected), what);
    await db.put('after', 'x');
    assert.equal(db.seq, before + 1, 'no batch but the last was admitted');
    assert.equal(db.get('ok'), undefined, 'the good op of a batch with a bad one was not written');
  });

  it('refuses wrong options to open()', async () => {
    const bad: [unknown, string][] = [
      [{ sync: 'yes' }, 'BAD_OPTION'],
      [{ cacheSize: -5 }, 'BAD_OPTION'],
      [{ maxQueuedBytes: 'lots' }, 'BAD_OPTION'],
      [{ maxMergeBytes: 0 }, 'BAD_OPTION'],
      [{ checkpointBytes: Number.NaN }, 'BAD_OPTION'],
      [{ allocation: { policy: 'best-fit' } }, 'BAD_OPTION'],
      [{ backend: {} }, 'BAD_OPTION'],
      ['not an object', 'BAD_OPTION'],
    ];
    const other = tmpDir('birch-badopt');
    try {
      for (const [opts, expected] of bad) await assert.rejects(open(other, opts as BirchOptions), isCode(expected), JSON.stringify(opts));
      await assert.rejects(open(42 as unknown as string), isCode('BAD_OPTION'));
      await assert.rejects(open(dir), isCode('DB_LOCKED'), 'the directory is open here already');
    } finally {
      rmDir(other);
    }
  });

  it('use after close, close twice, concurrent close, a snapshot after release', async () => {
    const snap = db.snapshot();
    snap.release();
    assert.throws(() => snap.get('keep'), isCode('TXN_CLOSED'));
    snap.release(); // twice is harmless
    const it = db.range();
    it.next();
    const [a, b] = [db.close(), db.close()];
    // Closing may move pages (compaction): no read is served from the moment close() is called.
    assert.throws(() => db.get('keep'), isCode('DB_CLOSED'), 'reads refuse while closing');
    assert.equal(a, b, 'concurrent close() calls share one promise');
    await Promise.all([a, b]);
    await db.close();
    assert.throws(() => db.get('keep'), isCode('DB_CLOSED'));
    assert.throws(() => [...db.range()], isCode('DB_CLOSED'));
    assert.throws(() => db.snapshot(), isCode('DB_CLOSED'));
    assert.throws(() => it.next(), isCode('DB_CLOSED'), 'an iteration open across close() stops with DB_CLOSED');
    await assert.rejects(db.put('k', 'v'), isCode('DB_CLOSED'));
    await assert.rejects(db.batch([]), isCode('DB_CLOSED'));
    await assert.rejects(db.dropTree('x'), isCode('DB_CLOSED'));
    assert.throws(() => db.stats(), isCode('DB_CLOSED'));
    db = await open(dir); // for afterEach
    assert.equal(db.get('keep')?.toString(), 'me');
  });

  it('errors say what happened: the type in plain words, which key failed its condition, a file where a directory should be, the same process holding the lock', async () => {
    await assert.rejects(db.put('k', undefined as unknown as string), (e: unknown) => isCode('VALUE_INVALID')(e) && /not undefined \(missing\)$/.test((e as Error).message));
    await assert.rejects(db.put(7 as unknown as string, 'v'), (e: unknown) => isCode('KEY_INVALID')(e) && /not a number$/.test((e as Error).message));
    await db.put('n', '1', { tree: 'counters' });
    await assert.rejects(
      db.batch([{ type: 'put', key: 'n', value: '2', tree: 'counters' }], { ifMatch: [{ key: 'n', value: '0', tree: 'counters' }] }),
      (e: unknown) => isCode('CONDITION_FAILED')(e) && /key "n" in tree "counters" holds another value/.test((e as Error).message),
    );
    await assert.rejects(
      db.batch([{ type: 'put', key: 'x', value: '2' }], { ifMatch: [{ key: Buffer.from([0, 1, 255]), value: '0' }] }),
      (e: unknown) => isCode('CONDITION_FAILED')(e) && /key 0x0001ff in the default tree is absent/.test((e as Error).message),
    );
    assert.equal(db.get('n', { tree: 'counters' })?.toString(), '1');
    const file = `${dir}-a-file`;
    fs.writeFileSync(file, 'not a database');
    try {
      await assert.rejects(open(file), (e: unknown) => isCode('IO')(e) && (e as Error).message.includes(`${file} as a database: it, or a folder on its path, is a file, not a directory`));
      await assert.rejects(open(`${file}/inner`), (e: unknown) => isCode('IO')(e) && /is a file, not a directory/.test((e as Error).message));
    } finally {
      fs.rmSync(file);
    }
    for (const lock of ['flock', 'pidfile'] as const) {
      if (lock === 'flock' && db.stats().implementation.lock !== 'flock') continue;
      await assert.rejects(open(dir, { lock }), (e: unknown) => isCode('DB_LOCKED')(e) && /this process already has it open.*close\(\) not awaited/.test((e as Error).message), lock);
    }
  });

  it('unknown options of every call fail with BAD_OPTION naming the option and the closest known one; a fractional limit is refused', async () => {
    const typo = (name: string, hint: string) => (e: unknown): boolean =>
      isCode('BAD_OPTION')(e) && (e as Error).message.includes(`unknown option '${name}'`) && (e as Error).message.includes(hint);
    await assert.rejects(open(`${dir}-x`, { cachesize: 1 } as never), typo('cachesize', "did you mean 'cacheSize'?"));
    await assert.rejects(open(`${dir}-x`, { allocation: { polcy: 'first-fit' } } as never), typo('polcy', "did you mean 'policy'?"));
    await assert.rejects(open(`${dir}-x`, { zzzzzz: 1 } as never), typo('zzzzzz', 'the options are sync, memoryLimit, cacheSize'));
    assert.ok(!fs.existsSync(`${dir}-x/data.birch`), 'nothing was created');
    assert.throws(() => db.range({ prefx: 'a' } as never), typo('prefx', "did you mean 'prefix'?"), 'when called, not when iterated');
    assert.throws(() => db.range({ limit: 1.5 }), (e: unknown) => isCode('BAD_OPTION')(e) && /whole number/.test((e as Error).message));
    assert.equal([...db.range({ limit: Infinity })].length, 1);
    assert.throws(() => db.get('keep', { tee: 'x' } as never), typo('tee', "did you mean 'tree'?"));
    assert.throws(() => db.getMany(['keep'], { tre: 'x' } as never), typo('tre', "did you mean 'tree'?"));
    assert.throws(() => db.getView('keep', { Tree: 'x' } as never), typo('Tree', "did you mean 'tree'?"));
    await assert.rejects(db.put('k', 'v', { tre: 'x' } as never), typo('tre', "did you mean 'tree'?"));
    await assert.rejects(db.del('keep', { tre: 'x' } as never), typo('tre', "did you mean 'tree'?"));
    await assert.rejects(db.batch([{ type: 'put', key: 'k', vale: 'v' } as never]), typo('vale', "did you mean 'value'?"));
    await assert.rejects(db.batch([{ type: 'put', key: 'k', value: 'v' }], { ifmatch: [] } as never), typo('ifmatch', "did you mean 'ifMatch'?"));
    await assert.rejects(db.batch([{ type: 'put', key: 'k', value: 'v' }], { ifMatch: [{ key: 'k', valu: 'v' }] } as never), typo('valu', "did you mean 'value'?"));
    assert.throws(() => db.stats({ tree: true } as never), typo('tree', "did you mean 'trees'?"));
    const snap = db.snapshot();
    assert.throws(() => snap.get('keep', { tee: 'x' } as never), typo('tee', "did you mean 'tree'?"));
    assert.throws(() => snap.range({ revers: true } as never), typo('revers', "did you mean 'reverse'?"));
    snap.release();
    assert.throws(() => db.tree('albums').range({ lmit: 3 } as never), typo('lmit', "did you mean 'limit'?"));
    await assert.rejects(db.backup(`${dir}-b`, { compct: true } as never), (e: unknown) => isCode('BAD_OPTION')(e) && /unknown backup option 'compct'/.test((e as Error).message));
    assert.equal(db.get('k'), undefined, 'nothing was written');
    assert.equal(db.get('keep')?.toString(), 'me');
  });

  it('a caller mutating its buffers after put() changes nothing', async () => {
    const k = Buffer.from('mut-key');
    const v = Buffer.from('mut-value');
    const batchOps = [{ type: 'put' as const, key: Buffer.from('b-key'), value: Buffer.from('b-value') }];
    const p1 = db.put(k, v);
    const p2 = db.batch(batchOps);
    k.fill(0x41);
    v.fill(0x42);
    batchOps[0]?.key.fill(0x43);
    batchOps[0]?.value.fill(0x44);
    await Promise.all([p1, p2]);
    assert.equal(db.get('mut-key')?.toString(), 'mut-value');
    assert.equal(db.get('b-key')?.toString(), 'b-value');
  });

  it('reads of a tree that was never written behave as an empty tree', () => {
    assert.equal(db.get('k', { tree: 'never' }), undefined);
    assert.deepEqual([...db.range({ tree: 'never' })], []);
    assert.deepEqual(db.trees(), []);
  });
});
