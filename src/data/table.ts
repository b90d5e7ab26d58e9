/**
 * Turning a parsed table (CSV records or JSONL objects) into a Dataset: picking the label, id, text
 * and feature columns, parsing numbers strictly, mapping labels to class indices and generating ids.
 * Every problem is a DataFormatError naming the file, the 1-based line and the column.
 */
import { assertArgument, DataFormatError, describeValue } from '../errors.js';
import type { Dataset } from './types.js';

/** Options for reading a CSV or JSONL file into a Dataset. */
export interface LoadOptions {
  /** Column holding the class label (a name or a non-negative integer). Default 'label'. */
  labelColumn?: string;
  /**
   * Numeric feature columns, in this order. Default: every column other than the label, id and text
   * columns that holds at least one numeric value (CSV) / a number or an array of numbers in its
   * first row (JSONL); columns of names or free text are left out.
   */
  featureColumns?: string[];
  /** Column of raw text, stored in `dataset.text` (text datasets). Default 'text' if present. */
  textColumn?: string;
  /** Column of example ids (must be unique). Default 'id' if present, else `<name>-<row>` ids. */
  idColumn?: string;
  /**
   * Class names in label-index order. Labels in the file are matched against these names; if they
   * are not all names but all integers in [0, V), they are read as indices. Any other label is an
   * error. Default: integer labels → '0'..'max'; name labels → the distinct names, sorted.
   */
  classNames?: string[];
}

/** A JSON value that was NaN / Infinity in the file (not valid JSON; kept to report it precisely). */
export class NonFiniteToken {
  constructor(readonly token: string) {}
}

/** A cell: CSV gives strings; JSONL gives any JSON value (or NonFiniteToken, or undefined if absent). */
export type Cell = unknown;

/** A parsed file before interpretation. */
export interface RawTable {
  /** File path as given (used in error messages). */
  file: string;
  format: 'csv' | 'jsonl';
  /** Column names (CSV header / keys of the first JSONL object), in file order. */
  columns: string[];
  /** 1-based line of the header (CSV) or of the first object (JSONL). */
  headerLine: number;
  /** Data rows; `cells[j]` belongs to `columns[j]`. */
  records: { line: number; cells: Cell[]; cellLines?: number[] }[];
}

const NUMBER_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const NON_FINITE_RE = /^[+-]?(nan|inf|infinity)$/i;
const INTEGER_LABEL_RE = /^\d+(\.0*)?$/;
const FLOAT32_MAX = 3.4028234663852886e38;

/** Width of zero-padded row numbers in generated ids: at least 4 digits. */
export function idWidth(n: number): number {
  return Math.max(4, String(Math.max(0, n - 1)).length);
}

/** Generated id of row `row` (0-based) of a dataset named `name` with `n` rows: `digits-0042`. */
export function rowId(name: string, row: number, n: number): string {
  return `${name}-${String(row).padStart(idWidth(n), '0')}`;
}

function columnLabel(table: RawTable, j: number): string {
  const name = JSON.stringify(table.columns[j]);
  return table.format === 'csv' ? `${j + 1} (${name})` : name;
}

function looksNumeric(cell: Cell, format: RawTable['format']): boolean {
  if (typeof cell === 'number' || cell instanceof NonFiniteToken) return true;
  if (typeof cell === 'string' && format === 'csv') {
    const t = cell.trim();
    return NUMBER_RE.test(t) || NON_FINITE_RE.test(t);
  }
  return false;
}

function isNumericArray(cell: Cell): cell is unknown[] {
  return Array.isArray(cell) && cell.length > 0 && cell.every((v) => looksNumeric(v, 'jsonl'));
}

/**
 * Parse one numeric cell strictly. Throws for empty values, non-numbers, NaN/Infinity and values
 * outside the float32 range.
 */
function parseNumber(table: RawTable, cell: Cell, line: number, column: string): number {
  const fail = (problem: string) => {
    throw new DataFormatError(table.file, problem, line, column);
  };
  let value: number;
  if (cell instanceof NonFiniteToken) {
    return fail(`${cell.token} is not allowed (features must be finite numbers)`);
  }
  if (typeof cell === 'number') {
    value = cell;
  } else if (typeof cell === 'string' && table.format === 'csv') {
    const t = cell.trim();
    if (t === '') return fail('empty value (missing values are not supported; features must be numbers)');
    if (NON_FINITE_RE.test(t)) return fail(`${t} is not allowed (features must be finite numbers)`);
    if (!NUMBER_RE.test(t)) return fail(`expected a number, found ${describeValue(cell)}`);
    value = Number(t);
  } else if (cell === undefined || cell === null) {
    return fail(`missing value (expected a number, found ${cell === null ? 'null' : 'nothing'})`);
  } else {
    return fail(`expected a number, found ${describeValue(cell)}`);
  }
  if (!Number.isFinite(value) || Math.abs(value) > FLOAT32_MAX) {
    return fail(
      `${describeValue(typeof cell === 'string' ? cell.trim() : cell)} is outside the float32 range`,
    );
  }
  return value;
}

