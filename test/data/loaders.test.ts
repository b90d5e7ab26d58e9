// CSV / JSONL loaders: good input of every supported kind, and every kind of bad input giving a
// DataFormatError that names the file, the 1-based line and the column.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { type LoadOptions, loadDataFile, loadDataset } from '../../src/data/index.js';
import { DataFormatError, InvalidArgumentError } from '../../src/errors.js';
import { tempDir } from '../util/temp-dir.js';

const dir = tempDir('data-test');

let counter = 0;
/** Write `content` to a fresh file called `name` (in its own directory) and return its path. */
function write(name: string, content: string | Buffer): string {
  const sub = join(dir, String(counter++));
  const path = join(sub, name);
  mkdirSync(sub, { recursive: true });
  writeFileSync(path, content);
  return path;
}

interface Expected {
  line?: number;
  column?: string | number;
  message: RegExp;
}

/** Load `content` as file `name` and expect a DataFormatError at `line`/`column`. */
async function expectError(
  name: string,
  content: string | Buffer,
  expected: Expected,
  options?: LoadOptions,
) {
  const path = write(name, content);
  const error = await loadDataFile(path, options).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, `expected ${name} to be rejected`).toBeInstanceOf(DataFormatError);
  const e = error as DataFormatError;
  expect(e.file).toBe(path);
  expect(e.message.startsWith(path)).toBe(true);
  expect(e.line).toBe(expected.line);
  expect(e.column).toBe(expected.column);
  expect(e.message).toMatch(expected.message);
  if (expected.line != null) expect(e.message).toContain(`line ${expected.line}`);
  if (expected.column != null) expect(e.message).toContain(`column ${expected.column}`);
}

