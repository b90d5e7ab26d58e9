/**
 * Worker thread of the eNTK block contraction (see pool.ts). Initialises its own tfjs backend,
 * then for each job takes blocks from the shared counter until none is left.
 */
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend/index.js';
import { BlockLoop } from './loop.js';
import type { ContractionJob, WorkerReply, WorkerRequest } from './pool.js';

const port = parentPort;
if (!port) throw new Error('src/kernel/worker.ts must run in a worker thread');

function reply(message: WorkerReply, transfer?: ArrayBuffer[]): void {
  port!.postMessage(message, transfer);
}

function runJob(job: ContractionJob): void {
  const loop = new BlockLoop(job);
  try {
    for (let done = loop.next(); done; done = loop.next()) {
      if (done.data)
        reply({ type: 'block', index: done.index, data: done.data }, [done.data.buffer as ArrayBuffer]);
      else reply({ type: 'block', index: done.index });
    }
  } finally {
    loop.release();
  }
  reply({ type: 'done', numTensors: tf.memory().numTensors, flops: loop.flops });
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