/** Raw label text of a cell (numbers as their decimal form), or throw. */
function labelText(table: RawTable, cell: Cell, line: number, column: string): string {
  if (typeof cell === 'string') {
    const t = cell.trim();
    if (t !== '') return t;
    throw new DataFormatError(table.file, 'missing label (empty value)', line, column);
  }
  if (typeof cell === 'number' && Number.isInteger(cell) && cell >= 0) return String(cell);
  if (cell === undefined || cell === null) {
    throw new DataFormatError(table.file, 'missing label', line, column);
  }
  throw new DataFormatError(
    table.file,
    `label must be a class name (string) or a non-negative integer, found ${describeValue(cell instanceof NonFiniteToken ? cell.token : cell)}`,
    line,
    column,
  );
}

function requireColumn(table: RawTable, name: string, option: string): number {
  const j = table.columns.indexOf(name);
  if (j < 0) {
    throw new DataFormatError(
      table.file,
      `${option}: no column ${JSON.stringify(name)} (columns: ${table.columns.map((c) => JSON.stringify(c)).join(', ')})`,
      table.headerLine,
    );
  }
  return j;
}

/**
 * Interpret a parsed table as a Dataset named `name` (see LoadOptions for the column rules).
 * Features come out row-major in a Float32Array with inputShape [numFeatures]; a text-only file
 * (textColumn set, no feature columns) gives inputShape [0] and `text`.
 */
export function tableToDataset(table: RawTable, name: string, options: LoadOptions = {}): Dataset {
  const { file, columns, records } = table;
  if (options.classNames != null) checkClassNames(options.classNames);
  if (records.length === 0) {
    throw new DataFormatError(
      file,
      'no data rows (the file has a header but nothing else)',
      table.headerLine,
    );
  }
  const labelName = options.labelColumn ?? 'label';
  const labelJ = columns.indexOf(labelName);
  if (labelJ < 0) {
    throw new DataFormatError(
      file,
      `no label column ${JSON.stringify(labelName)} (columns: ${columns.map((c) => JSON.stringify(c)).join(', ')}); ` +
        'name the label column with labelColumn / --label-column',
      table.headerLine,
    );
  }
  const idJ =
    options.idColumn != null ? requireColumn(table, options.idColumn, 'idColumn') : columns.indexOf('id');
  const textJ =
    options.textColumn != null
      ? requireColumn(table, options.textColumn, 'textColumn')
      : columns.indexOf('text');
  const reserved = new Set([labelJ, idJ, textJ].filter((j) => j >= 0));
  for (const j of [idJ, textJ]) {
    if (j === labelJ) {
      throw new DataFormatError(
        file,
        `column ${JSON.stringify(columns[j])} cannot be both the label column and the id/text column`,
        table.headerLine,
      );
    }
  }

  // Feature columns.
  let featureJs: number[];
  if (options.featureColumns != null) {
    featureJs = [];
    const seen = new Set<string>();
    for (const c of options.featureColumns) {
      if (seen.has(c)) {
        throw new DataFormatError(file, `featureColumns: column ${JSON.stringify(c)} is listed twice`);
      }
      seen.add(c);
      const j = requireColumn(table, c, 'featureColumns');
      if (reserved.has(j)) {
        throw new DataFormatError(
          file,
          `featureColumns: column ${JSON.stringify(c)} is the label, id or text column and cannot be a feature`,
          table.headerLine,
        );
      }
      featureJs.push(j);
    }
  } else if (table.format === 'csv') {
    featureJs = columns
      .map((_, j) => j)
      .filter((j) => !reserved.has(j) && records.some((r) => looksNumeric(r.cells[j], 'csv')));
  } else {
    const first = records[0]!.cells;
    featureJs = columns
      .map((_, j) => j)
      .filter((j) => !reserved.has(j) && (looksNumeric(first[j], 'jsonl') || isNumericArray(first[j])));
  }
  if (featureJs.length === 0 && textJ < 0) {
    throw new DataFormatError(
      file,
      `no numeric feature columns (columns: ${columns.map((c) => JSON.stringify(c)).join(', ')}); ` +
        'pass featureColumns, or textColumn for a text dataset',
      table.headerLine,
    );
  }

  // Widths of the feature columns: 1 for scalars, the array length for JSONL array cells.
  const first = records[0]!;
  const widths = featureJs.map((j) =>
    Array.isArray(first.cells[j]) ? (first.cells[j] as unknown[]).length : 1,
  );
  const featureNames: string[] = [];
  featureJs.forEach((j, k) => {
    if (Array.isArray(first.cells[j])) {
      for (let e = 0; e < widths[k]!; e++) featureNames.push(`${columns[j]}[${e}]`);
    } else {
      featureNames.push(columns[j]!);
    }
  });
  const d = featureNames.length;
  const n = records.length;
  const x = new Float32Array(n * d);
  const labels: string[] = new Array(n);
  const labelLines: number[] = new Array(n);
  const text: string[] | undefined = textJ >= 0 ? new Array(n) : undefined;
  const ids: string[] = new Array(n);
  const idLine = new Map<string, number>();

  for (let r = 0; r < n; r++) {
    const rec = records[r]!;
    const lineOf = (j: number) => rec.cellLines?.[j] ?? rec.line;
    let offset = r * d;
    featureJs.forEach((j, k) => {
      const cell = rec.cells[j];
      const col = columnLabel(table, j);
      if (Array.isArray(first.cells[j])) {
        if (!Array.isArray(cell) || cell.length !== widths[k]) {
          throw new DataFormatError(
            file,
            `expected an array of ${widths[k]} numbers (as in the first row), found ${describeValue(cell)}`,
            lineOf(j),
            col,
          );
        }
        for (let e = 0; e < cell.length; e++) {
          x[offset++] = parseNumber(table, cell[e], lineOf(j), `${col}[${e}]`);
        }
      } else {
        x[offset++] = parseNumber(table, cell, lineOf(j), col);
      }
    });
    labels[r] = labelText(table, rec.cells[labelJ], lineOf(labelJ), columnLabel(table, labelJ));
    labelLines[r] = lineOf(labelJ);
    if (text && textJ >= 0) {
      const cell = rec.cells[textJ];
      if (typeof cell !== 'string') {
        throw new DataFormatError(
          file,
          `expected text, found ${describeValue(cell)}`,
          lineOf(textJ),
          columnLabel(table, textJ),
        );
      }
      text[r] = cell;
    }
    if (idJ >= 0) {
      const cell = rec.cells[idJ];
      let id: string;
      if (typeof cell === 'string' && cell.trim() !== '') id = cell.trim();
      else if (typeof cell === 'number' && Number.isFinite(cell)) id = String(cell);
      else {
        throw new DataFormatError(
          file,
          `expected a non-empty id, found ${describeValue(cell)}`,
          lineOf(idJ),
          columnLabel(table, idJ),
        );
      }
      const prev = idLine.get(id);
      if (prev !== undefined) {
        throw new DataFormatError(
          file,
          `duplicate id ${JSON.stringify(id)} (first seen on line ${prev}); ids must be unique`,
          lineOf(idJ),
          columnLabel(table, idJ),
        );
      }
      idLine.set(id, lineOf(idJ));
      ids[r] = id;
    } else {
      ids[r] = rowId(name, r, n);
    }
  }

  const { y, classNames } = mapLabels(labels, labelLines, options.classNames, (problem, line) => {
    throw new DataFormatError(file, problem, line, columnLabel(table, labelJ));
  });

  const ds: Dataset = { name, ids, x, y, inputShape: [d], classNames, featureNames };
  if (text) ds.text = text;
  return ds;
}

