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
import { readEnv } from '../platform/errors.js';

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

// ---- in place, over shared memory ---------------------------------------------------------------
//
// The page cache checksums a page where it lies, in a frame of shared memory: xxhash-wasm would
// first copy the 4 KiB into its own WebAssembly memory (1.73 us a page from shared memory, against
// 0.71-0.87 us for the loop below over an Int32Array view, measured on the team's 2-core VM, Node
// 20). The loop reads 32-bit words through a native-order view, which is the file's little-endian
// order only on a little-endian host; elsewhere it assembles each word from bytes (1.9 us a page).

const PRIME1 = 0x9e3779b1 | 0;
const PRIME2 = 0x85ebca77 | 0;
const PRIME3 = 0xc2b2ae3d | 0;
const PRIME4 = 0x27d4eb2f;
const PRIME5 = 0x165667b1;

/** Whether 32-bit typed arrays read memory in little-endian order here. */
export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function wordAt(bytes: Uint8Array, words: Int32Array, p: number): number {
  return LITTLE_ENDIAN_HOST ? (words[p >>> 2] as number) : (bytes[p] as number) | ((bytes[p + 1] as number) << 8) | ((bytes[p + 2] as number) << 16) | ((bytes[p + 3] as number) << 24);
}

/**
 * xxHash32 of `bytes[start, end)`, the same value as checksum(), read in place. `words` is an
 * Int32Array over the same memory as `bytes` (byteOffset 0 in both), and `start` is a multiple of 4.
 */
export function checksumInPlace(bytes: Uint8Array, words: Int32Array, start: number, end: number, seed: number): number {
  const len = end - start;
  let p = start;
  let h: number;
  if (len >= 16) {
    let v1 = (seed + PRIME1 + PRIME2) | 0;
    let v2 = (seed + PRIME2) | 0;
    let v3 = seed | 0;
    let v4 = (seed - PRIME1) | 0;
    const limit = end - 16;
    while (p <= limit) {
      v1 = Math.imul(rotl((v1 + Math.imul(wordAt(bytes, words, p), PRIME2)) | 0, 13), PRIME1);
      v2 = Math.imul(rotl((v2 + Math.imul(wordAt(bytes, words, p + 4), PRIME2)) | 0, 13), PRIME1);
      v3 = Math.imul(rotl((v3 + Math.imul(wordAt(bytes, words, p + 8), PRIME2)) | 0, 13), PRIME1);
      v4 = Math.imul(rotl((v4 + Math.imul(wordAt(bytes, words, p + 12), PRIME2)) | 0, 13), PRIME1);
      p += 16;
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else h = (seed + PRIME5) | 0;
  h = (h + len) | 0;
  while (p + 4 <= end) {
    h = Math.imul(rotl((h + Math.imul(wordAt(bytes, words, p), PRIME3)) | 0, 17), PRIME4);
    p += 4;
  }
  while (p < end) {
    h = Math.imul(rotl((h + Math.imul(bytes[p] as number, PRIME5)) | 0, 11), PRIME1);
    p++;
  }
  h ^= h >>> 15;
  h = Math.imul(h, PRIME2);
  h ^= h >>> 13;
  h = Math.imul(h, PRIME3);
  h ^= h >>> 16;
  return h >>> 0;
}
