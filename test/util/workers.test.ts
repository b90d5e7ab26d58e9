// The one worker-thread module (src/util/workers.ts): barrier threads on a shared WebAssembly memory
// and message pools, checked on their own: results, failures, and that shutdown leaves nothing
// running.
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  add,
  compileModule,
  f32store,
  funcBody,
  get,
  geU,
  I32,
  i32,
  incr,
  MessagePool,
  moduleBytes,
  mul,
  set,
  sharedMessagePool,
  terminateMessagePools,
  WasmThreads,
  wasmApi,
  whileNot,
} from '../../src/util/index.js';
import { runProcess } from './process.js';

/** fill(ptr, n, v): f32[ptr + 4i] = v + i for i < n (params are i32: v is converted). */
function fillModule() {
  // locals: 0 ptr, 1 n, 2 v (params), 3 i
  const body = funcBody(
    [[1, I32]],
    [
      ...i32(0),
      ...set(3),
      ...whileNot(
        [...get(3), ...get(1), ...geU],
        [
          ...get(0),
          ...get(3),
          ...i32(4),
          ...mul,
          ...add,
          ...get(2),
          ...get(3),
          ...add,
          0xb2, // f32.convert_i32_s
          ...f32store(0),
          ...incr(3, 1),
        ],
      ),
    ],
  );
  return compileModule(moduleBytes([{ name: 'fill', params: 3, body }], true));
}

const dir = mkdtempSync(path.join(tmpdir(), 'entk-workers-'));
afterAll(async () => {
  await terminateMessagePools();
  rmSync(dir, { recursive: true, force: true });
});

describe('WasmThreads', () => {
  const module = fillModule();
  it.skipIf(!module)(
    'runs each thread its posted calls on the shared memory, one round after another',
    () => {
      const memory = new wasmApi!.Memory({ initial: 1, maximum: 16, shared: true });
      const threads = new WasmThreads(module!, memory, 2, ['fill']);
      const heap = new Float32Array(memory.buffer, 0, 300);
      for (let round = 0; round < 3; round++) {
        threads.round(
          [
            [['fill', 0, 100, 10 * round]],
            [
              ['fill', 400, 50, 1000 + round],
              ['fill', 600, 50, 2000 + round],
            ],
          ],
          () => heap.fill(-1, 200, 300),
        );
        for (let i = 0; i < 100; i++) expect(heap[i]).toBe(10 * round + i);
        for (let i = 0; i < 50; i++) expect(heap[100 + i]).toBe(1000 + round + i);
        for (let i = 0; i < 50; i++) expect(heap[150 + i]).toBe(2000 + round + i);
        expect(heap[250]).toBe(-1);
      }
      threads.dispose();
      threads.dispose(); // idempotent
      expect(() => threads.post(0, [['fill', 0, 1, 0]])).toThrow(/after dispose/);
    },
  );

  it.skipIf(!module)(
    'a trap in a thread makes wait() throw with the thread’s message; names are checked',
    () => {
      const memory = new wasmApi!.Memory({ initial: 1, maximum: 1, shared: true });
      const threads = new WasmThreads(module!, memory, 1, ['fill'], 'Test');
      expect(() => threads.post(0, [['nope', 1]])).toThrow(/'nope' is not a thread export/);
      threads.post(0, [['fill', 65536 - 8, 4, 0]]); // writes past the 64 KiB page
      expect(() => threads.wait()).toThrow(/Test: a worker thread failed: .*out of bounds/i);
      // the thread survives a trap and serves the next round
      threads.round([[['fill', 0, 4, 7]]], () => undefined);
      expect(Array.from(new Float32Array(memory.buffer, 0, 4))).toEqual([7, 8, 9, 10]);
      threads.dispose();
    },
  );

  it.skipIf(!module)('the built-in readInto fills shared memory from a file; a short file fails', () => {
    const file = path.join(dir, 'bytes.bin');
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) % 251);
    writeFileSync(file, bytes);
    const memory = new wasmApi!.Memory({ initial: 1, maximum: 4, shared: true });
    memory.grow(1); // a grown shared memory: the thread sees the new length
    const threads = new WasmThreads(module!, memory, 2, ['fill', 'readInto'], 'Test');
    const fd = openSync(file, 'r');
    try {
      threads.round([[['readInto', fd, 70000, 600, 400]], [['readInto', fd, 100, 300, 0]]], () => undefined);
      expect(Array.from(new Uint8Array(memory.buffer, 70000, 600))).toEqual(Array.from(bytes.subarray(400)));
      expect(Array.from(new Uint8Array(memory.buffer, 100, 300))).toEqual(Array.from(bytes.subarray(0, 300)));
      threads.post(0, [['readInto', fd, 0, 20, 990]]); // 10 bytes left
      expect(() => threads.wait()).toThrow(/Test: a worker thread failed: .*ended early/);
    } finally {
      closeSync(fd);
      threads.dispose();
    }
  });
});

