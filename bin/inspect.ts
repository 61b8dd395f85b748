// Read-only inspection of a database directory for `birch journal`: the data file's metas and the
// journal's record headers, read under the directory lock, with nothing replayed or written.
import { NodeDirectory } from '../pager/backend.js';
import { DATA_FILE, readMetas, type Metas } from '../pager/data-file.js';
import { listJournal } from '../journal/journal.js';
import { checkRoots } from '../btree/roots-format.js';

export function inspectJournal(dir: string): { metas: Metas; segments: ReturnType<typeof listJournal> } {
  const backend = new NodeDirectory(dir);
  const lock = backend.lock();
  try {
    const file = backend.open(DATA_FILE, { create: false, readOnly: true });
    try {
      return { metas: readMetas(file, checkRoots), segments: listJournal(backend) };
    } finally {
      file.close();
    }
  } finally {
    lock.release();
  }
}
