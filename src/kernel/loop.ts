/**
 * The block loop every contracting thread runs (the main thread and the workers alike): take the
 * next block from the shared counter, wait until its factors are published, contract it, and write
 * it into the shared output (or hand it back). Same code everywhere, hence bitwise-equal results.
 */

import { makeBlockComputer } from './contractions.js';
import { type SetViews, viewsOf } from './factor-job.js';
import { ABORTED, type ContractionJob } from './job.js';
import { type BlockComputer, blockView, computeOriented, writeBlock } from './terms.js';

export const BLOCK_FIELDS = 5;

/** A contracted block: its schedule index and, when the job has no shared output, its data. */
export interface ContractedBlock {
  index: number;
  data: Float32Array | Float64Array | null;
}

/** A thread's view of a job. */
export class BlockLoop {
  private readonly computer: BlockComputer;
  private readonly sets: SetViews[];
  private readonly blocks: Int32Array;
  private readonly counter: Int32Array;
  private readonly ready: Int32Array;
  private readonly out: Float32Array | Float64Array | null;
  readonly total: number;

  constructor(private readonly job: ContractionJob) {
    const { terms, V, mode, accumulation } = job;
    this.computer = makeBlockComputer(job.contraction, terms, V, mode, job.capacity);
    this.sets = job.sets.map((set) => viewsOf(set.terms));
    this.blocks = new Int32Array(job.blocks);
    this.counter = new Int32Array(job.counter);
    this.ready = new Int32Array(job.ready);
    this.total = this.blocks.length / BLOCK_FIELDS;
    this.out = job.out
      ? accumulation === 'float64'
        ? new Float64Array(job.out.buffer, job.out.byteOffset, job.out.length)
        : new Float32Array(job.out.buffer, job.out.byteOffset, job.out.length)
      : null;
  }

  /**
   * Contract the next block, waiting (blocking) until its factors are published: returns its
   * schedule index and, when the job has no shared output, its data; null when no block is left (or
   * the job was aborted).
   */
  next(): ContractedBlock | null {
    const index = Atomics.add(this.counter, 0, 1);
    if (index >= this.total) return null;
    const need = this.blocks[BLOCK_FIELDS * index + 4]!;
    for (let seen = Atomics.load(this.ready, 0); seen < need; seen = Atomics.load(this.ready, 0)) {
      Atomics.wait(this.ready, 0, seen);
    }
    if (Atomics.load(this.ready, 0) === ABORTED) return null;
    return this.contract(index);
  }

  /**
   * The same without blocking (the main thread, which must keep receiving the workers' messages):
   * contracts the next block if its factors are published; otherwise returns the value of `ready`
   * it saw, to wait on (Atomics.waitAsync) before trying again. null when no block is left.
   */
  tryNext(): ContractedBlock | number | null {
    for (;;) {
      const index = Atomics.load(this.counter, 0);
      if (index >= this.total) return null;
      const seen = Atomics.load(this.ready, 0);
      if (seen === ABORTED) return null;
      if (seen < this.blocks[BLOCK_FIELDS * index + 4]!) return seen;
      if (Atomics.compareExchange(this.counter, 0, index, index + 1) === index) return this.contract(index);
    }
  }

  /** Contract block `index` of the schedule (its factors are published). */
  private contract(index: number): ContractedBlock {
    const f = BLOCK_FIELDS * index;
    const [rs, a, cs, b] = [this.blocks[f]!, this.blocks[f + 1]!, this.blocks[f + 2]!, this.blocks[f + 3]!];
    const { terms, V, mode } = this.job;
    const rowOffsets = this.job.sets[rs]!.offsets;
    const colOffsets = this.job.sets[cs]!.offsets;
    const mirror = this.job.mirror && a !== b;
    // (Blocks below the diagonal of a symmetric kernel, streamed in row order, as transposes.)
    const block = computeOriented(
      this.computer,
      blockView(terms, V, rowOffsets, this.sets[rs]!, a, `${rs}:${a}`),
      blockView(terms, V, colOffsets, this.sets[cs]!, b, `${cs}:${b}`),
      rs === cs && a > b,
      this.out != null && mirror,
    );
    try {
      if (!this.out) return { index, data: block.owned ? block.data : block.data.slice() };
      const stride = mode === 'full' ? V : 1;
      writeBlock(
        this.out,
        this.job.out!.cols,
        stride,
        rowOffsets,
        colOffsets,
        a,
        b,
        block.data,
        mirror,
        block.transposed,
      );
      return { index, data: null };
    } finally {
      block.done();
    }
  }

  /** Floating-point operations this thread's contractions executed so far. */
  get flops(): number {
    return this.computer.flops;
  }

  release(): void {
    this.computer.release();
  }
}

/** Make every thread of a job stop taking blocks (kernel and factor blocks). */
export function abortJob(job: ContractionJob): void {
  const ready = new Int32Array(job.ready);
  Atomics.store(new Int32Array(job.schedule.claim), 0, job.schedule.positions);
  Atomics.store(new Int32Array(job.counter), 0, new Int32Array(job.blocks).length / BLOCK_FIELDS);
  Atomics.store(ready, 0, ABORTED);
  Atomics.notify(ready, 0);
}