describe('MessagePool', () => {
  // A worker speaking the pool's protocol: init → ready; job {n} → n 'item' replies, then 'done'.
  const entry = path.join(dir, 'echo-worker.mjs');
  writeFileSync(
    entry,
    `import { parentPort } from 'node:worker_threads';
parentPort.on('message', (m) => {
  if (m.type === 'init') return parentPort.postMessage({ type: 'ready' });
  if (m.fail) return parentPort.postMessage({ type: 'error', message: 'asked to fail' });
  for (let i = 0; i < m.n; i++) parentPort.postMessage({ type: 'item', value: m.base + i });
  parentPort.postMessage({ type: 'done', sum: m.base * m.n });
});
`,
  );
  const url = pathToFileURL(entry).href;
  type Job = { n: number; base: number; fail?: boolean };
  type Reply = { type: 'item'; value: number } | { type: 'done'; sum: number };

  it('runs a job on every worker, queues concurrent jobs, and is shared by key', async () => {
    const { pool, started } = await sharedMessagePool<Job, Reply>(url, 2, { tag: 1 });
    expect(started).toBe(true);
    expect(pool.size).toBe(2);
    const again = await sharedMessagePool<Job, Reply>(url, 2, { tag: 1 });
    expect(again.started).toBe(false);
    expect(again.pool).toBe(pool);
    const seen: Array<Array<number>> = [[], []];
    const done: number[] = [];
    const order: string[] = [];
    const a = pool.run({ n: 3, base: 10 }, (k, m) => {
      if (m.type === 'item') seen[k]!.push(m.value);
      else done.push(m.sum);
      order.push('a');
    });
    const b = pool.run({ n: 1, base: 0 }, () => order.push('b'));
    await Promise.all([a, b]);
    expect(seen).toEqual([
      [10, 11, 12],
      [10, 11, 12],
    ]);
    expect(done).toEqual([30, 30]);
    expect(order.indexOf('b')).toBe(order.length - 4); // b's 4 replies all came after a's 8
  });

  it('an error reply or a throwing callback rejects the job', async () => {
    const pool = await MessagePool.start<Job, Reply>(url, 1, {}, 'Echo');
    await expect(pool.run({ n: 1, base: 0, fail: true }, () => undefined)).rejects.toThrow(
      'Echo worker: asked to fail',
    );
    await expect(
      pool.run({ n: 1, base: 0 }, () => {
        throw new Error('callback failed');
      }),
    ).rejects.toThrow('callback failed');
    await pool.terminate();
  });

  it('shutdown leaves no thread running: a process using both kinds exits by itself', async () => {
    const script = path.join(dir, 'exit.mts');
    const util = pathToFileURL(path.resolve('src/util/index.ts')).href;
    writeFileSync(
      script,
      `import { sharedMessagePool, terminateMessagePools, WasmThreads, wasmApi, compileModule, moduleBytes, funcBody } from ${JSON.stringify(util)};
const module = compileModule(moduleBytes([{ name: 'nop', params: 0, body: funcBody([], []) }], true));
const memory = new wasmApi.Memory({ initial: 1, maximum: 1, shared: true });
const threads = new WasmThreads(module, memory, 2, ['nop']);
threads.round([[['nop']], [['nop']]], () => undefined);
const { pool } = await sharedMessagePool(${JSON.stringify(url)}, 2, {});
await pool.run({ n: 2, base: 1 }, () => undefined);
if (process.argv[2] === 'shutdown') {
  threads.dispose();
  await terminateMessagePools();
}
console.log('ok');
`,
    );
    for (const mode of ['shutdown', 'idle']) {
      const r = await runProcess(process.execPath, ['--import', 'tsx', script, mode], { timeoutMs: 60_000 });
      expect(r.signal, `${mode}: ${r.stderr}`).toBeNull();
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe('ok');
    }
  }, 90_000);
});
