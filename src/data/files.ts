/**
 * Reading user data files: CSV (header row required) and JSONL (one JSON object per line), plain or
 * gzip-compressed. A file is read as a stream: chunks of text go through an incremental reader
 * (CsvTableReader / JsonlTableReader) into a DatasetBuilder row by row; the same readers give a
 * RawTable (parseCsvTable / parseJsonlTable) for callers that need the cells.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { pipeline } from 'node:stream';
import { createGunzip, gunzipSync } from 'node:zlib';
import { DataFormatError, describeValue, InvalidArgumentError } from '../errors.js';
import { type CsvRecord, parseCsvRecords } from './csv.js';
import { type Cell, DatasetBuilder, type LoadOptions, NonFiniteToken, type RawTable } from './table.js';
import type { Dataset } from './types.js';

/** File name endings the loaders accept. */
export const DATA_FILE_EXTENSIONS = [
  '.csv',
  '.jsonl',
  '.ndjson',
  '.csv.gz',
  '.jsonl.gz',
  '.ndjson.gz',
] as const;

/** 'csv' or 'jsonl' from a file name (after an optional .gz), or null for anything else. */
export function dataFileFormat(path: string): 'csv' | 'jsonl' | null {
  const lower = path.toLowerCase().replace(/\.gz$/, '');
  if (lower.endsWith('.csv')) return 'csv';
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) return 'jsonl';
  return null;
}

/** Dataset name from a path: the base name without .gz and the format extension. */
export function datasetNameFromPath(path: string): string {
  return basename(path)
    .replace(/\.gz$/i, '')
    .replace(/\.(csv|jsonl|ndjson)$/i, '');
}

/** Decode file bytes to text: gunzip if they start with the gzip magic bytes, then strict UTF-8. */
export function decodeDataBytes(bytes: Uint8Array, file: string): string {
  let raw = bytes;
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      raw = gunzipSync(raw);
    } catch (error) {
      throw new DataFormatError(file, `not a valid gzip file (${(error as Error).message})`);
    }
  } else if (/\.gz$/i.test(file)) {
    throw new DataFormatError(file, 'the name ends in .gz but the content is not gzip-compressed');
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    throw new DataFormatError(file, 'not valid UTF-8 text');
  }
}

/** Receives a table row by row from a reader: the header first, then each data row. */
interface TableSink {
  header(columns: string[], headerLine: number): void;
  row(line: number, cells: Cell[], cellLines?: number[]): void;
}

/** Line terminators in `s` as the CSV reader counts them: \n, \r\n and a lone \r. */
function countLines(s: string): number {
  let count = 0;
  for (let k = s.indexOf('\n'); k >= 0; k = s.indexOf('\n', k + 1)) count++;
  for (let k = s.indexOf('\r'); k >= 0; k = s.indexOf('\r', k + 1)) if (s.charCodeAt(k + 1) !== 10) count++;
  return count;
}

/**
 * Incremental CSV reading: text arrives in chunks (`push`), and whole records — cut at the last
 * newline outside a quoted field (an even number of quotes before it) — go through
 * parseCsvRecords, their line numbers shifted by the lines already read. So a file of any size
 * needs memory only for one chunk and its records (a file with only lone-\r line ends has no cut
 * and is parsed whole at the end).
 */
class CsvTableReader {
  private pending = '';
  private scanned = 0;
  private inQuote = false;
  private linesBefore = 0;
  private columns: string[] | null = null;

  constructor(
    private readonly file: string,
    private readonly sink: TableSink,
  ) {}

  push(chunk: string): void {
    this.pending += chunk;
    const text = this.pending;
    let cut = -1;
    for (let i = this.scanned; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 34 /* " */) this.inQuote = !this.inQuote;
      else if (c === 10 /* \n */ && !this.inQuote) cut = i;
    }
    this.scanned = text.length;
    if (cut < 0) return;
    this.pending = text.slice(cut + 1);
    this.scanned -= cut + 1;
    this.parse(text.slice(0, cut + 1));
  }

  end(): void {
    if (this.pending !== '') this.parse(this.pending);
    this.pending = '';
    if (this.columns === null) {
      throw new DataFormatError(this.file, 'the file is empty (expected a header row and data rows)');
    }
  }

  private parse(text: string): void {
    const offset = this.linesBefore;
    let records: CsvRecord[];
    try {
      records = parseCsvRecords(text, this.file);
    } catch (error) {
      if (!(error instanceof DataFormatError) || offset === 0) throw error;
      throw new DataFormatError(error.file, error.problem, (error.line ?? 0) + offset, error.column);
    }
    this.linesBefore += countLines(text);
    for (const rec of records) {
      const line = rec.line + offset;
      const cellLines = offset === 0 ? rec.fieldLines : rec.fieldLines.map((l) => l + offset);
      if (this.columns === null) this.columns = this.header(rec.fields, line);
      else this.row(rec.fields, line, cellLines);
    }
  }

  private header(fields: string[], line: number): string[] {
    const file = this.file;
    const columns = fields.map((f) => f.trim());
    const seen = new Map<string, number>();
    columns.forEach((c, j) => {
      if (c === '') throw new DataFormatError(file, 'empty column name in the header', line, j + 1);
      const prev = seen.get(c);
      if (prev !== undefined) {
        throw new DataFormatError(
          file,
          `duplicate column name ${JSON.stringify(c)} in the header (also column ${prev + 1})`,
          line,
          j + 1,
        );
      }
      seen.set(c, j);
    });
    this.sink.header(columns, line);
    return columns;
  }

  private row(fields: string[], line: number, cellLines: number[]): void {
    const columns = this.columns!;
    if (fields.length !== columns.length) {
      const found = fields.length;
      const column =
        found < columns.length
          ? `${found + 1} (${JSON.stringify(columns[found])})`
          : String(columns.length + 1);
      throw new DataFormatError(
        this.file,
        `ragged row: expected ${columns.length} fields as in the header, found ${found}`,
        line,
        column,
      );
    }
    this.sink.row(line, fields, cellLines);
  }
}

