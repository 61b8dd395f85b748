// The optional native module: fs-ext's flock. birchdb installs and runs without it (the directory
// lock then uses its owner record alone); where it loads, the kernel's lock backs the record.
import { createRequire } from 'node:module';

export interface FsExt {
  flockSync(fd: number, flags: 'ex' | 'exnb' | 'un'): void;
}

let fsExtLoad: { fsExt: FsExt | null; why: string } | undefined;

/** fs-ext if its native module loads here; otherwise null and why (not installed, not built, another runtime). */
export function loadFsExt(): { fsExt: FsExt | null; why: string } {
  if (fsExtLoad === undefined) {
    try {
      const fsExt = createRequire(import.meta.url)('fs-ext') as FsExt;
      if (typeof fsExt.flockSync !== 'function') throw new Error('fs-ext has no flockSync');
      fsExtLoad = { fsExt, why: 'loaded' };
    } catch (err) {
      fsExtLoad = { fsExt: null, why: err instanceof Error ? err.message.split('\n')[0] ?? String(err) : String(err) };
    }
  }
  return fsExtLoad;
}
