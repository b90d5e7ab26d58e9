/**
 * Pieces the benchmark scripts share: the repository root, time formatting, the relative max
 * difference of two kernels, the start-of-run load check and machine record, float32 files for the
 * reference scripts, starting a Python reference process, and timing entk's Jacobian path.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { empiricalNtkFn } from '../src/kernel/index.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The Python the references run with unless a bench finds its own: ENTK_PYTHON, else Debian's. */
export const defaultPython = (): string => process.env.ENTK_PYTHON ?? '/usr/bin/python3';

/** Milliseconds as `850 ms` or `1.25 s`. */
export const fmt = (ms: number): string =>
  ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;

/** max |a − b| / max |b| over the elements of b. */
export function relMax(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let err = 0;
  let scale = 0;
  for (let e = 0; e < b.length; e++) {
    err = Math.max(err, Math.abs(a[e]! - b[e]!));
    scale = Math.max(scale, Math.abs(b[e]!));
  }
  return err / scale;
}

/** A flag value parser for positive integers; errors name the benchmark and the flag. */
export function positiveInt(bench: string): (v: string | undefined, flag: string) => number {
  return (v, flag) => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < 1)
      throw new Error(`bench ${bench}: ${flag} expects a positive integer, got ${v}`);
    return x;
  };
}

/**
 * The 1-minute load average at the start of a run; pushes a warning onto `summary` when it exceeds
 * half the cores (timings are then inflated; `note` may say what still holds).
 */
export function loadAtStart(summary: string[], note = ''): number[] {
  const load = os.loadavg();
  if (load[0]! > os.cpus().length * 0.5) {
    summary.push(
      `WARNING: load average ${load[0]!.toFixed(1)} on ${os.cpus().length} cores at start: timings are inflated${note}`,
    );
  }
  return load;
}

/** The machine record of a result JSON. */
export function machineInfo(load: number[], backend: unknown, extra: Record<string, unknown> = {}) {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    loadAverageAtStart: load,
    node: process.versions.node,
    // glibc tunables of entk's process (the user's; none by default) and of the references'.
    glibcTunables: process.env.GLIBC_TUNABLES ?? null,
    referenceGlibcTunables: referenceEnv(process.env).GLIBC_TUNABLES ?? null,
    backend,
    ...extra,
  };
}

/** Write float32 values raw (little-endian) as dir/name; the {file, shape} record for a meta.json. */
export async function writeBin(
  dir: string,
  name: string,
  data: Float32Array,
  shape: number[],
): Promise<{ file: string; shape: number[] }> {
  await fs.writeFile(path.join(dir, name), Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  return { file: name, shape };
}

/** A raw float32 file as a Float32Array, or null when it cannot be read. */
export async function readBin(file: string): Promise<Float32Array | null> {
  const b = await fs.readFile(file).catch(() => null);
  return b ? new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) : null;
}

/**
 * The environment of a reference process, set for its best run: glibc's malloc puts its large
 * allocations on transparent huge pages (tunable glibc.malloc.hugetlb=1, glibc ≥ 2.35; ignored
 * elsewhere). Measured on the benchmark VM (2026-12-05, interleaved, bench/measured/ab-2026-12-05-s11-hugepages.txt): functorch's `cnn` contraction
 * 2.26–2.41 s with it against 2.98–3.02 s without, NumPy's `mlp` reference 0.12 s against 0.23–0.25 s.
 * entk's own process keeps the environment it was started with (a user's default): on the same VM
 * the tunable made its fresh-output `cnn` runs slower (222–335 ms against 213–268 ms), huge pages
 * freed by one call being slow to touch again in the next (README, Performance).
 */
export function referenceEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (env.GLIBC_TUNABLES?.includes('glibc.malloc.hugetlb')) return env;
  const tunables = env.GLIBC_TUNABLES
    ? `${env.GLIBC_TUNABLES}:glibc.malloc.hugetlb=1`
    : 'glibc.malloc.hugetlb=1';
  return { ...env, GLIBC_TUNABLES: tunables };
}

/** The arguments every reference script takes (bench/reference/common.py parse_args): inputs, threads, runs, K's file. */
export function referenceArgs(dir: string, threads: number, repeats: number, kFile: string): string[] {
  return ['--dir', dir, '--threads', String(threads), '--repeats', String(repeats), '--save-k', kFile];
}

/**
 * Run `python script ...args` with stdout collected and stderr passed through, in referenceEnv;
 * with `cleanBlas` (the default) OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from its
 * environment, so that OpenBLAS picks its kernels for the machine itself.
 */
export function runPython(
  script: string,
  args: string[],
  options: { python?: string; cleanBlas?: boolean } = {},
): Promise<{ code: number | null; stdout: string }> {
  const env = { ...referenceEnv(process.env) };
  if (options.cleanBlas ?? true) {
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(options.python ?? defaultPython(), [script, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env,
    });
    let text = '';
    child.stdout.on('data', (chunk) => {
      text += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: text }));
  });
}

/**
 * The whole-model Jacobian path at the first nj of the points x ([·, width] row-major), after a
 * 2-point warm-up: its time, that time extrapolated to n points (features ∝ N, contraction ∝ N²,
 * the rest ∝ N) and its kernel.
 */
export async function timeJacobian(
  model: tf.LayersModel,
  x: Float32Array,
  width: number,
  nj: number,
  n: number,
  repeats = 1,
) {
  const ntk = empiricalNtkFn(model, { implementation: 'jacobian', progress: false });
  const warm = tf.tensor2d(x.subarray(0, 2 * width), [2, width]);
  await ntk(warm);
  warm.dispose();
  const xt = tf.tensor2d(x.subarray(0, nj * width), [nj, width]);
  const s = n / nj;
  // Best of `repeats` runs, by the extrapolated time (the structured path is timed best-of too).
  let best: { ms: number; timings: Record<string, number>; extrapolatedMs: number; k: Float32Array } | null =
    null;
  const runsExtrapolatedMs: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    const k = await ntk(xt);
    const ms = performance.now() - t0;
    const features = k.timings.features!;
    const contraction = k.timings.contraction!;
    const extrapolatedMs = features * s + contraction * s * s + (ms - features - contraction) * s;
    runsExtrapolatedMs.push(extrapolatedMs);
    if (!best || extrapolatedMs < best.extrapolatedMs) {
      best = { ms, timings: k.timings, extrapolatedMs, k: k.data as Float32Array };
    }
  }
  xt.dispose();
  return { n: nj, ...best!, runsExtrapolatedMs };
}