/** A sink collecting the rows into a RawTable. */
function tableCollector(file: string, format: 'csv' | 'jsonl') {
  let table: RawTable | null = null;
  const sink: TableSink = {
    header(columns, headerLine) {
      table = { file, format, columns, headerLine, records: [] };
    },
    row(line, cells, cellLines) {
      table!.records.push(cellLines ? { line, cells, cellLines } : { line, cells });
    },
  };
  return { sink, table: () => table! };
}

/** Parse CSV text (header row + data rows) into a RawTable. */
export function parseCsvTable(text: string, file: string): RawTable {
  const collector = tableCollector(file, 'csv');
  const reader = new CsvTableReader(file, collector.sink);
  reader.push(text);
  reader.end();
  return collector.table();
}

const SENTINEL = '\u0000entk-non-finite:';

/**
 * Replace bare NaN / Infinity / -Infinity tokens (outside strings) with sentinel strings, so that a
 * line written by e.g. Python's json module parses and the offending field can be named.
 */
function protectNonFinite(line: string): string {
  if (!/NaN|Infinity/.test(line)) return line;
  let out = '';
  let inString = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (inString) {
      out += c;
      if (c === '\\') {
        out += line[i + 1] ?? '';
        i++;
      } else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      out += c;
      continue;
    }
    const token = ['-Infinity', 'Infinity', 'NaN'].find((t) => line.startsWith(t, i));
    if (token) {
      out += JSON.stringify(SENTINEL + token);
      i += token.length - 1;
      continue;
    }
    out += c;
  }
  return out;
}

function reviveNonFinite(_key: string, value: unknown): unknown {
  if (typeof value === 'string' && value.startsWith(SENTINEL)) {
    return new NonFiniteToken(value.slice(SENTINEL.length));
  }
  return value;
}

/**
 * Incremental JSONL reading: text arrives in chunks, each complete line (\n or \r\n) is parsed as
 * one JSON object; every object must have the keys of the first.
 */
class JsonlTableReader {
  private pending = '';
  private line = 0;
  private columns: string[] | null = null;
  private columnSet = new Set<string>();
  private headerLine = 1;

  constructor(
    private readonly file: string,
    private readonly sink: TableSink,
  ) {}

  push(chunk: string): void {
    const text = this.pending + chunk;
    let start = 0;
    for (let k = text.indexOf('\n'); k >= 0; k = text.indexOf('\n', start)) {
      this.parseLine(text.slice(start, text.charCodeAt(k - 1) === 13 && k > start ? k - 1 : k));
      start = k + 1;
    }
    this.pending = text.slice(start);
  }

  end(): void {
    if (this.pending !== '') this.parseLine(this.pending);
    this.pending = '';
    if (this.columns === null)
      throw new DataFormatError(this.file, 'the file is empty (expected one JSON object per line)');
  }

  private parseLine(raw: string): void {
    const file = this.file;
    const line = ++this.line;
    const source = line === 1 ? raw.replace(/^\uFEFF/, '') : raw;
    if (source.trim() === '') return;
    let value: unknown;
    const protectedSource = protectNonFinite(source);
    try {
      value = JSON.parse(protectedSource, reviveNonFinite);
    } catch (error) {
      const message = (error as Error).message;
      // Positions refer to the original line only when no NaN/Infinity token was replaced.
      const position = protectedSource === source ? /position (\d+)/.exec(message) : null;
      throw new DataFormatError(
        file,
        `malformed JSON (${message.replace(/\s*\(line \d+ column \d+\)/, '').replace(/ at position \d+/, '')})`,
        line,
        position ? Number(position[1]) + 1 : undefined,
      );
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new DataFormatError(
        file,
        `expected a JSON object on each line, found ${describeValue(value)}`,
        line,
      );
    }
    const object = value as Record<string, unknown>;
    const keys = Object.keys(object);
    if (this.columns === null) {
      this.columns = keys;
      this.columnSet = new Set(keys);
      this.headerLine = line;
      this.sink.header(keys, line);
    } else {
      const columns = this.columns;
      const missing = columns.find((k) => !(k in object));
      if (missing !== undefined) {
        throw new DataFormatError(
          file,
          `ragged row: field missing (every line needs the fields of line ${this.headerLine}: ${columns.join(', ')})`,
          line,
          JSON.stringify(missing),
        );
      }
      const extra = keys.find((k) => !this.columnSet.has(k));
      if (extra !== undefined) {
        throw new DataFormatError(
          file,
          `ragged row: unexpected field (every line needs exactly the fields of line ${this.headerLine}: ${columns.join(', ')})`,
          line,
          JSON.stringify(extra),
        );
      }
    }
    this.sink.row(
      line,
      this.columns.map((k) => object[k]),
    );
  }
}

