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

function requireColumn(
  table: Pick<RawTable, 'file' | 'columns' | 'headerLine'>,
  name: string,
  option: string,
): number {
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
  const builder = new DatasetBuilder(table, name, options);
  for (const rec of table.records) builder.addRow(rec.line, rec.cells, rec.cellLines);
  return builder.finish();
}

/** A feature column being read: its index, its width (1, or the length of a JSONL array) and name. */
interface FeatureColumn {
  j: number;
  /** null: a scalar column; a number: JSONL arrays of that length. */
  arrayWidth: number | null;
}

/**
 * Builds a Dataset row by row, so that a file can be read as a stream: features go straight into
 * a growing Float32Array, labels are interned (one string per class), and only ids and text are
 * kept per row. The column rules are those of LoadOptions; automatically chosen feature columns are
 * the columns whose first row holds a number (CSV: a numeric text; JSONL: a number or an array of
 * numbers). A column that does not, but holds a number in a later row, is an error naming its
 * first row — a column is numeric throughout or not a feature.
 */
export class DatasetBuilder {
  private readonly labelJ: number;
  private readonly idJ: number;
  private readonly textJ: number;
  private readonly reserved: Set<number>;
  private features: FeatureColumn[] | null = null;
  /** Automatic mode: columns whose first row was not numeric, with that first cell (for the error). */
  private pending = new Map<number, { cell: Cell; line: number }>();
  private readonly explicit: number[] | null;
  /** Feature rows in fixed blocks (no growing copy): `rowsPerBlock` rows of d values each. */
  private blocks: Float32Array[] = [];
  private rowsPerBlock = 1;
  private d = 0;
  private n = 0;
  private labelCodes = new Int32Array(1024);
  private readonly labelIndex = new Map<string, number>();
  private readonly labelFirstLine: number[] = [];
  private readonly text: string[] | undefined;
  private readonly ids: string[] = [];
  private readonly idLine = new Map<string, number>();

  constructor(
    private readonly table: Pick<RawTable, 'file' | 'format' | 'columns' | 'headerLine'>,
    private readonly name: string,
    private readonly options: LoadOptions = {},
  ) {
    const { file, columns } = table;
    if (options.classNames != null) checkClassNames(options.classNames);
    const labelName = options.labelColumn ?? 'label';
    this.labelJ = columns.indexOf(labelName);
    if (this.labelJ < 0) {
      throw new DataFormatError(
        file,
        `no label column ${JSON.stringify(labelName)} (columns: ${columns.map((c) => JSON.stringify(c)).join(', ')}); ` +
          'name the label column with labelColumn / --label-column',
        table.headerLine,
      );
    }
    this.idJ =
      options.idColumn != null ? requireColumn(table, options.idColumn, 'idColumn') : columns.indexOf('id');
    this.textJ =
      options.textColumn != null
        ? requireColumn(table, options.textColumn, 'textColumn')
        : columns.indexOf('text');
    this.reserved = new Set([this.labelJ, this.idJ, this.textJ].filter((j) => j >= 0));
    for (const j of [this.idJ, this.textJ]) {
      if (j === this.labelJ) {
        throw new DataFormatError(
          file,
          `column ${JSON.stringify(columns[j])} cannot be both the label column and the id/text column`,
          table.headerLine,
        );
      }
    }
    this.text = this.textJ >= 0 ? [] : undefined;
    if (options.featureColumns != null) {
      const explicit: number[] = [];
      const seen = new Set<string>();
      for (const c of options.featureColumns) {
        if (seen.has(c)) {
          throw new DataFormatError(file, `featureColumns: column ${JSON.stringify(c)} is listed twice`);
        }
        seen.add(c);
        const j = requireColumn(table, c, 'featureColumns');
        if (this.reserved.has(j)) {
          throw new DataFormatError(
            file,
            `featureColumns: column ${JSON.stringify(c)} is the label, id or text column and cannot be a feature`,
            table.headerLine,
          );
        }
        explicit.push(j);
      }
      this.explicit = explicit;
    } else {
      this.explicit = null;
    }
  }

