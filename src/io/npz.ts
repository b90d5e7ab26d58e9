/**
 * NumPy `.npz` archives: an uncompressed ZIP ("stored", method 0) of `<name>.npy` members, as
 * `numpy.savez` writes them and `numpy.load` reads them.
 *
 * ZIP details (PKWARE APPNOTE 6.3): every member gets a local header, its bytes and an entry in the
 * central directory; CRC-32 of each member is checked on reading. Members or offsets past
 * 2^31 - 1 bytes (the limit Python's zipfile uses) get ZIP64 extra fields, and the archive a ZIP64
 * end record. Members streamed by a producer (whose CRC is known only at the end) carry a data
 * descriptor (flag bit 3), as Python's zipfile writes when streaming. Timestamps are fixed at
 * 1980-01-01 00:00 so the same arrays always give the same bytes. Compressed archives
 * (`numpy.savez_compressed`) are not read.
 */
import { CorruptFileError, UnsupportedError } from '../errors.js';
import {
  type ArrayEntry,
  checkedEntries,
  checkHash,
  crc32,
  readArrayData,
  SequentialReader,
  type WrittenFile,
  writeHashedFile,
} from './binary.js';
import { bytesOf, type NdArray, type TypedArray } from './dtypes.js';
import type { NpyHeader, ReadOptions } from './npy.js';
import { encodeNpyHeader, npyFileBytes, readNpyHeaderFrom, writeNpyTo } from './npy.js';

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_DESCRIPTOR = 0x08074b50;
const FLAG_DESCRIPTOR = 0x0008;
const FLAG_UTF8 = 0x0800;
/** Python's zipfile switches to ZIP64 above this size/offset. */
const ZIP64_LIMIT = 0x7fffffff;
const DOS_DATE_1980 = (0 << 9) | (1 << 5) | 1; // 1980-01-01
const DOS_TIME_0 = 0;
const MADE_BY_UNIX = (3 << 8) | 45;
const EXTERNAL_ATTR = (0o100644 * 0x10000) >>> 0;

/** Options for writing an npz archive. */
export interface NpzWriteOptions {
  /** Use ZIP64 records for members and offsets above this many bytes. Default 2^31 - 1 (as Python). */
  zip64Threshold?: number;
}

class Bytes {
  readonly buf: Uint8Array;
  private readonly view: DataView;
  private o = 0;
  constructor(n: number) {
    this.buf = new Uint8Array(n);
    this.view = new DataView(this.buf.buffer);
  }
  u16(v: number) {
    this.view.setUint16(this.o, v, true);
    this.o += 2;
    return this;
  }
  u32(v: number) {
    this.view.setUint32(this.o, v >>> 0, true);
    this.o += 4;
    return this;
  }
  u64(v: number) {
    this.view.setBigUint64(this.o, BigInt(v), true);
    this.o += 8;
    return this;
  }
  bytes(b: Uint8Array) {
    this.buf.set(b, this.o);
    this.o += b.byteLength;
    return this;
  }
}

interface CentralEntry {
  name: Uint8Array;
  flags: number;
  crc: number;
  size: number;
  offset: number;
  zip64: boolean;
}

/**
 * Write named arrays to `file` as an uncompressed `.npz` (member `<name>.npy` per array),
 * atomically. `arrays` is a record of NdArrays or a list of entries whose data may be producers
 * (streamed, for arrays too large to hold twice). Returns size and sha256.
 */
