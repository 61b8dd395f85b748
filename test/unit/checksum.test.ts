// The two checksum implementations (pager/checksum.ts) must agree on every input, or a page
// written while one was in use would fail its check under the other.
import assert from 'node:assert/strict';
import { xxHash32 } from 'js-xxhash';
import xxhashWasm from 'xxhash-wasm';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { open } from '../../api/index.js';
import { checksum, checksumImplementation, checksumReady } from '../../pager/checksum.js';
import { rmDir, rng, tmpDir } from '../helpers/index.js';

const API = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'api', 'index.js');

describe('checksum: xxhash-wasm and js-xxhash', () => {
  it('give the same xxHash32 for every length 0..600, odd offsets inside larger buffers, and several seeds', async () => {
    const wasm = await xxhashWasm();
    const rand = rng(7);
    const big = Buffer.alloc(70_000);
    for (let i = 0; i < big.length; i++) big[i] = Math.floor(rand() * 256);
    const cases: [number, number][] = [];
    for (let len = 0; len <= 600; len++) cases.push([len % 13, len]);
    for (const len of [4096, 4095, 4097, 65536, 69_000]) cases.push([Math.floor(rand() * (big.length - len)), len]);
    for (const seed of [0, 1, 0x4a524e4c, 0xffffffff]) {
      for (const [off, len] of cases) {
        const view = big.subarray(off, off + len);
        const a = wasm.h32Raw(view, seed) >>> 0;
        const b = xxHash32(view, seed) >>> 0;
        assert.equal(b, a, `length ${len} at offset ${off}, seed ${seed}`);
      }
    }
  });

  it('the engine uses xxhash-wasm once ready, and checksum() slices as it says', async () => {
    await checksumReady();
    assert.equal(checksumImplementation(), 'xxhash-wasm');
    const buf = Buffer.from('0123456789abcdef');
    assert.equal(checksum(buf, 3, 11, 5), xxHash32(buf.subarray(3, 11), 5) >>> 0);
    assert.equal(checksum(buf), xxHash32(buf, 0) >>> 0);
  });

  it('a database written on wasm opens, reads and checks clean on the pure-JS fallback (BIRCH_CHECKSUM=js), and back', async () => {
    const dir = tmpDir('birch-cksum');
    try {
      let db = await open(dir);
      await db.batch(Array.from({ length: 2000 }, (_, i) => ({ type: 'put' as const, key: `k${i}`, value: `value ${i}`.repeat(5) })));
      await db.checkpoint();
      await db.put('journal-only', 'x'); // replayed from the journal by the child
      await db.close();
      const script = `
        const { open } = await import(${JSON.stringify(API)});
        const db = await open(${JSON.stringify(dir)});
        const report = (await db.checkpoint(), db.check());
        await db.put('from-js', 'y');
        const out = { impl: db.stats({ trees: false }).implementation.checksum, ok: report.ok, n: [...db.range()].length, j: db.get('journal-only')?.toString() };
        await db.close();
        console.log(JSON.stringify(out));`;
      const file = path.join(dir, 'child.mjs');
      fs.writeFileSync(file, script);
      const r = spawnSync(process.execPath, [file], { encoding: 'utf8', env: { ...process.env, BIRCH_CHECKSUM: 'js' } });
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout.trim()), { impl: 'js-xxhash', ok: true, n: 2002, j: 'x' });
      db = await open(dir);
      assert.equal(db.get('from-js')?.toString(), 'y');
      assert.ok(db.check().ok);
      await db.close();
    } finally {
      rmDir(dir);
    }
  });
});
