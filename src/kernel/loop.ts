/**
 * The block loop every contracting thread runs (the main thread and the workers alike): take the
 * next block from the shared counter, wait until its factors are published, contract it, and write
 * it into the shared output (or hand it back). Same code everywhere, hence bitwise-equal results.
 */

import { makeBlockComputer } from './contractions.js';
import { ABORTED, type ContractionJob } from './job.js';
import { type BlockComputer, blockView, writeBlock } from './terms.js';

export const BLOCK_FIELDS = 5;

/** A thread's view of a job. */
export class BlockLoop {
  private readonly computer: BlockComputer;
  private readonly sets: Array<
    Array<{ a?: Float32Array; d?: Float32Array; s?: Float32Array; u?: Float32Array }>
  >;
  private readonly blocks: Int32Array;
  private readonly counter: Int32Array;
  private readonly ready: Int32Array;
  private readonly out: Float32Array | Float64Array | null;
  readonly total: number;

  constructor(private readonly job: ContractionJob) {
    const { terms, V, mode, accumulation } = job;
    this.computer = makeBlockComputer(job.contraction, terms, V, mode, job.capacity);
    this.sets = job.sets.map((set) =>
      set.terms.map((t) => ({
        a: t.a ? new Float32Array(t.a) : undefined,
        d: t.d ? new Float32Array(t.d) : undefined,
        s: t.s ? new Float32Array(t.s) : undefined,
        u: t.u ? new Float32Array(t.u) : undefined,
      })),
    );
    this.blocks = new Int32Array(job.blocks);
    this.counter = new Int32Array(job.counter);
    this.ready = new Int32Array(job.ready);
    this.total = this.blocks.length / BLOCK_FIELDS;
    this.out = job.out
      ? accumulation === 'float64'
        ? new Float64Array(job.out.buffer)
        : new Float32Array(job.out.buffer)
      : null;
  }

  /**
   * Contract the next block: returns its schedule index and, when the job has no shared output,
   * its data; null when no block is left (or the job was aborted).
   */
  next(): { index: number; data: Float32Array | Float64Array | null } | null {
    const index = Atomics.add(this.counter, 0, 1);
    if (index >= this.total) return null;
    const f = BLOCK_FIELDS * index;
    const [rs, a, cs, b, need] = [
      this.blocks[f]!,
      this.blocks[f + 1]!,
      this.blocks[f + 2]!,
      this.blocks[f + 3]!,
      this.blocks[f + 4]!,
    ];
    for (let seen = Atomics.load(this.ready, 0); seen < need; seen = Atomics.load(this.ready, 0)) {
      Atomics.wait(this.ready, 0, seen);
    }
    if (Atomics.load(this.ready, 0) === ABORTED) return null;
    const { terms, V, mode } = this.job;
    const rowOffsets = this.job.sets[rs]!.offsets;
    const colOffsets = this.job.sets[cs]!.offsets;
    const mirror = this.job.mirror && a !== b;
    const block = this.computer.compute(
      blockView(terms, V, rowOffsets, this.sets[rs]!, a, `${rs}:${a}`),
      blockView(terms, V, colOffsets, this.sets[cs]!, b, `${cs}:${b}`),
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

/** Make every thread of a job stop taking blocks. */
export function abortJob(job: ContractionJob): void {
  const ready = new Int32Array(job.ready);
  Atomics.store(new Int32Array(job.counter), 0, new Int32Array(job.blocks).length / BLOCK_FIELDS);
  Atomics.store(ready, 0, ABORTED);
  Atomics.notify(ready, 0);
}
