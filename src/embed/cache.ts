/**
 * On-disk feature cache. One file per (backbone, settings, inputs):
 *   <cacheDir>/features/<key>.feat
 * key = sha256 of { format, modelId, revision, dtype, task, pooling, normalize, inputsHash }.
 * File layout: 8-byte magic "ENTKFT01", uint32 LE header length, UTF-8 JSON header
 * ({ key, n, dim, sha256 of the data, provenance }), zero padding to a multiple of 4, then the
 * float32 LE matrix [n, dim] row-major. Written atomically (writeFileAtomic); a file whose magic,
 * header, length or checksum does not match is reported as corrupt and recomputed.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { bytesOf, fromBytes } from '../io/index.js';
import { writeFileAtomic } from '../util/index.js';

const MAGIC = 'ENTKFT01';
/** Bump when the meaning of cached features changes (invalidates every entry). */
export const FEATURE_CACHE_FORMAT = 1;

/** Everything that determines a cached feature matrix. */
export interface FeatureKeyParts {
  modelId: string;
  revision: string;
  dtype: string;
  task: 'text' | 'image';
  pooling: string;
  normalize: boolean;
  /** sha256 of the inputs (texts or image bytes), in order. */
  inputsHash: string;
}

/** The cache key (hex sha256) of a feature matrix. */
export function featureCacheKey(parts: FeatureKeyParts): string {
  const canonical = JSON.stringify([
    FEATURE_CACHE_FORMAT,
    parts.modelId,
    parts.revision,
    parts.dtype,
    parts.task,
    parts.pooling,
    parts.normalize,
    parts.inputsHash,
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}

/** sha256 (hex) of a list of texts: each text length-prefixed, so boundaries are unambiguous. */
export function hashTexts(texts: readonly string[]): string {
  const hash = createHash('sha256');
  hash.update(`texts:${texts.length}\0`);
  for (const t of texts) {
    const bytes = Buffer.from(t, 'utf8');
    hash.update(`${bytes.length}\0`);
    hash.update(bytes);
  }
  return hash.digest('hex');
}

/** A cached matrix as read from disk. */
export interface CachedFeatures {
  data: Float32Array;
  n: number;
  dim: number;
  header: Record<string, unknown>;
}

/** Result of a cache lookup. */
export type CacheLookup =
  | { status: 'hit'; file: string; features: CachedFeatures }
  | { status: 'miss'; file: string }
  | { status: 'corrupt'; file: string; problem: string };

/** Path of the cache file for `key` under `cacheDir`. */
export function featureCacheFile(cacheDir: string, key: string): string {
  return path.join(cacheDir, 'features', `${key}.feat`);
}

/** Look up `key`; never throws for a missing or damaged entry (reported as miss / corrupt). */
export async function readCachedFeatures(cacheDir: string, key: string): Promise<CacheLookup> {
  const file = featureCacheFile(cacheDir, key);
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch {
    return { status: 'miss', file };
  }
  const corrupt = (problem: string): CacheLookup => ({ status: 'corrupt', file, problem });
  if (bytes.length < 12 || bytes.toString('latin1', 0, 8) !== MAGIC) return corrupt('bad magic');
  const headerLength = bytes.readUInt32LE(8);
  if (12 + headerLength > bytes.length) return corrupt('truncated header');
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(bytes.toString('utf8', 12, 12 + headerLength));
  } catch {
    return corrupt('unreadable header');
  }
  const n = header.n;
  const dim = header.dim;
  if (header.key !== key || !Number.isSafeInteger(n) || !Number.isSafeInteger(dim))
    return corrupt('header mismatch');
  const offset = align4(12 + headerLength);
  const byteLength = (n as number) * (dim as number) * 4;
  if (bytes.length !== offset + byteLength)
    return corrupt(`expected ${offset + byteLength} bytes, found ${bytes.length}`);
  const payload = bytes.subarray(offset);
  if (createHash('sha256').update(payload).digest('hex') !== header.sha256)
    return corrupt('checksum mismatch');
  const data = fromBytes('float32', payload).slice(); // its own buffer, not a view of the file's
  return { status: 'hit', file, features: { data, n: n as number, dim: dim as number, header } };
}

function align4(x: number): number {
  return (x + 3) & ~3;
}

/** Store a matrix [n, dim] under `key` atomically; `provenance` is kept in the header. */
export async function writeCachedFeatures(
  cacheDir: string,
  key: string,
  data: Float32Array,
  n: number,
  dim: number,
  provenance: Record<string, unknown>,
): Promise<string> {
  const file = featureCacheFile(cacheDir, key);
  const payload = bytesOf(data.subarray(0, n * dim));
  const header = Buffer.from(
    JSON.stringify({
      key,
      n,
      dim,
      sha256: createHash('sha256').update(payload).digest('hex'),
      ...provenance,
      createdAt: new Date().toISOString(),
    }),
    'utf8',
  );
  const offset = align4(12 + header.length);
  const out = Buffer.alloc(offset + payload.length);
  out.write(MAGIC, 0, 'latin1');
  out.writeUInt32LE(header.length, 8);
  header.copy(out, 12);
  out.set(payload, offset);
  await writeFileAtomic(file, out);
  return file;
}