describe('CSV loader: good input', () => {
  it('reads names as labels (sorted class names), an id column, and skips non-numeric columns', async () => {
    const path = write(
      'flowers.csv',
      'id,length,width,source,label\n' +
        'f1,1.5,0.25,"garden, north",tulip\n' +
        'f2,-2e1,+.5,park,rose\n' +
        'f3, 3 ,4,park,daisy\n',
    );
    const ds = await loadDataFile(path);
    expect(ds.name).toBe('flowers');
    expect(ds.ids).toEqual(['f1', 'f2', 'f3']);
    expect(ds.featureNames).toEqual(['length', 'width']);
    expect(ds.inputShape).toEqual([2]);
    expect(Array.from(ds.x)).toEqual([1.5, 0.25, -20, 0.5, 3, 4]);
    expect(ds.classNames).toEqual(['daisy', 'rose', 'tulip']);
    expect(Array.from(ds.y)).toEqual([2, 1, 0]);
    expect(ds.text).toBeUndefined();
  });

  it('reads integer labels (class names 0..max) and generates <name>-<row> ids', async () => {
    const ds = await loadDataFile(write('points.csv', 'a,b,label\n0,1,2\n1,0,0\n0.5,0.5,2.0\n'));
    expect(ds.classNames).toEqual(['0', '1', '2']);
    expect(Array.from(ds.y)).toEqual([2, 0, 2]);
    expect(ds.ids).toEqual(['points-0000', 'points-0001', 'points-0002']);
  });

  it('classNames fixes the label order, for name labels and for integer labels', async () => {
    const named = await loadDataFile(write('n.csv', 'x,label\n1,b\n2,a\n3,c\n'), {
      classNames: ['c', 'b', 'a'],
    });
    expect(named.classNames).toEqual(['c', 'b', 'a']);
    expect(Array.from(named.y)).toEqual([1, 2, 0]);
    const indexed = await loadDataFile(write('i.csv', 'x,label\n1,1\n2,0\n3,2\n'), {
      classNames: ['cat', 'dog', 'eel'],
    });
    expect(indexed.classNames).toEqual(['cat', 'dog', 'eel']);
    expect(Array.from(indexed.y)).toEqual([1, 0, 2]);
  });

  it('honours labelColumn, featureColumns (order as given) and idColumn', async () => {
    const path = write('cols.csv', 'key,p,q,r,target\nk1,1,2,3,yes\nk2,4,5,6,no\n');
    const ds = await loadDataFile(path, {
      labelColumn: 'target',
      featureColumns: ['r', 'p'],
      idColumn: 'key',
    });
    expect(ds.featureNames).toEqual(['r', 'p']);
    expect(Array.from(ds.x)).toEqual([3, 1, 6, 4]);
    expect(ds.ids).toEqual(['k1', 'k2']);
    expect(ds.classNames).toEqual(['no', 'yes']);
    expect(Array.from(ds.y)).toEqual([1, 0]);
  });

  it('reads a text column with RFC-4180 quoting (commas, doubled quotes, line breaks), CRLF and a BOM', async () => {
    const content =
      '\uFEFFid,text,label\r\n' +
      'r1,"Great film, loved it",pos\r\n' +
      'r2,"He said ""meh""\r\nand left",neg\r\n' +
      '\r\n' +
      'r3,plain words,pos\r\n';
    const ds = await loadDataFile(write('reviews.csv', content));
    expect(ds.text).toEqual(['Great film, loved it', 'He said "meh"\r\nand left', 'plain words']);
    expect(ds.inputShape).toEqual([0]);
    expect(ds.x.length).toBe(0);
    expect(ds.featureNames).toEqual([]);
    expect(ds.classNames).toEqual(['neg', 'pos']);
    expect(Array.from(ds.y)).toEqual([1, 0, 1]);
    expect(ds.ids).toEqual(['r1', 'r2', 'r3']);
  });

  it('textColumn names a differently called text column', async () => {
    const ds = await loadDataFile(write('t.csv', 'sentence,score,label\nhello there,0.5,a\nbye,1.5,b\n'), {
      textColumn: 'sentence',
    });
    expect(ds.text).toEqual(['hello there', 'bye']);
    expect(ds.featureNames).toEqual(['score']);
  });

  it('reads .csv.gz files', async () => {
    const ds = await loadDataFile(write('z.csv.gz', gzipSync('a,label\n1,x\n2,y\n')));
    expect(ds.name).toBe('z');
    expect(Array.from(ds.x)).toEqual([1, 2]);
    expect(ds.classNames).toEqual(['x', 'y']);
  });

  it('loadDataset accepts a path to a CSV file', async () => {
    const path = write('via-spec.csv', 'a,label\n1,x\n');
    const ds = await loadDataset(path);
    expect(ds.name).toBe('via-spec');
  });
});

