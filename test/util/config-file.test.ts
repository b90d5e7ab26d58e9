import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CorruptFileError, DataFormatError } from '../../src/errors.js';
import { parseConfigText, readConfigFile } from '../../src/util/config-file.js';
import { tempDir } from './temp-dir.js';

const dir = tempDir('config-file');

describe('the one config-file reader (entk train --config, experiment configs)', () => {
  it('reads JSON and YAML into the same object', async () => {
    const value = { data: 'iris', model: { kind: 'mlp', widths: [8, 8] }, epochs: 2 };
    await fs.writeFile(path.join(dir, 'a.json'), JSON.stringify(value));
    await fs.writeFile(
      path.join(dir, 'a.yaml'),
      'data: iris\nmodel:\n  kind: mlp\n  widths: [8, 8]\nepochs: 2\n',
    );
    expect(await readConfigFile(path.join(dir, 'a.json'))).toEqual(value);
    expect(await readConfigFile(path.join(dir, 'a.yaml'))).toEqual(value);
  });

  it('names the file, and the line and column of a syntax error', async () => {
    await expect(readConfigFile(path.join(dir, 'missing.yaml'))).rejects.toThrow(CorruptFileError);
    await expect(readConfigFile(path.join(dir, 'missing.yaml'))).rejects.toThrow(
      /missing\.yaml.*cannot be read \(ENOENT\)/,
    );
    const error = (() => {
      try {
        parseConfigText('data: iris\nmodel: [mlp\n', 'c.yaml');
      } catch (e) {
        return e as DataFormatError;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(DataFormatError);
    expect(error!.message).toMatch(/c\.yaml.*line 3.*not valid YAML/);
    expect(() => parseConfigText('{"a": ', 'c.json')).toThrow(/c\.json.*not valid JSON/);
    expect(() => parseConfigText('- 1\n- 2\n', 'c.yaml', 'a JSON/YAML object of training options')).toThrow(
      /c\.yaml.*expected a JSON\/YAML object of training options/,
    );
  });
});
