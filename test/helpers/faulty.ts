// Tests use the pager's fault-injecting directory over an in-memory one, as the `backend` of an
// open(): every thread of that database then runs on it, and the test sets the plan when it likes.
import { FaultyDirectory as Faulty } from '../../pager/faults.js';
import { MemoryDirectory } from '../../api/index.js';

export class FaultyDirectory extends Faulty {
  constructor() {
    super(new MemoryDirectory());
  }
  set failAt(plan: { op: 'write' | 'sync'; n: number; sticky: boolean } | undefined) {
    this.setPlan(plan);
  }
}
