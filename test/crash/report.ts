// Reporting an acknowledgement from a crash-test child: synchronously, before the child goes on,
// so that every line the parent reads was written before the kill. Standard output may be a
// non-blocking pipe: a full pipe answers EAGAIN, and the write is retried until it goes through.
import fs from 'node:fs';

export function reportSync(line: string): void {
  const buf = Buffer.from(line);
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(1, buf, off, buf.length - off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
  }
}
