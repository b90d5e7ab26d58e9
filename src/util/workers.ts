/**
 * entk's one worker-thread module. Two ways to use threads, both with idle threads never keeping the
 * process alive:
 *
 * - {@link MessagePool}: a fixed set of threads running a module entry point (TypeScript sources run
 *   through tsx, compiled builds directly), jobs posted as messages and run one after the other;
 *   shared process-wide by key ({@link sharedMessagePool}, {@link terminateMessagePools}). The
 *   kernel's block contraction uses it (src/kernel/worker.ts).
 * - {@link WasmThreads}: threads that each instantiate one WebAssembly module on a shared memory and,
 *   per generation, run the calls the caller posted to them, the caller waiting at a barrier
 *   (Atomics wait/notify): synchronous, for products split in row shares (the fitness operator, the
 *   eNTK factor passes' GEMMs).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { EntkError } from '../errors.js';
import type { WasmMemory, WasmModule } from './wasm-asm.js';

// ---------------------------------------------------------------------------------------------
// Message pools

/** URL of tsx's ESM register API (`tsx/esm/api`, import condition), resolved from `from`. */
function tsxApiUrl(from: string): string {
  try {
    return import.meta.resolve('tsx/esm/api');
  } catch {
    // Runtimes without import.meta.resolve (e.g. vitest's module runner): read tsx's exports map.
    const pkgFile = createRequire(from).resolve('tsx/package.json');
    const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as {
      exports: Record<string, { import?: { default?: string } | string }>;
    };
    const entry = pkg.exports['./esm/api']?.import;
    const rel = typeof entry === 'string' ? entry : entry?.default;
    if (!rel) throw new Error('cannot locate tsx/esm/api (is tsx installed?)');
    return pathToFileURL(path.join(path.dirname(pkgFile), rel)).href;
  }
}

/**
 * A worker running the module at `entry` (a file URL ending in .ts or .js). A .ts entry cannot be
 * given to Worker directly (Node resolves its format before any loader hook runs), so a one-line
 * bootstrap registers tsx in the worker and imports the entry.
 */
function spawnModuleWorker(entry: string): Worker {
  if (!/\.[cm]?ts$/.test(entry)) return new Worker(new URL(entry));
  const api = tsxApiUrl(entry);
  const code = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(code, { eval: true });
}

/** Replies every message worker may send besides its own: a failure. */
type ErrorReply = { type: 'error'; message: string };

/**
 * Post `request` to worker `w` and wait for the exchange to end: `onReply` sees every reply but
 * 'error' and calls `settle(null)` on success or `settle(error)` on failure; an 'error' reply, a
 * worker error or an exit (reported with `exitContext` appended) fail it. Listeners are removed
 * once it settles.
 */
function exchange<Reply extends { type: string }>(
  w: Worker,
  request: unknown,
  onReply: (m: Reply, settle: (e: Error | null) => void) => void,
  exitContext: string,
  name: string,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onMessage = (m: Reply | ErrorReply) => {
      if (m.type === 'error') settle(new Error(`${name} worker: ${(m as ErrorReply).message}`));
      else onReply(m as Reply, settle);
    };
    const onError = (e: Error) => settle(e);
    const onExit = (code: number) =>
      settle(new Error(`${name} worker exited with code ${code}${exitContext}`));
    const settle = (e: Error | null) => {
      w.off('message', onMessage);
      w.off('error', onError);
      w.off('exit', onExit);
      if (e) reject(e);
      else resolve();
    };
    w.on('message', onMessage);
    w.on('error', onError);
    w.on('exit', onExit);
    w.postMessage(request);
  });
}

/**
 * A fixed set of worker threads running one entry module; jobs run one after the other.
 * Protocol of a message worker: it answers `{type: 'init', ...}` with `{type: 'ready'}`, and a job
 * with any number of other replies ending in `{type: 'done', ...}`; any failure as {@link ErrorReply}.
 */
export class MessagePool<Job extends object, Reply extends { type: string }> {
  private queue: Promise<void> = Promise.resolve();
  private idle = true;
  private constructor(
    private readonly workers: Worker[],
    private readonly name: string,
  ) {}

  get size(): number {
    return this.workers.length;
  }

  /** Start `size` workers on `entry`, each sent `init` and awaited until it replies 'ready'. */
  static async start<J extends object, R extends { type: string }>(
    entry: string,
    size: number,
    init: object,
    name = 'entk',
  ): Promise<MessagePool<J, R>> {
    const workers = Array.from({ length: size }, () => spawnModuleWorker(entry));
    const pool = new MessagePool<J, R>(workers, name);
    try {
      await Promise.all(
        workers.map((w) =>
          exchange<{ type: string }>(
            w,
            { type: 'init', ...init },
            (m, settle) => {
              if (m.type === 'ready') settle(null);
            },
            ' during start-up',
            name,
          ),
        ),
      );
    } catch (error) {
      await pool.terminate();
      throw error;
    }
    for (const w of workers) w.unref();
    return pool;
  }