/** Throw unless `classNames` is a non-empty list of distinct non-empty strings. */
export function checkClassNames(classNames: unknown): asserts classNames is string[] {
  assertArgument(
    Array.isArray(classNames) &&
      classNames.length > 0 &&
      classNames.every((c) => typeof c === 'string' && c !== '') &&
      new Set(classNames).size === classNames.length,
    'classNames',
    classNames,
    'a non-empty list of distinct, non-empty class names',
  );
}

/**
 * Map raw label texts to class indices (rules in LoadOptions.classNames). `fail(problem, line)` must
 * throw; it is called for the first offending label.
 */
export function mapLabels(
  labels: string[],
  lines: number[],
  classNames: string[] | undefined,
  fail: (problem: string, line: number) => never,
): { y: Int32Array; classNames: string[] } {
  const n = labels.length;
  const y = new Int32Array(n);
  const allIntegers = labels.every((l) => INTEGER_LABEL_RE.test(l));
  if (classNames != null) {
    const index = new Map(classNames.map((c, k) => [c, k]));
    const allNames = labels.every((l) => index.has(l));
    if (allNames) {
      for (let r = 0; r < n; r++) y[r] = index.get(labels[r]!)!;
      return { y, classNames: [...classNames] };
    }
    const V = classNames.length;
    if (allIntegers) {
      for (let r = 0; r < n; r++) {
        const k = Math.round(Number(labels[r]));
        if (k >= V) {
          return fail(
            `label ${labels[r]} is neither one of classNames (${classNames.join(', ')}) nor a class index below ${V}`,
            lines[r]!,
          );
        }
        y[r] = k;
      }
      return { y, classNames: [...classNames] };
    }
    const r = labels.findIndex((l) => !index.has(l));
    return fail(
      `unknown label ${JSON.stringify(labels[r])} (expected one of classNames: ${classNames.join(', ')})`,
      lines[r]!,
    );
  }
  if (allIntegers) {
    let max = 0;
    for (let r = 0; r < n; r++) {
      const k = Math.round(Number(labels[r]));
      y[r] = k;
      if (k > max) max = k;
    }
    if (max > 100_000) {
      const r = labels.findIndex((l) => Math.round(Number(l)) === max);
      return fail(`integer label ${labels[r]} is too large (class indices must be below 100000)`, lines[r]!);
    }
    return { y, classNames: Array.from({ length: max + 1 }, (_, k) => String(k)) };
  }
  const names = [...new Set(labels)].sort();
  const index = new Map(names.map((c, k) => [c, k]));
  for (let r = 0; r < n; r++) y[r] = index.get(labels[r]!)!;
  return { y, classNames: names };
}
