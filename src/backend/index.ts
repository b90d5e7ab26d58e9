/**
 * Choosing and initialising the TensorFlow.js backend.
 *
 * Order of preference for `auto`: `tensorflow` (@tensorflow/tfjs-node, native, when it is
 * installed and loads) > `wasm` (@tensorflow/tfjs-backend-wasm with SIMD, the working default on
 * machines where tfjs-node cannot install) > `cpu` (pure JS, 30–50× slower, last resort with a
 * warning). An explicit request (argument or ENTK_BACKEND) that cannot load is an error, never a
 * silent fallback.
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { BackendUnavailableError, InvalidArgumentError } from '../errors.js';
import './quiet.js';
import { installWasmKernelFixes } from './wasm-kernels.js';

export { maxPoolArgmax, type PoolGeometry, poolGeometry, replicatedMaxPoolGradient } from './max-pool.js';
export { assertGradientsTrusted, untrustedOps } from './trust.js';
export { installWasmKernelFixes };

export const BACKEND_NAMES = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendRequest = (typeof BACKEND_NAMES)[number];
export type BackendName = Exclude<BackendRequest, 'auto'>;

export interface BackendInfo {
  /** The active tfjs backend. */
  backend: BackendName;
  /** What was asked for (argument, ENTK_BACKEND, or 'auto'). */
  requested: BackendRequest;
  /** WebAssembly SIMD in use (wasm backend only). */
  simd: boolean;
  /** WebAssembly multi-threading in use (wasm backend only; off in Node). */
  threads: boolean;
  versions: { tfjs: string; node: string; entk: string };
}

const require = createRequire(import.meta.url);

/** The version of entk itself (from package.json). */
export const ENTK_VERSION: string = (require('../../package.json') as { version: string }).version;

let active: BackendInfo | null = null;

function parseRequest(value: string, argument: string): BackendRequest {
  const normalized = value === 'node' ? 'tensorflow' : value;
  if (!(BACKEND_NAMES as readonly string[]).includes(normalized)) {
    throw new InvalidArgumentError(argument, value, `one of ${BACKEND_NAMES.join(', ')}`);
  }
  return normalized as BackendRequest;
}

async function tryLoad(name: BackendName): Promise<string | null> {
  try {
    if (name === 'tensorflow') {
      // Optional dependency: absent on machines where its install script cannot download libtensorflow.
      await import('@tensorflow/tfjs-node' as string);
    } else if (name === 'wasm') {
      await import('@tensorflow/tfjs-backend-wasm');
    }
    const ok = await tf.setBackend(name);
    if (!ok) return `tf.setBackend('${name}') returned false`;
    await tf.ready();
    return null;
  } catch (error) {
    return (error as Error).message.split('\n')[0] ?? String(error);
  }
}

/**
 * Initialise a backend (idempotent for the same request). `requested` defaults to the
 * ENTK_BACKEND environment variable, then 'auto'.
 */
export async function initBackend(requested?: string): Promise<BackendInfo> {
  const fromEnv = process.env.ENTK_BACKEND;
  const request =
    requested != null
      ? parseRequest(requested, '--backend')
      : fromEnv
        ? parseRequest(fromEnv, 'ENTK_BACKEND')
        : 'auto';
  if (active && (request === 'auto' || request === active.backend)) return active;

  let chosen: BackendName;
  if (request === 'auto') {
    const failures: string[] = [];
    let found: BackendName | null = null;
    for (const candidate of ['tensorflow', 'wasm', 'cpu'] as const) {
      const failure = await tryLoad(candidate);
      if (failure == null) {
        found = candidate;
        break;
      }
      failures.push(`${candidate}: ${failure}`);
    }
    if (!found) throw new BackendUnavailableError(`no tfjs backend could be loaded (${failures.join('; ')})`);
    if (found === 'cpu') {
      process.emitWarning('entk: falling back to the slow pure-JS cpu backend', { code: 'ENTK_CPU_BACKEND' });
    }
    chosen = found;
  } else {
    const failure = await tryLoad(request);
    if (failure != null) {
      const hint =
        request === 'tensorflow'
          ? ' (install @tensorflow/tfjs-node, or use --backend wasm)'
          : request === 'wasm'
            ? ' (is @tensorflow/tfjs-backend-wasm installed?)'
            : '';
      throw new BackendUnavailableError(`backend '${request}' cannot be loaded: ${failure}${hint}`);
    }
    chosen = request;
  }
  const isWasm = chosen === 'wasm';
  // Repairs to wasm kernels (slow transposed matmuls, wrong max-pool gradients, missing conv-filter,
  // depthwise and segment-sum gradients, 'same' convolutions whose padding would be negative): see
  // ./wasm-kernels.ts; and the gradient fixes of ./gradients.ts on every backend.
  installWasmKernelFixes();
  active = {
    backend: chosen,
    requested: request,
    simd: isWasm && tf.env().getBool('WASM_HAS_SIMD_SUPPORT'),
    threads: isWasm && tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT'),
    versions: { tfjs: tf.version.tfjs, node: process.versions.node, entk: ENTK_VERSION },
  };
  return active;
}

/** The active backend's description, or null before initBackend. */
export function backendInfo(): BackendInfo | null {
  return active;
}