export async function writeNpz(
  file: string,
  arrays: Record<string, NdArray> | ArrayEntry[],
  options: NpzWriteOptions = {},
): Promise<WrittenFile> {
  const entries = checkedEntries(
    arrays,
    'array name',
    (name) => name !== '' && !name.includes('\0'),
    'a non-empty string without NUL characters',
  );
  const limit = options.zip64Threshold ?? ZIP64_LIMIT;
  return writeHashedFile(file, async (writer) => {
    const central: CentralEntry[] = [];
    for (const entry of entries) {
      const name = Buffer.from(`${entry.name}.npy`, 'utf8');
      const offset = writer.position;
      const size = npyFileBytes(entry);
      const zip64 = size > limit || offset > limit;
      const streamed = typeof entry.data === 'function';
      let crc = 0;
      if (!streamed) {
        crc = crc32(bytesOf(entry.data as TypedArray), crc32(encodeNpyHeader(entry)));
      }
      const flags = (streamed ? FLAG_DESCRIPTOR : 0) | (/[^\x20-\x7e]/.test(entry.name) ? FLAG_UTF8 : 0);
      const local = new Bytes(30 + name.byteLength + (zip64 ? 20 : 0))
        .u32(SIG_LOCAL)
        .u16(zip64 ? 45 : 20)
        .u16(flags)
        .u16(0)
        .u16(DOS_TIME_0)
        .u16(DOS_DATE_1980)
        .u32(crc)
        .u32(zip64 ? 0xffffffff : streamed ? 0 : size)
        .u32(zip64 ? 0xffffffff : streamed ? 0 : size)
        .u16(name.byteLength)
        .u16(zip64 ? 20 : 0)
        .bytes(name);
      if (zip64)
        local
          .u16(1)
          .u16(16)
          .u64(streamed ? 0 : size)
          .u64(streamed ? 0 : size);
      await writer.write(local.buf);
      const start = writer.position;
      if (streamed) {
        // The member's CRC is computed on the bytes' way out and goes into the data descriptor.
        writer.onWrite = (bytes) => {
          crc = crc32(bytes, crc);
        };
      }
      await writeNpyTo(writer, entry, entry.data, entry.name);
      writer.onWrite = undefined;
      if (writer.position - start !== size) throw new Error(`npz member ${entry.name}: size mismatch`);
      if (streamed) {
        const d = new Bytes(zip64 ? 24 : 16).u32(SIG_DESCRIPTOR).u32(crc);
        if (zip64) d.u64(size).u64(size);
        else d.u32(size).u32(size);
        await writer.write(d.buf);
      }
      central.push({ name, flags, crc, size, offset, zip64 });
    }
    const cdOffset = writer.position;
    for (const e of central) {
      const bigSize = e.size > limit;
      const bigOffset = e.offset > limit;
      const extraLen = (bigSize ? 16 : 0) + (bigOffset ? 8 : 0);
      const c = new Bytes(46 + e.name.byteLength + (extraLen ? 4 + extraLen : 0))
        .u32(SIG_CENTRAL)
        .u16(MADE_BY_UNIX)
        .u16(e.zip64 ? 45 : 20)
        .u16(e.flags)
        .u16(0)
        .u16(DOS_TIME_0)
        .u16(DOS_DATE_1980)
        .u32(e.crc)
        .u32(bigSize ? 0xffffffff : e.size)
        .u32(bigSize ? 0xffffffff : e.size)
        .u16(e.name.byteLength)
        .u16(extraLen ? 4 + extraLen : 0)
        .u16(0)
        .u16(0)
        .u16(0)
        .u32(EXTERNAL_ATTR)
        .u32(bigOffset ? 0xffffffff : e.offset)
        .bytes(e.name);
      if (extraLen) {
        c.u16(1).u16(extraLen);
        if (bigSize) c.u64(e.size).u64(e.size);
        if (bigOffset) c.u64(e.offset);
      }
      await writer.write(c.buf);
    }
    const cdSize = writer.position - cdOffset;
    const zip64End = central.length > 0xfffe || cdOffset > limit || cdSize > limit;
    if (zip64End) {
      const z64Offset = writer.position;
      await writer.write(
        new Bytes(56 + 20)
          .u32(SIG_ZIP64_EOCD)
          .u64(44)
          .u16(MADE_BY_UNIX)
          .u16(45)
          .u32(0)
          .u32(0)
          .u64(central.length)
          .u64(central.length)
          .u64(cdSize)
          .u64(cdOffset)
          .u32(SIG_ZIP64_LOCATOR)
          .u32(0)
          .u64(z64Offset)
          .u32(1).buf,
      );
    }
    await writer.write(
      new Bytes(22)
        .u32(SIG_EOCD)
        .u16(0)
        .u16(0)
        .u16(zip64End ? 0xffff : central.length)
        .u16(zip64End ? 0xffff : central.length)
        .u32(zip64End ? 0xffffffff : cdSize)
        .u32(zip64End ? 0xffffffff : cdOffset)
        .u16(0).buf,
    );
  });
}

interface DirEntry {
  name: string;
  flags: number;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  offset: number;
}

