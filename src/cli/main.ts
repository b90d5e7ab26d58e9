/**
 * The `entk` command-line program (commander). Each command lives in ./commands and maps its
 * flags one-to-one onto a library options object. Errors print one line and exit non-zero.
 */
import { Command, CommanderError } from 'commander';
import { ENTK_VERSION } from '../backend/index.js';
import { EntkError } from '../errors.js';
import { registerAnalyze } from './commands/analyze.js';
import { registerCompare } from './commands/compare.js';
import { registerDemo } from './commands/demo.js';
import { registerExperiment } from './commands/experiment.js';
import { registerExport } from './commands/export.js';
import { registerFinetune } from './commands/finetune.js';
import { registerInfo } from './commands/info.js';
import { registerKernel } from './commands/kernel.js';
import { registerPredict } from './commands/predict.js';
import { registerTrain } from './commands/train.js';

/**
 * The program. With `json`, commander's own messages (usage errors) are not printed: {@link main}
 * reports every error as JSON on stdout instead.
 */
export function buildProgram(json = false): Command {
  const program = new Command('entk')
    .description(
      'empirical neural tangent kernels of trained tfjs networks, and the learning dynamics they predict',
    )
    .version(ENTK_VERSION)
    .option(
      '--backend <name>',
      'tfjs backend: auto | tensorflow | wasm | cpu (default: $ENTK_BACKEND or auto)',
    )
    .option('--quiet', 'no progress bars')
    .showHelpAfterError(!json && '(run with --help for usage)');
  // Set before the commands are added, so that they inherit both.
  program.exitOverride();
  if (json) program.configureOutput({ outputError: () => undefined });
  registerInfo(program);
  registerTrain(program);
  registerKernel(program);
  registerExport(program);
  registerFinetune(program);
  registerPredict(program);
  registerCompare(program);
  registerAnalyze(program);
  registerExperiment(program);
  registerDemo(program);
  return program;
}

/** The JSON form of an error, for `--json` (stdout): `{ error: { name, message, ...fields } }`. */
export function errorJson(error: unknown): { error: Record<string, unknown> } {
  if (error instanceof CommanderError) {
    return {
      error: { name: 'UsageError', code: error.code, message: error.message.replace(/^error: /, '') },
    };
  }
  if (!(error instanceof Error)) return { error: { name: 'Error', message: String(error) } };
  const fields: Record<string, unknown> = { name: error.name, message: error.message };
  // The typed errors' named fields (argument, received, expected, file, line, column, problem).
  for (const [k, v] of Object.entries(error)) {
    if (k !== 'name' && k !== 'message' && k !== 'stack' && (v == null || typeof v !== 'object'))
      fields[k] = v;
  }
  return { error: fields };
}

/**
 * Run the CLI on `argv` (process.argv form). Exits the process with a non-zero code on error: 2 for
 * entk's own refusals (EntkError), commander's code for usage errors, 1 otherwise. Under `--json` the
 * error is printed as JSON on stdout ({@link errorJson}), so a script always gets JSON.
 */
export async function main(argv: string[]): Promise<void> {
  const json = argv.slice(2).includes('--json');
  const program = buildProgram(json);
  try {
    await program.parseAsync(argv);
  } catch (error) {
    const helpOrVersion =
      error instanceof CommanderError &&
      ['commander.helpDisplayed', 'commander.help', 'commander.version'].includes(error.code);
    if (json && !helpOrVersion) {
      process.stdout.write(`${JSON.stringify(errorJson(error), null, 2)}\n`);
      process.exit(error instanceof CommanderError ? error.exitCode : error instanceof EntkError ? 2 : 1);
    }
    if (error instanceof CommanderError) {
      // commander already printed its message (help, version, or a usage error).
      process.exit(error.exitCode);
    }
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`entk: error: ${message}\n`);
    if (!(error instanceof EntkError) && process.env.ENTK_DEBUG && error instanceof Error) {
      process.stderr.write(`${error.stack}\n`);
    }
    process.exit(error instanceof EntkError ? 2 : 1);
  }
}
