// The journal's compression codec. Nothing else imports the LZ4 package.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const lz4 = require('lz4-napi') as { compressSync(data: Buffer): Buffer; uncompressSync(data: Buffer): Buffer };

export function compress(raw: Buffer): Buffer {
  return lz4.compressSync(raw);
}

/** Decompresses; returns undefined if the data is not valid LZ4 or not `rawBytes` long. */
export function decompress(compressed: Buffer, rawBytes: number): Buffer | undefined {
  try {
    const out = lz4.uncompressSync(compressed);
    return out.length === rawBytes ? out : undefined;
  } catch {
    return undefined;
  }
}
