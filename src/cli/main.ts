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

export function buildProgram(): Command {
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
    .showHelpAfterError('(run with --help for usage)');
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

/** Run the CLI on `argv` (process.argv form). Exits the process with a non-zero code on error. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (error) {
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
