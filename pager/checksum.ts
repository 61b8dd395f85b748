// One checksum algorithm for pages, meta pages and journal records: xxHash32. The wasm module
// is initialised once, at import, so that every later call is synchronous.
import xxhash from 'xxhash-wasm';

const hasher = await xxhash();

/** xxHash32 of `buf[start, end)`; the seed separates uses so that a page image cannot pass as a record. */
export function checksum(buf: Uint8Array, start = 0, end = buf.length, seed = 0): number {
  const view = start === 0 && end === buf.length ? buf : buf.subarray(start, end);
  return hasher.h32Raw(view, seed) >>> 0;
}
