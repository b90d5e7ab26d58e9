/**
 * Worker thread of the eNTK block contraction (see ./job.ts): for each job, first computes the factor
 * blocks it can claim when the job offers the model (./factor-worker.ts), then takes kernel blocks
 * from the shared counter until none is left. The default contraction (entk's WebAssembly kernels)
 * needs no tfjs, so tfjs and the worker's own backend are loaded only when a job asks for the
 * 'tfjs' contraction or offers factor blocks: a worker starts in a fraction of tfjs's import time.
 */
import { parentPort } from 'node:worker_threads';
import { provideTfContraction } from './contractions.js';
import type { ContractionJob, WorkerReply, WorkerRequest } from './job.js';
import { BlockLoop } from './loop.js';

const port = parentPort;
if (!port) throw new Error('src/kernel/worker.ts must run in a worker thread');

/** The backend to initialise if a job needs tfjs (from the 'init' message). */
let backend = '';
/** tfjs, once loaded (for the tensor count reported after each job). */
let tfjs: { memory(): { numTensors: number } } | null = null;
/** The factor passes, once loaded. */
let factorWorker: typeof import('./factor-worker.js') | null = null;

function reply(message: WorkerReply, transfer?: ArrayBuffer[]): void {
  port!.postMessage(message, transfer);
}

async function loadTfContraction(): Promise<void> {
  if (tfjs) return;
  const [tf, { initBackend }, { TfBlockComputer }] = await Promise.all([
    import('@tensorflow/tfjs'),
    import('../backend/index.js'),
    import('./tf-terms.js'),
  ]);
  await initBackend(backend);
  provideTfContraction(TfBlockComputer);
  tfjs = tf;
}

async function runJob(job: ContractionJob): Promise<void> {
  if (job.contraction === 'tfjs' || job.factors) await loadTfContraction();
  let factorsRefused: string | null = null;
  if (job.factors) {
    factorWorker ??= await import('./factor-worker.js');
    factorsRefused = await factorWorker.computeFactorBlocks(job, (position) =>
      reply({ type: 'features', position }),
    );
  }
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
  const numTensors = (tfjs?.memory().numTensors ?? 0) - (factorWorker?.keptTensors() ?? 0);
  reply({ type: 'done', numTensors, flops: loop.flops, factorsRefused });
}

port.on('message', (message: WorkerRequest) => {
  if (message.type === 'init') {
    backend = message.backend;
    reply({ type: 'ready' });
    return;
  }
  runJob(message).catch((error: Error) => reply({ type: 'error', message: error.stack ?? String(error) }));
});
