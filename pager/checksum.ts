// One checksum algorithm for pages, meta pages and journal records: xxHash32.
//
// Two implementations of the same function: xxhash-wasm (about 4.7x faster on 4 KiB pages, measured
// on the team's 2-core VM: 1.05 µs against 4.9 µs) and js-xxhash, pure JavaScript. WebAssembly
// modules instantiate asynchronously, and a top-level await would make the package impossible to
// require() from CommonJS, so the wasm module starts loading at import and the pure-JS one serves
// every call until it is ready (or forever, where WebAssembly is unavailable). open() and each
// worker thread await checksumReady() first, so in practice the engine runs on wasm. Both give
// the same value for the same bytes and seed (test/unit/checksum.test.ts). BIRCH_CHECKSUM=js
// keeps the pure-JS one, so that tests can run the engine on it.
import xxhashWasm from 'xxhash-wasm';
import { xxHash32 } from 'js-xxhash';
import { readEnv } from './errors.js';

type H32 = (buf: Uint8Array, seed: number) => number;

let h32: H32 = (buf, seed) => xxHash32(buf, seed);
let implementation: 'xxhash-wasm' | 'js-xxhash' = 'js-xxhash';

const ready: Promise<void> = (async () => {
  if (readEnv('BIRCH_CHECKSUM') === 'js') return;
  try {
    const hasher = await xxhashWasm();
    h32 = (buf, seed) => hasher.h32Raw(buf, seed);
    implementation = 'xxhash-wasm';
  } catch {
    // No WebAssembly here (for example node --jitless): stay on the pure-JS implementation.
  }
})();

/** Resolves once the fastest available implementation is in place; never rejects. */
export function checksumReady(): Promise<void> {
  return ready;
}

/** The implementation in use now (stats().implementation.checksum). */
export function checksumImplementation(): 'xxhash-wasm' | 'js-xxhash' {
  return implementation;
}

/** xxHash32 of `buf[start, end)`; the seed separates uses so that a page image cannot pass as a record. */
export function checksum(buf: Uint8Array, start = 0, end = buf.length, seed = 0): number {
  const view = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
  return h32(view, seed) >>> 0;
}
