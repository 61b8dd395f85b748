// Tests use the pager's fault-injecting directory over an in-memory one.
import { FaultyDirectory as Faulty } from '../../pager/faults.js';
import { MemoryDirectory } from '../../engine/index.js';

export class FaultyDirectory extends Faulty {
  constructor() {
    super(new MemoryDirectory());
  }
  set failAt(plan: { op: 'write' | 'sync'; n: number; sticky: boolean } | undefined) {
    this.setPlan(plan);
  }
}
