/**
 * Byte-level plumbing shared by the array formats: a writer that counts, hashes (sha256) and
 * chunks what goes into an atomically streamed file, a sequential reader that hashes what it
 * reads and fills typed arrays in place (so a 1.6 GB kernel is never copied twice), and CRC-32.
 */
import { createHash, type Hash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as zlib from 'node:zlib';
import { CorruptFileError, InvalidArgumentError } from '../errors.js';
import { streamFileAtomic } from '../util/index.js';
import {
  type ArraySpec,
  allocate,
  assertLittleEndianHost,
  assertNdArray,
  assertShape,
  byteSwap,
  bytesOf,
  DTYPE_INFO,
  DTYPES,
  isDType,
  matchesDType,
  type NdArray,
  numElements,
  type TypedArray,
  type TypedArrayOf,
} from './dtypes.js';

/** Largest single write/read handed to the OS (Linux caps one write(2) at ~2 GiB). */
export const IO_CHUNK_BYTES = 64 * 1024 * 1024;

/** What a writer reports about the file it produced. */
export interface WrittenFile {
  /** Path written. */
  file: string;
  /** File size in bytes. */
  bytes: number;
  /** sha256 of the whole file, lowercase hex (what `sha256sum <file>` prints). */
  sha256: string;
}

/** Counts and hashes bytes on their way to a file, handing the OS bounded chunks. */
export class HashingWriter {
  private readonly hash: Hash = createHash('sha256');
  /** Bytes written so far. */
  position = 0;
  /** Called with every piece written (e.g. to compute a ZIP member's CRC-32). */
  onWrite: ((bytes: Uint8Array) => void) | undefined;
  constructor(private readonly sink: (chunk: Uint8Array) => Promise<void>) {}

  /** Write `bytes` (any length; split into IO_CHUNK_BYTES pieces). */
  async write(bytes: Uint8Array): Promise<void> {
    for (let o = 0; o < bytes.byteLength; o += IO_CHUNK_BYTES) {
      const piece = bytes.subarray(o, Math.min(bytes.byteLength, o + IO_CHUNK_BYTES));
      this.hash.update(piece);
      this.onWrite?.(piece);
      await this.sink(piece);
      this.position += piece.byteLength;
    }
  }

  /** The sha256 of everything written (call once, at the end). */
  digest(): string {
    return this.hash.digest('hex');
  }
}

/**
 * Stream a file atomically through a HashingWriter: the file appears under its name only when
 * `produce` resolves; returns its size and sha256.
 */
export async function writeHashedFile(
  file: string,
  produce: (writer: HashingWriter) => Promise<void>,
): Promise<WrittenFile> {
  let result: WrittenFile | undefined;
  await streamFileAtomic(file, async (write) => {
    const writer = new HashingWriter(write);
    await produce(writer);
    result = { file, bytes: writer.position, sha256: writer.digest() };
  });
  return result!;
}

/**
 * Reads a file front to back, hashing every byte it passes (when asked), with random-access reads
 * (not hashed) for formats that keep their directory at the end (ZIP).
 */
export class SequentialReader {
  private readonly hash: Hash | undefined;
  /** Next byte to read. */
  position = 0;
  /** Called with every piece read sequentially (e.g. to compute a ZIP member's CRC-32). */
  onRead: ((bytes: Uint8Array) => void) | undefined;

  private constructor(
    readonly file: string,
    private readonly handle: fs.FileHandle,
    /** File size in bytes. */
    readonly size: number,
    hash: boolean,
  ) {
    this.hash = hash ? createHash('sha256') : undefined;
  }

  /** Open `file`; with `hash`, every byte read sequentially feeds a sha256. */
  static async open(file: string, options: { hash?: boolean } = {}): Promise<SequentialReader> {
    const handle = await fs.open(file, 'r').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') throw new InvalidArgumentError('file', file, 'an existing file');
      throw error;
    });
    const { size } = await handle.stat();
    return new SequentialReader(file, handle, size, Boolean(options.hash));
  }

  /** Bytes left after the current position. */
  get remaining(): number {
    return this.size - this.position;
  }

  /** Fill `target` with the next `target.byteLength` bytes; `what` names them in the error on EOF. */
  async readInto(target: Uint8Array, what = 'data'): Promise<void> {
    if (target.byteLength > this.remaining) {
      throw new CorruptFileError(
        this.file,
        `truncated: ${what} needs ${target.byteLength} bytes at offset ${this.position}, only ${this.remaining} remain`,
      );
    }
    let done = 0;
    while (done < target.byteLength) {
      const want = Math.min(IO_CHUNK_BYTES, target.byteLength - done);
      const { bytesRead } = await this.handle.read(target, done, want, this.position);
      if (bytesRead === 0) throw new CorruptFileError(this.file, `truncated while reading ${what}`);
      const piece = target.subarray(done, done + bytesRead);
      this.hash?.update(piece);
      this.onRead?.(piece);
      done += bytesRead;
      this.position += bytesRead;
    }
  }

  /** Read the next `n` bytes into a new buffer. */
  async read(n: number, what = 'data'): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    await this.readInto(out, what);
    return out;
  }

  /** Advance to `offset` (reading through, so the hash still covers every byte). */
  async skipTo(offset: number): Promise<void> {
    if (offset < this.position) {
      throw new CorruptFileError(this.file, `overlapping sections at offset ${offset}`);
    }
    if (offset > this.size)
      throw new CorruptFileError(this.file, `truncated: offset ${offset} is past the end`);
    if (!this.hash) {
      this.position = offset;
      return;
    }
    const scratch = new Uint8Array(Math.min(IO_CHUNK_BYTES, offset - this.position));
    while (this.position < offset) {
      await this.readInto(scratch.subarray(0, Math.min(scratch.byteLength, offset - this.position)));
    }
  }

  /** Random-access read of `n` bytes at `offset` (does not move the position, not hashed). */
  async readAt(offset: number, n: number, what = 'data'): Promise<Uint8Array> {
    if (offset < 0 || offset + n > this.size) {
      throw new CorruptFileError(this.file, `truncated: ${what} at offset ${offset} (+${n}) is past the end`);
    }
    const out = new Uint8Array(n);
    let done = 0;
    while (done < n) {
      const { bytesRead } = await this.handle.read(
        out,
        done,
        Math.min(IO_CHUNK_BYTES, n - done),
        offset + done,
      );
      if (bytesRead === 0) throw new CorruptFileError(this.file, `truncated while reading ${what}`);
      done += bytesRead;
    }
    return out;
  }

  /** Read to the end and return the sha256 of the whole file (requires `hash` at open). */
  async finish(): Promise<string | undefined> {
    if (!this.hash) return undefined;
    await this.skipTo(this.size);
    return this.hash.digest('hex');
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** sha256 of a whole file, lowercase hex (streams; constant memory). */
export async function sha256File(file: string): Promise<string> {
  const reader = await SequentialReader.open(file, { hash: true });
  try {
    return (await reader.finish())!;
  } finally {
    await reader.close();
  }
}

/** Throw a CorruptFileError unless the file's hash equals `expected`. */
export function checkHash(file: string, actual: string | undefined, expected: string | undefined): void {
  if (expected === undefined) return;
  if (actual !== expected.toLowerCase()) {
    throw new CorruptFileError(
      file,
      `sha256 mismatch: the file hashes to ${actual}, the manifest says ${expected}`,
    );
  }
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (ZIP/PNG polynomial) of `bytes`, continuing from `previous` (default 0). */
export function crc32(bytes: Uint8Array, previous = 0): number {
  const native = (zlib as unknown as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
  if (native) {
    let crc = previous >>> 0;
    for (let o = 0; o < bytes.byteLength; o += IO_CHUNK_BYTES) {
      crc = native(bytes.subarray(o, Math.min(bytes.byteLength, o + IO_CHUNK_BYTES)), crc);
    }
    return crc >>> 0;
  }
  return crc32Reference(bytes, previous);
}

/** Pure-JS CRC-32 (the reference the tests compare the native one against). */
export function crc32Reference(bytes: Uint8Array, previous = 0): number {
  let c = ~previous >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * Produces an array's elements in C order, in chunks of any size: call `write` with consecutive
 * pieces (typed arrays of the array's dtype) until all `prod(shape)` elements are written.
 */
export type ArrayProducer = (write: (chunk: TypedArray) => Promise<void>) => Promise<void>;

/** The elements of an array: all at once, or a producer that streams them. */
export type ArraySource = TypedArray | ArrayProducer;

/** A named array to write into a multi-array file (npz, safetensors). */
export interface ArrayEntry extends ArraySpec {
  /** Name of the array in the file. */
  name: string;
  /** Its elements (C order): a typed array of `dtype`, or a producer streaming them. */
  data: ArraySource;
}

/**
 * The arrays of a multi-array file as a new list of entries (a record in key order), checked: each
 * name passes `nameOk` (else an error naming `argument`, expecting `expectedName`) and is used once,
 * each dtype is known and each shape valid.
 */
export function checkedEntries(
  arrays: Record<string, NdArray> | ArrayEntry[],
  argument: string,
  nameOk: (name: string) => boolean,
  expectedName: string,
): ArrayEntry[] {
  const entries: ArrayEntry[] = Array.isArray(arrays)
    ? [...arrays]
    : Object.entries(arrays).map(([name, a]) => {
        assertNdArray(a, name);
        return { name, dtype: a.dtype, shape: a.shape, data: a.data };
      });
  const seen = new Set<string>();
  for (const e of entries) {
    if (typeof e.name !== 'string' || !nameOk(e.name)) {
      throw new InvalidArgumentError(argument, e.name, expectedName);
    }
    if (seen.has(e.name)) throw new InvalidArgumentError(argument, e.name, 'a name used only once');
    seen.add(e.name);
    if (!isDType(e.dtype))
      throw new InvalidArgumentError(`${e.name}.dtype`, e.dtype, `one of ${DTYPES.join(', ')}`);
    assertShape(e.shape, `${e.name}.shape`);
  }
  return entries;
}

/**
 * Write the elements of an array of `spec` through `writer`, checking that every chunk has the
 * right dtype and that exactly `prod(spec.shape)` elements arrive. `argument` names the array in
 * errors.
 */
export async function writeArrayData(
  writer: HashingWriter,
  spec: ArraySpec,
  source: ArraySource,
  argument = 'array',
): Promise<void> {
  assertLittleEndianHost();
  const expected = numElements(spec.shape);
  let written = 0;
  const write = async (chunk: TypedArray) => {
    if (!ArrayBuffer.isView(chunk) || !matchesDType(chunk, spec.dtype)) {
      throw new InvalidArgumentError(
        `${argument} chunk`,
        chunk,
        `a ${DTYPE_INFO[spec.dtype].ctor.name} for dtype ${spec.dtype}`,
      );
    }
    if (written + chunk.length > expected) {
      throw new InvalidArgumentError(
        `${argument} chunk`,
        chunk,
        `at most ${expected - written} more elements (shape [${spec.shape.join(', ')}])`,
      );
    }
    await writer.write(bytesOf(chunk));
    written += chunk.length;
  };
  if (typeof source === 'function') await source(write);
  else await write(source);
  if (written !== expected) {
    throw new InvalidArgumentError(
      argument,
      `${written} elements`,
      `${expected} elements for shape [${spec.shape.join(', ')}]`,
    );
  }
}

/**
 * Read the elements of an array of `spec` from the reader's current position into a new typed
 * array (read in place: no second copy). `swap` converts big-endian data.
 */
export async function readArrayData<D extends ArraySpec['dtype']>(
  reader: SequentialReader,
  spec: { dtype: D; shape: number[] },
  swap = false,
  what = 'array data',
): Promise<TypedArrayOf<D>> {
  assertLittleEndianHost();
  const n = numElements(spec.shape);
  const bytes = n * DTYPE_INFO[spec.dtype].size;
  if (bytes > reader.remaining) {
    throw new CorruptFileError(
      reader.file,
      `truncated: ${what} of shape [${spec.shape.join(', ')}] ${spec.dtype} needs ${bytes} bytes, only ${reader.remaining} remain`,
    );
  }
  const data = allocate(spec.dtype, n);
  const view = bytesOf(data);
  await reader.readInto(view, what);
  if (swap) byteSwap(view, DTYPE_INFO[spec.dtype].size);
  return data;
}
