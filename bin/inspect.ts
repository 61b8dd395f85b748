// Read-only inspection of a database directory for `birch journal`: the data file's meta and the
// journal's record headers, read under the directory lock, with nothing replayed or written.
import { NodeDirectory } from '../pager/backend.js';
import { Pager } from '../pager/pager.js';
import { pageNo } from '../pager/ids.js';
import { DEFAULT_ALLOCATION } from '../pager/freelist.js';
import { Journal } from '../journal/journal.js';

export function inspectJournal(dir: string): { dataFileTxn: number; segments: ReturnType<Journal['listRecords']> } {
  const backend = new NodeDirectory(dir);
  const lock = backend.lock();
  try {
    const pager = Pager.open(backend, { cacheBytes: 1 << 20, allocation: DEFAULT_ALLOCATION });
    try {
      // Records are rebuilt (and so checked) as recovery would, but nothing is installed or written.
      const journal = Journal.open(backend, { segmentBytes: 1 << 20, sync: false }, pager.state.txnId, () => undefined, (no) => pager.readPageFromDisk(pageNo(no)));
      try {
        return { dataFileTxn: pager.state.txnId, segments: journal.listRecords() };
      } finally {
        journal.close();
      }
    } finally {
      pager.close();
    }
  } finally {
    lock.release();
  }
}