function u64(view: DataView, o: number, file: string): number {
  const v = view.getBigUint64(o, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CorruptFileError(file, 'ZIP64 field out of range');
  return Number(v);
}

async function readDirectory(reader: SequentialReader): Promise<{ entries: DirEntry[]; cdOffset: number }> {
  const file = reader.file;
  const tailLen = Math.min(reader.size, 22 + 0xffff);
  if (reader.size < 22)
    throw new CorruptFileError(file, `truncated: ${reader.size} bytes is too short for a ZIP archive`);
  const tail = await reader.readAt(reader.size - tailLen, tailLen, 'ZIP end record');
  const tv = new DataView(tail.buffer);
  let eocd = -1;
  for (let p = tailLen - 22; p >= 0; p--) {
    if (tv.getUint32(p, true) === SIG_EOCD && p + 22 + tv.getUint16(p + 20, true) === tailLen) {
      eocd = p;
      break;
    }
  }
  if (eocd < 0)
    throw new CorruptFileError(
      file,
      'not an npz/ZIP archive or truncated (no end-of-central-directory record)',
    );
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  const eocdAbs = reader.size - tailLen + eocd;
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = await reader.readAt(eocdAbs - 20, 20, 'ZIP64 locator');
    const lv = new DataView(loc.buffer);
    if (lv.getUint32(0, true) !== SIG_ZIP64_LOCATOR)
      throw new CorruptFileError(file, 'missing ZIP64 locator');
    const z = await reader.readAt(u64(lv, 8, file), 56, 'ZIP64 end record');
    const zv = new DataView(z.buffer);
    if (zv.getUint32(0, true) !== SIG_ZIP64_EOCD) throw new CorruptFileError(file, 'bad ZIP64 end record');
    count = u64(zv, 32, file);
    cdSize = u64(zv, 40, file);
    cdOffset = u64(zv, 48, file);
  }
  if (cdOffset + cdSize > eocdAbs)
    throw new CorruptFileError(file, 'central directory overlaps the end record (truncated?)');
  const cd = await reader.readAt(cdOffset, cdSize, 'central directory');
  const cv = new DataView(cd.buffer);
  const entries: DirEntry[] = [];
  let p = 0;
  for (let k = 0; k < count; k++) {
    if (p + 46 > cdSize || cv.getUint32(p, true) !== SIG_CENTRAL) {
      throw new CorruptFileError(file, `bad central directory entry ${k}`);
    }
    const nameLen = cv.getUint16(p + 28, true);
    const extraLen = cv.getUint16(p + 30, true);
    const commentLen = cv.getUint16(p + 32, true);
    if (p + 46 + nameLen + extraLen + commentLen > cdSize)
      throw new CorruptFileError(file, `bad central directory entry ${k}`);
    const name = Buffer.from(cd.subarray(p + 46, p + 46 + nameLen)).toString('utf8');
    let compressedSize = cv.getUint32(p + 20, true);
    let size = cv.getUint32(p + 24, true);
    let offset = cv.getUint32(p + 42, true);
    // ZIP64 extra: fields present only for the 32-bit fields that are 0xffffffff, in this order.
    let e = p + 46 + nameLen;
    const eEnd = e + extraLen;
    while (e + 4 <= eEnd) {
      const id = cv.getUint16(e, true);
      const len = cv.getUint16(e + 2, true);
      if (id === 1) {
        let q = e + 4;
        if (size === 0xffffffff) {
          size = u64(cv, q, file);
          q += 8;
        }
        if (compressedSize === 0xffffffff) {
          compressedSize = u64(cv, q, file);
          q += 8;
        }
        if (offset === 0xffffffff) offset = u64(cv, q, file);
      }
      e += 4 + len;
    }
    entries.push({
      name,
      flags: cv.getUint16(p + 8, true),
      method: cv.getUint16(p + 10, true),
      crc: cv.getUint32(p + 16, true),
      compressedSize,
      size,
      offset,
    });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return { entries, cdOffset };
}

/** Check a member's directory entry and local header, leaving the reader at its first byte. */
async function enterMember(
  reader: SequentialReader,
  entry: DirEntry,
  cdOffset: number,
  label: string,
): Promise<void> {
  if (entry.method !== 0) {
    throw new UnsupportedError(`${label}: compressed npz members are not supported (save with numpy.savez)`);
  }
  if (entry.compressedSize !== entry.size)
    throw new CorruptFileError(label, 'stored member with differing sizes');
  if (!entry.name.endsWith('.npy')) throw new CorruptFileError(label, 'npz member is not an .npy file');
  await reader.skipTo(entry.offset);
  const lh = await reader.read(30, 'local header');
  const lv = new DataView(lh.buffer);
  if (lv.getUint32(0, true) !== SIG_LOCAL) throw new CorruptFileError(label, 'bad local header signature');
  const nameLen = lv.getUint16(26, true);
  const extraLen = lv.getUint16(28, true);
  const localName = Buffer.from(await reader.read(nameLen + extraLen, 'local header')).subarray(0, nameLen);
  if (localName.toString('utf8') !== entry.name) {
    throw new CorruptFileError(label, 'local header name differs from the central directory');
  }
  if (!(lv.getUint16(6, true) & FLAG_DESCRIPTOR) && lv.getUint32(14, true) !== entry.crc) {
    throw new CorruptFileError(label, 'local header CRC differs from the central directory');
  }
  if (reader.position + entry.size > cdOffset) {
    throw new CorruptFileError(
      label,
      `truncated: member of ${entry.size} bytes overruns the central directory`,
    );
  }
}

/**
 * Read every array of an `.npz` archive (keys without the `.npy` suffix, in archive order),
 * checking each member's CRC-32, its npy header and size, and (optionally) the file's sha256.
 */
export async function readNpz(
  file: string,
  options: ReadOptions = {},
): Promise<{ arrays: Record<string, NdArray>; sha256: string }> {
  const reader = await SequentialReader.open(file, { hash: true });
  try {
    const { entries, cdOffset } = await readDirectory(reader);
    const arrays: Record<string, NdArray> = {};
    for (const entry of [...entries].sort((a, b) => a.offset - b.offset)) {
      const label = `${file}:${entry.name}`;
      await enterMember(reader, entry, cdOffset, label);
      let crc = 0;
      reader.onRead = (bytes) => {
        crc = crc32(bytes, crc);
      };
      const header = await readNpyHeaderFrom(reader, entry.size, label);
      const data = await readArrayData(reader, header, header.bigEndian, `member ${entry.name}`);
      reader.onRead = undefined;
      if (crc !== entry.crc) {
        throw new CorruptFileError(
          label,
          `CRC-32 mismatch (computed ${crc.toString(16)}, stored ${entry.crc.toString(16)})`,
        );
      }
      const key = entry.name.slice(0, -4);
      if (Object.hasOwn(arrays, key)) throw new CorruptFileError(label, 'member name used twice');
      // defineProperty: a member named '__proto__' is an own key, not the object's prototype.
      Object.defineProperty(arrays, key, {
        value: { dtype: header.dtype, shape: header.shape, data },
        enumerable: true,
      });
    }
    const sha256 = (await reader.finish())!;
    checkHash(file, sha256, options.sha256);
    // Return in archive (central directory) order.
    const ordered: Record<string, NdArray> = {};
    for (const e of entries) {
      const key = e.name.slice(0, -4);
      Object.defineProperty(ordered, key, { value: arrays[key], enumerable: true });
    }
    return { arrays: ordered, sha256 };
  } finally {
    await reader.close();
  }
}

/**
 * The npy header of every member of an `.npz` archive (keys without `.npy`), read without the
 * data: directory, local headers, header dicts and member sizes are checked, CRCs and hashes not.
 */
export async function readNpzHeaders(file: string): Promise<Record<string, NpyHeader>> {
  const reader = await SequentialReader.open(file);
  try {
    const { entries, cdOffset } = await readDirectory(reader);
    const headers: Record<string, NpyHeader> = {};
    for (const entry of [...entries].sort((a, b) => a.offset - b.offset)) {
      const label = `${file}:${entry.name}`;
      await enterMember(reader, entry, cdOffset, label);
      const key = entry.name.slice(0, -4);
      if (Object.hasOwn(headers, key)) throw new CorruptFileError(label, 'member name used twice');
      Object.defineProperty(headers, key, {
        value: await readNpyHeaderFrom(reader, entry.size, label),
        enumerable: true,
      });
    }
    return headers;
  } finally {
    await reader.close();
  }
}