  private columnLabel(j: number): string {
    return columnLabel(this.table as RawTable, j);
  }

  /** Decide the feature columns and their widths from the first row. */
  private firstRow(cells: Cell[], lineOf: (j: number) => number): FeatureColumn[] {
    const { file, columns, format } = this.table;
    let js: number[];
    if (this.explicit) js = this.explicit;
    else {
      js = [];
      for (let j = 0; j < columns.length; j++) {
        if (this.reserved.has(j)) continue;
        if (looksNumeric(cells[j], format) || (format === 'jsonl' && isNumericArray(cells[j]))) js.push(j);
        else this.pending.set(j, { cell: cells[j], line: lineOf(j) });
      }
    }
    if (js.length === 0 && this.textJ < 0) {
      throw new DataFormatError(
        file,
        `no numeric feature columns (columns: ${columns.map((c) => JSON.stringify(c)).join(', ')}); ` +
          'pass featureColumns, or textColumn for a text dataset',
        this.table.headerLine,
      );
    }
    const features = js.map((j) => ({
      j,
      arrayWidth: Array.isArray(cells[j]) ? (cells[j] as unknown[]).length : null,
    }));
    this.d = features.reduce((sum, f) => sum + (f.arrayWidth ?? 1), 0);
    this.rowsPerBlock = Math.max(1, Math.floor(BLOCK_VALUES / Math.max(1, this.d)));
    return features;
  }

  /** Feature names, in the order of the values of a row. */
  private featureNames(): string[] {
    const names: string[] = [];
    for (const { j, arrayWidth } of this.features ?? []) {
      const c = this.table.columns[j]!;
      if (arrayWidth === null) names.push(c);
      else for (let e = 0; e < arrayWidth; e++) names.push(`${c}[${e}]`);
    }
    return names;
  }