  /**
   * Run `job` on every worker; `onReply(k, reply)` sees worker k's replies ('done' included, last).
   * Resolves when every worker has sent 'done'; rejects (and the pool must be terminated) when a
   * worker fails or `onReply` throws. Concurrent calls queue; an idle pool posts the job
   * synchronously, so the workers start while the caller goes on.
   */
  run(job: Job, onReply: (worker: number, reply: Reply) => void): Promise<void> {
    const task = this.idle ? this.runNow(job, onReply) : this.queue.then(() => this.runNow(job, onReply));
    const settled = task.then(
      () => undefined,
      () => undefined,
    );
    this.queue = settled;
    this.idle = false;
    settled.then(() => {
      if (this.queue === settled) this.idle = true;
    });
    return task;
  }

  private async runNow(job: Job, onReply: (worker: number, reply: Reply) => void): Promise<void> {
    for (const w of this.workers) w.ref();
    try {
      await Promise.all(
        this.workers.map((w, k) =>
          exchange<Reply>(
            w,
            { type: 'job', ...job },
            (m, settle) => {
              try {
                onReply(k, m);
              } catch (e) {
                settle(e as Error);
                return;
              }
              if (m.type === 'done') settle(null);
            },
            '',
            this.name,
          ),
        ),
      );
    } finally {
      for (const w of this.workers) w.unref();
    }
  }