describe('CSV loader: bad input', () => {
  it('empty file', async () => {
    await expectError('empty.csv', '', { message: /the file is empty/ });
    await expectError('blank.csv', '\n\n  \n', { message: /the file is empty/ });
  });

  it('header but no data rows', async () => {
    await expectError('header.csv', 'a,b,label\n', { line: 1, message: /no data rows/ });
  });

  it('missing label column (lists the columns)', async () => {
    await expectError('nolabel.csv', 'a,b,class\n1,2,x\n', {
      line: 1,
      message: /no label column "label" \(columns: "a", "b", "class"\)/,
    });
    await expectError(
      'nolabel2.csv',
      'a,b,class\n1,2,x\n',
      { line: 1, message: /no label column "target"/ },
      { labelColumn: 'target' },
    );
  });

  it('ragged rows: too few and too many fields', async () => {
    await expectError('short.csv', 'a,b,label\n1,2,x\n3,4\n', {
      line: 3,
      column: '3 ("label")',
      message: /ragged row: expected 3 fields as in the header, found 2/,
    });
    await expectError('long.csv', 'a,b,label\n1,2,x\n3,4,y,5\n', {
      line: 3,
      column: '4',
      message: /ragged row: expected 3 fields as in the header, found 4/,
    });
  });

  it('non-numeric values in a feature column', async () => {
    await expectError('text.csv', 'a,b,label\n1,2,x\n3,4,y\n5,abc,z\n', {
      line: 4,
      column: '2 ("b")',
      message: /expected a number, found "abc"/,
    });
    // Hex and other things Number() would accept are rejected too.
    await expectError('hex.csv', 'a,label\n1,x\n0x10,y\n', {
      line: 3,
      column: '1 ("a")',
      message: /expected a number/,
    });
  });

  it('NaN and Infinity (any spelling), and values beyond float32', async () => {
    await expectError('nan.csv', 'a,b,label\n1,NaN,x\n', {
      line: 2,
      column: '2 ("b")',
      message: /NaN is not allowed/,
    });
    await expectError('inf.csv', 'a,b,label\n1,2,x\n-inf,2,y\n', {
      line: 3,
      column: '1 ("a")',
      message: /-inf is not allowed/,
    });
    await expectError('infinity.csv', 'a,label\nInfinity,x\n', {
      line: 2,
      column: '1 ("a")',
      message: /Infinity/,
    });
    await expectError('huge.csv', 'a,label\n1,x\n1e39,y\n', {
      line: 3,
      column: '1 ("a")',
      message: /outside the float32 range/,
    });
  });

  it('empty feature values', async () => {
    await expectError('missing.csv', 'a,b,label\n1,2,x\n1,,x\n', {
      line: 3,
      column: '2 ("b")',
      message: /empty value/,
    });
  });

  it('missing labels', async () => {
    await expectError('nolab.csv', 'a,label\n1,x\n2, \n', {
      line: 3,
      column: '2 ("label")',
      message: /missing label/,
    });
  });

  it('unknown labels when classNames is given', async () => {
    await expectError(
      'unknown.csv',
      'a,label\n1,cat\n2,dog\n3,fish\n',
      {
        line: 4,
        column: '2 ("label")',
        message: /unknown label "fish" \(expected one of classNames: cat, dog\)/,
      },
      { classNames: ['cat', 'dog'] },
    );
    await expectError(
      'range.csv',
      'a,label\n1,0\n2,1\n3,2\n',
      {
        line: 4,
        column: '2 ("label")',
        message: /label 2 is neither one of classNames \(cat, dog\) nor a class index below 2/,
      },
      { classNames: ['cat', 'dog'] },
    );
  });

  it('duplicate ids name both lines', async () => {
    await expectError('dup.csv', 'id,a,label\nx,1,p\ny,2,q\nx,3,p\n', {
      line: 4,
      column: '1 ("id")',
      message: /duplicate id "x" \(first seen on line 2\)/,
    });
  });

  it('malformed quoting', async () => {
    await expectError('unterminated.csv', 'a,text,label\n1,"never closed,x\n2,ok,y\n', {
      line: 2,
      column: 2,
      message: /unterminated quoted field/,
    });
    await expectError('stray.csv', 'a,text,label\n1,say "hi",x\n', {
      line: 2,
      column: 2,
      message: /double quote inside an unquoted field/,
    });
    await expectError('after.csv', 'a,text,label\n1,"hi"there,x\n', {
      line: 2,
      column: 2,
      message: /unexpected "t" after a closing quote/,
    });
  });

  it('line numbers stay right after a multi-line quoted field', async () => {
    await expectError('multi.csv', 'text,a,label\n"line one\nline two\nline three",1,x\nok,zzz,y\n', {
      line: 5,
      column: '2 ("a")',
      message: /expected a number, found "zzz"/,
    });
    // An error in a field that starts on a later line of the same record points at that line.
    await expectError('multi2.csv', 'text,a,label\n"line one\nline two",bad,x\nok,1,y\n', {
      line: 3,
      column: '2 ("a")',
      message: /expected a number/,
    });
  });

  it('bad headers: duplicate or empty column names', async () => {
    await expectError('duphead.csv', 'a,b,a,label\n1,2,3,x\n', {
      line: 1,
      column: 3,
      message: /duplicate column name "a" in the header \(also column 1\)/,
    });
    await expectError('emptyhead.csv', 'a,,label\n1,2,x\n', {
      line: 1,
      column: 2,
      message: /empty column name/,
    });
  });

  it('a column without any numeric value is not a default feature (so empty values in it are no error)', async () => {
    const ds = await loadDataFile(write('sparse.csv', 'a,comment,label\n1,,x\n2,nice,y\n'));
    expect(ds.featureNames).toEqual(['a']);
  });

  it('no numeric feature columns, and featureColumns naming a missing column', async () => {
    await expectError('words.csv', 'word,label\nhello,x\n', {
      line: 1,
      message: /no numeric feature columns/,
    });
    await expectError(
      'feat.csv',
      'a,b,label\n1,2,x\n',
      { line: 1, message: /featureColumns: no column "c" \(columns: "a", "b", "label"\)/ },
      { featureColumns: ['a', 'c'] },
    );
    await expectError(
      'feat2.csv',
      'a,b,label\n1,2,x\n',
      { message: /featureColumns: column "label" is the label, id or text column/, line: 1 },
      { featureColumns: ['a', 'label'] },
    );
  });

  it('corrupt .gz and invalid UTF-8', async () => {
    await expectError('fake.csv.gz', 'a,label\n1,x\n', { message: /not gzip-compressed/ });
    await expectError('trunc.csv.gz', gzipSync('a,label\n1,x\n').subarray(0, 12), {
      message: /not a valid gzip file/,
    });
    await expectError('latin1.csv', Buffer.from([0x61, 0x2c, 0x6c, 0x0a, 0x31, 0x2c, 0xe9, 0x0a]), {
      message: /not valid UTF-8/,
    });
  });

  it('bad arguments: unsupported extension, unreadable file, bad classNames', async () => {
    await expect(loadDataFile(write('data.txt', 'a,label\n1,x\n'))).rejects.toThrow(InvalidArgumentError);
    await expect(loadDataFile(join(dir, 'absent.csv'))).rejects.toThrow(/a readable file \(ENOENT\)/);
    const path = write('ok.csv', 'a,label\n1,x\n');
    await expect(loadDataFile(path, { classNames: [] })).rejects.toThrow(
      /classNames: expected a non-empty list/,
    );
    await expect(loadDataFile(path, { classNames: ['x', 'x'] })).rejects.toThrow(/distinct/);
  });
});

