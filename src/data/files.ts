/**
 * Reading user data files: CSV (header row required) and JSONL (one JSON object per line), plain or
 * gzip-compressed. Both become a RawTable and then a Dataset through `tableToDataset`.
 */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { DataFormatError, describeValue, InvalidArgumentError } from '../errors.js';
import { parseCsvRecords } from './csv.js';
import { type LoadOptions, NonFiniteToken, type RawTable, tableToDataset } from './table.js';
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

/** Parse CSV text (header row + data rows) into a RawTable. */
export function parseCsvTable(text: string, file: string): RawTable {
  const records = parseCsvRecords(text, file);
  if (records.length === 0) {
    throw new DataFormatError(file, 'the file is empty (expected a header row and data rows)');
  }
  const header = records[0]!;
  const columns = header.fields.map((f) => f.trim());
  const seen = new Map<string, number>();
  columns.forEach((c, j) => {
    if (c === '') throw new DataFormatError(file, 'empty column name in the header', header.line, j + 1);
    const prev = seen.get(c);
    if (prev !== undefined) {
      throw new DataFormatError(
        file,
        `duplicate column name ${JSON.stringify(c)} in the header (also column ${prev + 1})`,
        header.line,
        j + 1,
      );
    }
    seen.set(c, j);
  });
  const rows = records.slice(1).map((rec) => {
    if (rec.fields.length !== columns.length) {
      const found = rec.fields.length;
      const column =
        found < columns.length
          ? `${found + 1} (${JSON.stringify(columns[found])})`
          : String(columns.length + 1);
      throw new DataFormatError(
        file,
        `ragged row: expected ${columns.length} fields as in the header, found ${found}`,
        rec.line,
        column,
      );
    }
    return { line: rec.line, cells: rec.fields, cellLines: rec.fieldLines };
  });
  return { file, format: 'csv', columns, headerLine: header.line, records: rows };
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

/** Parse JSONL text (one JSON object per non-blank line, all with the same keys) into a RawTable. */
export function parseJsonlTable(text: string, file: string): RawTable {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let columns: string[] | null = null;
  let columnSet = new Set<string>();
  let headerLine = 1;
  const records: RawTable['records'] = [];
  lines.forEach((source, index) => {
    const line = index + 1;
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
    if (columns === null) {
      columns = keys;
      columnSet = new Set(keys);
      headerLine = line;
    } else {
      const missing = columns.find((k) => !(k in object));
      if (missing !== undefined) {
        throw new DataFormatError(
          file,
          `ragged row: field missing (every line needs the fields of line ${headerLine}: ${columns.join(', ')})`,
          line,
          JSON.stringify(missing),
        );
      }
      const extra = keys.find((k) => !columnSet.has(k));
      if (extra !== undefined) {
        throw new DataFormatError(
          file,
          `ragged row: unexpected field (every line needs exactly the fields of line ${headerLine}: ${columns.join(', ')})`,
          line,
          JSON.stringify(extra),
        );
      }
    }
    const cols = columns;
    records.push({ line, cells: cols.map((k) => object[k]) });
  });
  if (columns === null)
    throw new DataFormatError(file, 'the file is empty (expected one JSON object per line)');
  return { file, format: 'jsonl', columns, headerLine, records };
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
  const table = format === 'csv' ? parseCsvTable(text, file) : parseJsonlTable(text, file);
  return tableToDataset(table, name, options);
}

/**
 * Load a .csv / .jsonl / .ndjson file (optionally .gz) into a Dataset named after the file.
 * Features: Float32Array [n, d] row-major, inputShape [d]. Throws DataFormatError for bad content.
 */
export async function loadDataFile(path: string, options: LoadOptions = {}): Promise<Dataset> {
  const format = dataFileFormat(path);
  if (format === null) {
    throw new InvalidArgumentError('data file', path, `a file ending in ${DATA_FILE_EXTENSIONS.join(', ')}`);
  }
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InvalidArgumentError(
      'data file',
      path,
      `a readable file (${code ?? (error as Error).message})`,
    );
  }
  return datasetFromText(decodeDataBytes(bytes, path), path, format, options);
}