  async terminate(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Process-wide message pools by key (entry, size, init). */
const pools = new Map<string, Promise<MessagePool<object, { type: string }>>>();

/** The shared pool of `size` workers on `entry` with `init` (started on first use); `started` if this call started it. */
export async function sharedMessagePool<Job extends object, Reply extends { type: string }>(
  entry: string,
  size: number,
  init: object,
  name = 'entk',
): Promise<{ pool: MessagePool<Job, Reply>; started: boolean }> {
  const key = `${entry}|${size}|${JSON.stringify(init)}`;
  let promise = pools.get(key);
  const started = !promise;
  if (!promise) {
    promise = MessagePool.start(entry, size, init, name);
    pools.set(key, promise);
    promise.catch(() => pools.delete(key));
  }
  return { pool: (await promise) as unknown as MessagePool<Job, Reply>, started };
}

/** Terminate a shared pool after a failure (the next call starts a fresh one). */
export async function discardMessagePool(pool: MessagePool<object, { type: string }>): Promise<void> {
  for (const [key, promise] of pools) {
    if ((await promise.catch(() => null)) === pool) pools.delete(key);
  }
  await pool.terminate();
}

/** Terminate the shared message pools whose entry is `entry` (all when omitted); they restart on demand. */
export async function terminateMessagePools(entry?: string): Promise<void> {
  const matching = [...pools.entries()].filter(([key]) => entry === undefined || key.startsWith(`${entry}|`));
  for (const [key] of matching) pools.delete(key);
  await Promise.all(matching.map(([, p]) => p.then((pool) => pool.terminate()).catch(() => undefined)));
}

// ---------------------------------------------------------------------------------------------
// WebAssembly barrier threads

/** Float64 slots of one thread's call list: [count, (function index, argument count, arguments…)…]. */
const CALL_SLOTS = 128;
/** A thread that does not answer within this time is declared dead. */
const WASM_THREAD_TIMEOUT_MS = 120_000;

/**
 * Control words (Int32): 0 generation posted (−1: exit), 1 generation done, 2 started, 3 failed.
 * A failed call stores its message's length-prefixed bytes in the control buffer's tail.
 */
/** The message of a `readInto` that met the end of the file (threads and callers match on it). */
export const READ_ENDED_EARLY = 'readInto: the file ended early';

const WASM_THREAD_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, control, names, slots } = workerData;
const ex = new WebAssembly.Instance(module, { env: { mem: memory } }).exports;
const { readSync } = require('node:fs');
// Built-in call: fill memory [ptr, ptr + length) from file descriptor fd at byte position pos.
const builtins = {
  readInto(fd, ptr, length, pos) {
    for (let done = 0; done < length; ) {
      const got = readSync(fd, new Uint8Array(memory.buffer, ptr + done, length - done), 0, length - done, pos + done);
      if (got === 0) throw new Error(${JSON.stringify(READ_ENDED_EARLY)});
      done += got;
    }
  },
};
const fns = names.map((n) => ex[n] ?? builtins[n]);
const ctl = new Int32Array(control, 0, 4);
const args = new Float64Array(control, 16, slots);
const err = new Uint8Array(control, 16 + 8 * slots);
Atomics.store(ctl, 2, 1);
Atomics.notify(ctl, 2);
let seen = 0;
for (;;) {
  Atomics.wait(ctl, 0, seen);
  const gen = Atomics.load(ctl, 0);
  if (gen < 0) break;
  seen = gen;
  try {
    const count = args[0];
    let p = 1;
    for (let c = 0; c < count; c++) {
      const n = args[p + 1];
      fns[args[p]](...args.subarray(p + 2, p + 2 + n));
      p += 2 + n;
    }
  } catch (e) {
    const bytes = new TextEncoder().encode(String(e && e.stack || e)).subarray(0, err.length - 4);
    new DataView(err.buffer, err.byteOffset).setUint32(0, bytes.length, true);
    err.set(bytes, 4);
    Atomics.store(ctl, 3, 1);
  }
  Atomics.store(ctl, 1, gen);
  Atomics.notify(ctl, 1);
}
`;

/** One call of an exported function: its name and (numeric) arguments. */
export type WasmCall = readonly [name: string, ...args: number[]];

interface WasmThread {
  worker: Worker;
  ctl: Int32Array;
  args: Float64Array;
  err: Uint8Array;
}

const threadRegistry = new FinalizationRegistry<Worker[]>((workers) => {
  for (const w of workers) void w.terminate();
});

/**
 * `count` threads, each with its own instance of `module` on the shared `memory`, able to call the
 * exports listed in `names` and the built-in `readInto(fd, ptr, length, position)` (when listed:
 * fills memory [ptr, ptr + length) from an open file descriptor with `readSync`, so a thread can
 * read its share of a file and use it while it is in the cache). Per round: {@link post} a call list to some threads, do the caller's
 * share, then {@link wait}. A failed call (a trap) makes `wait` throw with the thread's message.
 */
export class WasmThreads {
  private threads: WasmThread[] = [];
  private readonly names: string[];
  private generation = 0;
  private posted: boolean[] = [];
  private disposed = false;

  constructor(
    module: WasmModule,
    memory: WasmMemory,
    count: number,
    names: readonly string[],
    private readonly label = 'WasmThreads',
  ) {
    this.names = [...names];
    const errBytes = 1024;
    for (let i = 0; i < count; i++) {
      const control = new SharedArrayBuffer(16 + 8 * CALL_SLOTS + errBytes);
      const worker = new Worker(WASM_THREAD_SOURCE, {
        eval: true,
        workerData: { module, memory, control, names: this.names, slots: CALL_SLOTS },
      });
      worker.unref();
      this.threads.push({
        worker,
        ctl: new Int32Array(control, 0, 4),
        args: new Float64Array(control, 16, CALL_SLOTS),
        err: new Uint8Array(control, 16 + 8 * CALL_SLOTS),
      });
    }
    this.posted = this.threads.map(() => false);
    threadRegistry.register(
      this,
      this.threads.map((t) => t.worker),
      this,
    );
  }

  /** Number of threads (besides the caller's). */
  get size(): number {
    return this.threads.length;
  }

  /** Start a round on thread `t`: it runs `calls` in order. At most one post per thread per round. */
  post(t: number, calls: readonly WasmCall[]): void {
    if (this.disposed) throw new EntkError(`${this.label}: used after dispose()`);
    const th = this.threads[t]!;
    if (this.posted[t]) throw new EntkError(`${this.label}: thread ${t} posted twice in one round`);
    const a = th.args;
    let p = 1;
    for (const [name, ...args] of calls) {
      const index = this.names.indexOf(name);
      if (index < 0) throw new EntkError(`${this.label}: '${name}' is not a thread export`);
      if (p + 2 + args.length > CALL_SLOTS) throw new EntkError(`${this.label}: call list too long`);
      a[p] = index;
      a[p + 1] = args.length;
      a.set(args, p + 2);
      p += 2 + args.length;
    }
    a[0] = calls.length;
    if (!this.posted.some((x) => x)) this.generation++;
    this.posted[t] = true;
    Atomics.store(th.ctl, 0, this.generation);
    Atomics.notify(th.ctl, 0);
  }

  /** Wait until every thread posted this round is done; throws if one failed or stopped answering. */
  wait(): void {
    const gen = this.generation;
    let failure: string | null = null;
    this.threads.forEach((th, t) => {
      if (!this.posted[t]) return;
      this.posted[t] = false;
      const start = Date.now();
      for (;;) {
        const done = Atomics.load(th.ctl, 1);
        if (done === gen) break;
        if (Date.now() - start > WASM_THREAD_TIMEOUT_MS) {
          this.dispose();
          throw new EntkError(`${this.label}: a worker thread stopped responding`);
        }
        Atomics.wait(th.ctl, 1, done, 1000);
      }
      if (Atomics.load(th.ctl, 3) !== 0) {
        Atomics.store(th.ctl, 3, 0);
        const n = new DataView(th.err.buffer, th.err.byteOffset).getUint32(0, true);
        failure ??= new TextDecoder().decode(th.err.slice(4, 4 + n));
      }
    });
    if (failure !== null) throw new EntkError(`${this.label}: a worker thread failed: ${failure}`);
  }

  /** Post `calls[t]` to thread t (empty lists skipped), run `own` on the caller's thread, wait. */
  round(calls: ReadonlyArray<readonly WasmCall[]>, own: () => void): void {
    calls.forEach((c, t) => {
      if (c.length > 0) this.post(t, c);
    });
    try {
      own();
    } finally {
      this.wait();
    }
  }

  /** Stop the threads (also done when the object is garbage collected). Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const th of this.threads) {
      Atomics.store(th.ctl, 0, -1);
      Atomics.notify(th.ctl, 0);
      void th.worker.terminate();
    }
    threadRegistry.unregister(this);
    this.threads = [];
  }
}