  /** Add one data row: `cells[j]` belongs to `columns[j]`; `cellLines[j]` is where it starts. */
  addRow(line: number, cells: Cell[], cellLines?: number[]): void {
    const { file } = this.table;
    const table = this.table as RawTable;
    const lineOf = (j: number) => cellLines?.[j] ?? line;
    if (this.features === null) this.features = this.firstRow(cells, lineOf);
    // A column left out for its first row must not hold numbers later (it would be dropped silently).
    if (this.pending.size > 0) {
      for (const [j, first] of this.pending) {
        const cell = cells[j];
        if (looksNumeric(cell, table.format) || (table.format === 'jsonl' && isNumericArray(cell))) {
          // parseNumber throws for the first row's cell: it is not a number.
          parseNumber(table, first.cell, first.line, this.columnLabel(j));
          throw new DataFormatError(
            file,
            `expected a number (this column holds numbers in later rows, e.g. line ${lineOf(j)}), found ${describeValue(first.cell)}`,
            first.line,
            this.columnLabel(j),
          );
        }
      }
    }
    const r = this.n;
    const d = this.d;
    const b = Math.floor(r / this.rowsPerBlock);
    if (b === this.blocks.length) this.blocks.push(new Float32Array(this.rowsPerBlock * d));
    const x = this.blocks[b]!;
    let offset = (r - b * this.rowsPerBlock) * d;
    for (const { j, arrayWidth } of this.features) {
      const cell = cells[j];
      const col = this.columnLabel(j);
      if (arrayWidth !== null) {
        if (!Array.isArray(cell) || cell.length !== arrayWidth) {
          throw new DataFormatError(
            file,
            `expected an array of ${arrayWidth} numbers (as in the first row), found ${describeValue(cell)}`,
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
    }
    const label = labelText(table, cells[this.labelJ], lineOf(this.labelJ), this.columnLabel(this.labelJ));
    let code = this.labelIndex.get(label);
    if (code === undefined) {
      code = this.labelIndex.size;
      this.labelIndex.set(label, code);
      this.labelFirstLine.push(lineOf(this.labelJ));
    }
    if (r >= this.labelCodes.length) this.labelCodes = grow(this.labelCodes, r + 1);
    this.labelCodes[r] = code;
    if (this.text) {
      const cell = cells[this.textJ];
      if (typeof cell !== 'string') {
        throw new DataFormatError(
          file,
          `expected text, found ${describeValue(cell)}`,
          lineOf(this.textJ),
          this.columnLabel(this.textJ),
        );
      }
      this.text.push(cell);
    }
    if (this.idJ >= 0) this.ids.push(this.readId(cells[this.idJ], lineOf(this.idJ)));
    this.n++;
  }

  private readId(cell: Cell, line: number): string {
    const { file } = this.table;
    const col = this.columnLabel(this.idJ);
    let id: string;
    if (typeof cell === 'string' && cell.trim() !== '') id = cell.trim();
    else if (typeof cell === 'number' && Number.isFinite(cell)) id = String(cell);
    else throw new DataFormatError(file, `expected a non-empty id, found ${describeValue(cell)}`, line, col);
    if (id.includes(',')) {
      throw new DataFormatError(
        file,
        `id ${JSON.stringify(id)} contains a comma; ids must not (point specs list ids separated by commas: ids:a,b)`,
        line,
        col,
      );
    }
    const prev = this.idLine.get(id);
    if (prev !== undefined) {
      throw new DataFormatError(
        file,
        `duplicate id ${JSON.stringify(id)} (first seen on line ${prev}); ids must be unique`,
        line,
        col,
      );
    }
    this.idLine.set(id, line);
    return id;
  }

  /** The Dataset of the rows added (throws if there were none). */
  finish(): Dataset {
    const { file } = this.table;
    const n = this.n;
    if (n === 0) {
      throw new DataFormatError(
        file,
        'no data rows (the file has a header but nothing else)',
        this.table.headerLine,
      );
    }
    // Class indices of the distinct labels (in order of first appearance), then of every row.
    const distinct = [...this.labelIndex.keys()];
    const mapped = mapLabels(distinct, this.labelFirstLine, this.options.classNames, (problem, line) => {
      throw new DataFormatError(file, problem, line, this.columnLabel(this.labelJ));
    });
    const y = new Int32Array(n);
    for (let r = 0; r < n; r++) y[r] = mapped.y[this.labelCodes[r]!]!;
    const x = new Float32Array(n * this.d);
    this.blocks.forEach((block, b) => {
      const offset = b * this.rowsPerBlock * this.d;
      x.set(offset + block.length <= x.length ? block : block.subarray(0, x.length - offset), offset);
    });
    this.blocks = [];
    const ids = this.idJ >= 0 ? this.ids : Array.from({ length: n }, (_, r) => rowId(this.name, r, n));
    const ds: Dataset = {
      name: this.name,
      ids,
      x,
      y,
      inputShape: [this.d],
      classNames: mapped.classNames,
      featureNames: this.featureNames(),
    };
    if (this.text) ds.text = this.text;
    return ds;
  }
}

/** Feature values per block of DatasetBuilder (1 MiB of float32). */
const BLOCK_VALUES = 2 ** 18;

/** A copy of `a` with room for at least `min` elements (capacity ×1.5, so growth stays amortised O(1)). */
function grow(a: Int32Array<ArrayBuffer>, min: number): Int32Array<ArrayBuffer> {
  const next = new Int32Array(Math.max(min, Math.ceil(a.length * 1.5)));
  next.set(a);
  return next;
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
  // Numbers that are not class indices (-1, 1.5) must not silently become class names.
  if (labels.every((l) => NUMBER_RE.test(l))) {
    const r = labels.findIndex((l) => !INTEGER_LABEL_RE.test(l));
    return fail(
      `label ${labels[r]} is not a class index: numeric labels must be non-negative integers 0..V-1 (pass classNames / --class-names to read labels as names)`,
      lines[r]!,
    );
  }
  const names = [...new Set(labels)].sort();
  const index = new Map(names.map((c, k) => [c, k]));
  for (let r = 0; r < n; r++) y[r] = index.get(labels[r]!)!;
  return { y, classNames: names };
}
