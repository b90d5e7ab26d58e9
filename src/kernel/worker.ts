/**
 * Worker thread of the eNTK block contraction (see ./job.ts): for each job, first computes the factor
 * blocks it can claim when the job offers the model (./factor-worker.ts), then takes kernel blocks
 * from the shared counter until none is left. The default contraction (entk's WebAssembly kernels)
 * needs no tfjs, so tfjs and the worker's own backend are loaded only when a job asks for the
 * 'tfjs' contraction or this worker takes factor blocks (a tfjs that cannot start here only means
 * the main thread computes them).
 */
import { parentPort } from 'node:worker_threads';
import { provideTfContraction } from './contractions.js';
import { factorBlocksLeft, takeFactorSlot } from './factor-job.js';
import { ABORTED, type ContractionJob, type WorkerReply, type WorkerRequest } from './job.js';
import { abortJob, BlockLoop } from './loop.js';

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

/** tfjs and its backend being loaded, or loaded (once per worker; a failure is kept). */
let tfjsLoading: Promise<void> | null = null;

function loadTfContraction(): Promise<void> {
  tfjsLoading ??= (async () => {
    const [tf, { initBackend }, { TfBlockComputer }] = await Promise.all([
      import('@tensorflow/tfjs'),
      import('../backend/index.js'),
      import('./tf-terms.js'),
    ]);
    await initBackend(backend);
    provideTfContraction(TfBlockComputer);
    tfjs = tf;
  })();
  return tfjsLoading;
}

/** tfjs and the factor passes being loaded, or loaded (once per worker; a failure is kept). */
let factorPassesLoading: Promise<void> | null = null;

function loadFactorPasses(): Promise<void> {
  factorPassesLoading ??= loadTfContraction().then(async () => {
    factorWorker = await import('./factor-worker.js');
  });
  return factorPassesLoading;
}

/** Set when a job left its factors to the main thread because they were not loaded here yet. */
let loadAfterJob = false;
/** Why loading them after a job failed (later factor shares refuse with it), or null. */
let loadError: string | null = null;

/**
 * This worker's share of a job's factor blocks (when the job offers them, a slot among its factor
 * workers is free and a block is left): null, or why it took none. Loading tfjs and its backend
 * takes this thread a few hundred ms: a job that offers factors and finds them not loaded leaves
 * its factors to the main thread and contracts kernel blocks at once, and they are loaded after the
 * job (a first call is then up to twice as fast), unless a test hook requires the workers' factors.
 * The load proceeds only while this thread has no job: in back-to-back calls it takes a few calls
 * (README, The eNTK engine).
 */
async function factorShare(job: ContractionJob): Promise<string | null> {
  const source = job.factors;
  if (!source) return null;
  // A 'tfjs' contraction loads tfjs in this job anyway (runJob); a test hook may require the factors.
  if (!factorWorker && job.contraction !== 'tfjs' && !source.hooks.requireWorkers) {
    if (loadError) return `tfjs could not start here: ${loadError}`;
    loadAfterJob = true;
    return 'tfjs was not loaded in this worker yet (it is loaded after this job)';
  }
  if (!takeFactorSlot(source) || !factorBlocksLeft(job.schedule)) return null;
  let refused: string | null;
  try {
    await loadFactorPasses();
    refused = await factorWorker!.computeFactorBlocks(job, (position) =>
      reply({ type: 'features', position }),
    );
  } catch (error) {
    // A failure inside a claimed block has aborted the job: that is an error, not a refusal.
    if (Atomics.load(new Int32Array(job.ready), 0) === ABORTED) throw error;
    refused = `tfjs could not start here: ${(error as Error).message}`;
  }
  if (refused && source.hooks.requireWorkers) {
    abortJob(job);
    throw new Error(
      `the test hook leaves the factors to the workers, but this one cannot compute them: ${refused}`,
    );
  }
  return refused;
}

async function runJob(job: ContractionJob): Promise<void> {
  const factorsRefused = await factorShare(job);
  if (job.contraction === 'tfjs') await loadTfContraction();
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
  if (loadAfterJob) {
    loadAfterJob = false;
    await loadFactorPasses().catch((error: Error) => {
      loadError = error.message;
    });
  }
}

port.on('message', (message: WorkerRequest) => {
  if (message.type === 'init') {
    backend = message.backend;
    reply({ type: 'ready' });
    return;
  }
  runJob(message).catch((error: Error) => reply({ type: 'error', message: error.stack ?? String(error) }));
});