describe('JSONL loader: good input', () => {
  it('reads numbers, name labels, ids, and skips blank lines', async () => {
    const content =
      '{"id": "a", "x": 1.5, "y": -2, "label": "cat", "note": "hello"}\n' +
      '\n' +
      '{"id": "b", "x": 0, "y": 3e2, "label": "ant", "note": "there"}\n';
    const ds = await loadDataFile(write('animals.jsonl', content));
    expect(ds.name).toBe('animals');
    expect(ds.featureNames).toEqual(['x', 'y']);
    expect(Array.from(ds.x)).toEqual([1.5, -2, 0, 300]);
    expect(ds.classNames).toEqual(['ant', 'cat']);
    expect(Array.from(ds.y)).toEqual([1, 0]);
    expect(ds.ids).toEqual(['a', 'b']);
  });

  it('reads integer labels, numeric ids and array-valued features', async () => {
    const content =
      '{"id": 7, "pixels": [0, 1, 2], "label": 1}\n{"id": 8, "pixels": [3, 4, 5], "label": 0}\n';
    const ds = await loadDataFile(write('arr.ndjson', content));
    expect(ds.featureNames).toEqual(['pixels[0]', 'pixels[1]', 'pixels[2]']);
    expect(ds.inputShape).toEqual([3]);
    expect(Array.from(ds.x)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(ds.classNames).toEqual(['0', '1']);
    expect(ds.ids).toEqual(['7', '8']);
  });

  it('reads a text dataset from .jsonl.gz', async () => {
    const content =
      '{"text": "good, very good", "label": "pos"}\n{"text": "bad \\"really\\"", "label": "neg"}\n';
    const ds = await loadDataFile(write('sst.jsonl.gz', gzipSync(content)));
    expect(ds.name).toBe('sst');
    expect(ds.text).toEqual(['good, very good', 'bad "really"']);
    expect(ds.inputShape).toEqual([0]);
    expect(ds.ids).toEqual(['sst-0000', 'sst-0001']);
  });
});

describe('JSONL loader: bad input', () => {
  it('malformed JSON gives line and character column', async () => {
    await expectError('bad.jsonl', '{"x": 1, "label": "a"}\n{"x": 2, "label": "b",}\n', {
      line: 2,
      column: 23, // the "}" after the trailing comma
      message: /malformed JSON/,
    });
  });

  it('a line that is not an object', async () => {
    await expectError('arr.jsonl', '{"x": 1, "label": "a"}\n[1, 2]\n', {
      line: 2,
      message: /expected a JSON object on each line, found array/,
    });
  });

  it('NaN / Infinity tokens (as written by Python) name the field', async () => {
    await expectError('nan.jsonl', '{"x": 1, "y": 2, "label": "a"}\n{"x": 1, "y": NaN, "label": "b"}\n', {
      line: 2,
      column: '"y"',
      message: /NaN is not allowed/,
    });
    await expectError('inf.jsonl', '{"x": -Infinity, "label": "a"}\n', {
      line: 1,
      column: '"x"',
      message: /-Infinity is not allowed/,
    });
    // The same words inside strings are just text.
    const ok = await loadDataFile(write('ok.jsonl', '{"x": 1, "label": "NaN Infinity"}\n'));
    expect(ok.classNames).toEqual(['NaN Infinity']);
  });

  it('non-numbers in feature fields, and nulls', async () => {
    await expectError('str.jsonl', '{"x": 1, "label": "a"}\n{"x": "3.5", "label": "b"}\n', {
      line: 2,
      column: '"x"',
      message: /expected a number, found "3.5"/,
    });
    await expectError('null.jsonl', '{"x": 1, "label": "a"}\n{"x": null, "label": "b"}\n', {
      line: 2,
      column: '"x"',
      message: /missing value/,
    });
    await expectError('arrlen.jsonl', '{"v": [1, 2], "label": "a"}\n{"v": [1], "label": "b"}\n', {
      line: 2,
      column: '"v"',
      message: /expected an array of 2 numbers/,
    });
  });

  it('ragged rows: a missing or an unexpected field', async () => {
    await expectError('missing.jsonl', '{"x": 1, "y": 1, "label": "a"}\n{"x": 2, "label": "b"}\n', {
      line: 2,
      column: '"y"',
      message: /ragged row: field missing/,
    });
    await expectError('extra.jsonl', '{"x": 1, "label": "a"}\n{"x": 2, "z": 0, "label": "b"}\n', {
      line: 2,
      column: '"z"',
      message: /ragged row: unexpected field/,
    });
  });

  it('bad labels, unknown labels, duplicate ids, empty file', async () => {
    await expectError('float.jsonl', '{"x": 1, "label": 1.5}\n', {
      line: 1,
      column: '"label"',
      message: /label must be a class name \(string\) or a non-negative integer, found 1.5/,
    });
    await expectError(
      'unknown.jsonl',
      '{"x": 1, "label": "a"}\n{"x": 1, "label": "z"}\n',
      { line: 2, column: '"label"', message: /unknown label "z"/ },
      { classNames: ['a', 'b'] },
    );
    await expectError('dup.jsonl', '{"id": 1, "x": 1, "label": "a"}\n\n{"id": 1, "x": 2, "label": "a"}\n', {
      line: 3,
      column: '"id"',
      message: /duplicate id "1" \(first seen on line 1\)/,
    });
    await expectError('empty.jsonl', '\n \n', { message: /the file is empty/ });
    await expectError('nolabel.jsonl', '{"x": 1}\n', { line: 1, message: /no label column "label"/ });
  });
});
