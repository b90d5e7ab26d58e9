/**
 * Worker thread of the eNTK block contraction (see pool.ts). Initialises its own tfjs backend,
 * then for each job takes blocks from the shared counter until none is left.
 */
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend/index.js';
import type { ContractionJob, WorkerReply, WorkerRequest } from './pool.js';
import { type BlockComputer, blockView, JsBlockComputer, TfBlockComputer, writeBlock } from './terms.js';

const port = parentPort;
if (!port) throw new Error('src/kernel/worker.ts must run in a worker thread');

function reply(message: WorkerReply, transfer?: ArrayBuffer[]): void {
  port!.postMessage(message, transfer);
}

function runJob(job: ContractionJob): void {
  const { terms, V, mode, accumulation } = job;
  const computer: BlockComputer =
    accumulation === 'float64' ? new JsBlockComputer(terms, V, mode) : new TfBlockComputer(terms, V, mode, job.capacity);
  const sets = job.sets.map((set) =>
    set.terms.map((t) => ({
      a: t.a ? new Float32Array(t.a) : undefined,
      d: t.d ? new Float32Array(t.d) : undefined,
    })),
  );
  const blocks = new Int32Array(job.blocks);
  const counter = new Int32Array(job.counter);
  const total = blocks.length / 4;
  const stride = mode === 'full' ? V : 1;
  const out = job.out
    ? accumulation === 'float64'
      ? new Float64Array(job.out.buffer)
      : new Float32Array(job.out.buffer)
    : null;
  try {
    for (;;) {
      const index = Atomics.add(counter, 0, 1);
      if (index >= total) break;
      const [rs, a, cs, b] = [blocks[4 * index]!, blocks[4 * index + 1]!, blocks[4 * index + 2]!, blocks[4 * index + 3]!];
      const rowOffsets = job.sets[rs]!.offsets;
      const colOffsets = job.sets[cs]!.offsets;
      const data = computer.compute(
        blockView(terms, V, rowOffsets, sets[rs]!, a, `${rs}:${a}`),
        blockView(terms, V, colOffsets, sets[cs]!, b, `${cs}:${b}`),
      );
      if (out) {
        writeBlock(out, job.out!.cols, stride, rowOffsets, colOffsets, a, b, data, job.mirror);
        reply({ type: 'block', index });
      } else {
        reply({ type: 'block', index, data }, [data.buffer as ArrayBuffer]);
      }
    }
  } finally {
    computer.release();
  }
  reply({ type: 'done', numTensors: tf.memory().numTensors });
}

port.on('message', (message: WorkerRequest) => {
  if (message.type === 'init') {
    initBackend(message.backend).then(
      () => reply({ type: 'ready' }),
      (error: Error) => reply({ type: 'error', message: error.message }),
    );
    return;
  }
  try {
    runJob(message);
  } catch (error) {
    reply({ type: 'error', message: (error as Error).stack ?? String(error) });
  }
});