/** Parse JSONL text (one JSON object per non-blank line, all with the same keys) into a RawTable. */
export function parseJsonlTable(text: string, file: string): RawTable {
  const collector = tableCollector(file, 'jsonl');
  const reader = new JsonlTableReader(file, collector.sink);
  reader.push(text);
  reader.end();
  return collector.table();
}

/** A reader of `format` feeding a DatasetBuilder; `dataset()` finishes it. */
function datasetReader(file: string, format: 'csv' | 'jsonl', options: LoadOptions, name: string) {
  let builder: DatasetBuilder | null = null;
  const sink: TableSink = {
    header(columns, headerLine) {
      builder = new DatasetBuilder({ file, format, columns, headerLine }, name, options);
    },
    row(line, cells, cellLines) {
      builder!.addRow(line, cells, cellLines);
    },
  };
  const reader = format === 'csv' ? new CsvTableReader(file, sink) : new JsonlTableReader(file, sink);
  return {
    push: (chunk: string) => reader.push(chunk),
    dataset: (): Dataset => {
      reader.end();
      return builder!.finish();
    },
  };
}

/**
 * The text of a data file in chunks of at most 256 KiB: gunzipped as it is read when the file
 * starts with the gzip magic bytes, decoded as strict UTF-8 (a leading byte-order mark dropped).
 */
async function* dataFileChunks(path: string): AsyncGenerator<string> {
  let gzip: boolean;
  try {
    const handle = await open(path, 'r');
    try {
      const magic = Buffer.alloc(2);
      const { bytesRead } = await handle.read(magic, 0, 2, 0);
      gzip = bytesRead === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
    } finally {
      await handle.close();
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InvalidArgumentError(
      'data file',
      path,
      `a readable file (${code ?? (error as Error).message})`,
    );
  }
  if (!gzip && /\.gz$/i.test(path)) {
    throw new DataFormatError(path, 'the name ends in .gz but the content is not gzip-compressed');
  }
  const source = createReadStream(path, { highWaterMark: 1 << 18 });
  const gunzip = gzip ? createGunzip({ chunkSize: 1 << 18 }) : null;
  if (gunzip) pipeline(source, gunzip, () => {}); // errors surface on gunzip
  const decoder = new TextDecoder('utf-8', { fatal: true });
  try {
    for await (const bytes of (gunzip ?? source) as AsyncIterable<Buffer>) {
      yield decoder.decode(bytes, { stream: true });
    }
    yield decoder.decode();
  } catch (error) {
    const code = String((error as NodeJS.ErrnoException).code ?? '');
    if (code.startsWith('Z_')) {
      throw new DataFormatError(path, `not a valid gzip file (${(error as Error).message})`);
    }
    if (code === 'ERR_ENCODING_INVALID_ENCODED_DATA') throw new DataFormatError(path, 'not valid UTF-8 text');
    throw new InvalidArgumentError(
      'data file',
      path,
      `a readable file (${code || (error as Error).message})`,
    );
  } finally {
    source.destroy();
    gunzip?.destroy();
  }
}

/**
 * Parse the text of a CSV or JSONL file into a Dataset.
 * @param text file content (already decompressed)
 * @param file path or name used in error messages and, by default, for the dataset name
 */
export function datasetFromText(
  text: string,
  file: string,
  format: 'csv' | 'jsonl',
  options: LoadOptions = {},
  name = datasetNameFromPath(file),
): Dataset {
  const reader = datasetReader(file, format, options, name);
  reader.push(text);
  return reader.dataset();
}

/**
 * Load a .csv / .jsonl / .ndjson file (optionally .gz) into a Dataset named after the file.
 * Features: Float32Array [n, d] row-major, inputShape [d]. Throws DataFormatError for bad content.
 * The file is read as a stream (gunzipped and parsed chunk by chunk), so the memory needed is about
 * that of the dataset, not of the file's text.
 */
export async function loadDataFile(path: string, options: LoadOptions = {}): Promise<Dataset> {
  const format = dataFileFormat(path);
  if (format === null) {
    throw new InvalidArgumentError('data file', path, `a file ending in ${DATA_FILE_EXTENSIONS.join(', ')}`);
  }
  const reader = datasetReader(path, format, options, datasetNameFromPath(path));
  for await (const chunk of dataFileChunks(path)) reader.push(chunk);
  return reader.dataset();
}
