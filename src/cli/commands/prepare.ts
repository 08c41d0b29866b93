import { resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { prepareDataset, summariseReport, type DatasetReportDraft, type PrepareDatasetOptions } from '../../data/index.ts';
import { isDatasetNotFoundError, isInvalidDatasetError, isInvalidSpecError } from '../../errors/index.ts';
import { examples } from './examples.ts';
import { homeLayout } from '../../runtime/home.ts';
import { DatasetFormat } from '../../spec/schema.ts';

/**
 * `tuneflow prepare DATASET`: validates, dedupes and splits a dataset into the artifact store and prints what
 * happened to every row. Exit codes: 0 prepared, 1 the dataset cannot be trained on (too many invalid rows,
 * mixed formats, nothing left to train on), 2 the input or the options are unusable.
 */

export const PrepareExitCode = { Prepared: 0, InvalidDataset: 1, Unusable: 2 } as const;
export type PrepareExitCode = (typeof PrepareExitCode)[keyof typeof PrepareExitCode];

/** Where the command writes, so tests can run it in-process and read what it printed. */
export interface CommandOutput {
  stdout(text: string): void;
  stderr(text: string): void;
  exit(code: PrepareExitCode): void;
}

const processOutput: CommandOutput = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  exit: (code) => {
    process.exitCode = code;
  },
};

/** Errors shown in the human summary; `--json` always carries all of them. */
const errorsShown = 20;

interface PrepareCommandOptions {
  format: DatasetFormat;
  valFraction?: number;
  valCount?: number;
  valFile?: string;
  seed: number;
  maxInvalidFraction: number;
  /** Default: the artifact store of TUNEFLOW_HOME, where the workflow's prepare stage looks (one cache for both). */
  out?: string;
  json?: boolean;
}

function parseFraction(value: string): number {
  const number = Number(value);
  if (value.trim() === '' || !(number >= 0 && number <= 1)) throw new InvalidArgumentError('expected a number from 0 to 1');
  return number;
}

function parseInteger(minimum: number): (value: string) => number {
  return (value) => {
    const number = Number(value);
    if (!Number.isSafeInteger(number) || number < minimum) throw new InvalidArgumentError(`expected an integer of at least ${minimum}`);
    return number;
  };
}

export function registerPrepareCommand(program: Command, output: CommandOutput = processOutput): Command {
  return program
    .command('prepare')
    .description('validate, dedupe and split a dataset into the artifact store, reporting every rejected row')
    .argument('<dataset>', 'a JSON array or JSONL file (optionally .gz), or a directory of them')
    .addOption(new Option('--format <format>', 'row format').choices(Object.values(DatasetFormat)).default('auto'))
    .addOption(
      new Option('--val-fraction <fraction>', 'validation share of the rows (default 0.1)').argParser(parseFraction).conflicts(['valCount', 'valFile']),
    )
    .addOption(new Option('--val-count <count>', 'validation row count').argParser(parseInteger(0)).conflicts('valFile'))
    .option('--val-file <file>', 'a separate validation file')
    .option('--seed <seed>', 'split seed', parseInteger(Number.MIN_SAFE_INTEGER), 42)
    .option('--max-invalid-fraction <fraction>', 'fail above this share of invalid rows', parseFraction, 0.01)
    .option('--out <dir>', 'artifact store root (default $TUNEFLOW_HOME/artifacts)')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      examples([
        'tuneflow prepare examples/quickstart/data.jsonl',
        'tuneflow prepare data/ --val-count 200 --json',
        'tuneflow prepare chats.jsonl.gz --format chat --max-invalid-fraction 0.05',
      ]),
    )
    .action(async (dataset: string, options: PrepareCommandOptions) => output.exit(await prepare(dataset, options, output)));
}

async function prepare(dataset: string, options: PrepareCommandOptions, output: CommandOutput): Promise<PrepareExitCode> {
  const prepareOptions: PrepareDatasetOptions = {
    datasetPath: resolve(dataset),
    format: options.format,
    valFraction: options.valFraction,
    valCount: options.valCount,
    valPath: options.valFile === undefined ? undefined : resolve(options.valFile),
    seed: options.seed,
    maxInvalidFraction: options.maxInvalidFraction,
    storeRoot: options.out === undefined ? homeLayout().artifactRoot : resolve(options.out),
  };
  try {
    const report = await prepareDataset(prepareOptions);
    if (options.json) output.stdout(`${JSON.stringify(report, null, 2)}\n`);
    else
      output.stdout(
        `${summariseReport(report, errorsShown)}\ntrain: ${report.train_uri}\nval: ${report.val_uri}\nreport: ${report.report_uri}${report.cached ? ' (cached)' : ''}\n`,
      );
    return PrepareExitCode.Prepared;
  } catch (error) {
    if (isInvalidDatasetError(error)) {
      const report = error.details.report as DatasetReportDraft;
      if (options.json) output.stdout(`${JSON.stringify({ error: error.message, ...error.details, ...report }, null, 2)}\n`);
      else output.stdout(`${summariseReport(report, errorsShown)}\n`);
      output.stderr(`tuneflow prepare: ${error.message}\n`);
      return PrepareExitCode.InvalidDataset;
    }
    if (isDatasetNotFoundError(error) || isInvalidSpecError(error)) {
      if (options.json) output.stdout(`${JSON.stringify({ error: error.message, ...error.details }, null, 2)}\n`);
      output.stderr(`tuneflow prepare: ${error.message}\n`);
      return PrepareExitCode.Unusable;
    }
    throw error;
  }
}

/** Runs `prepare` with `args` (everything after `prepare`) in-process and resolves to its exit code. */
export async function runPrepareCommand(args: readonly string[], output: CommandOutput = processOutput): Promise<PrepareExitCode> {
  let exitCode: PrepareExitCode = PrepareExitCode.Prepared;
  const captured: CommandOutput = { ...output, exit: (code) => (exitCode = code) };
  const program = new Command('tuneflow').exitOverride().configureOutput({ writeOut: output.stdout, writeErr: output.stderr });
  registerPrepareCommand(program, captured);
  try {
    await program.parseAsync(['prepare', ...args], { from: 'user' });
  } catch (error) {
    // exitOverride turns commander's exits (usage errors, --help) into throws; commander already printed them.
    if (error instanceof CommanderError) return error.exitCode === 0 ? PrepareExitCode.Prepared : PrepareExitCode.Unusable;
    throw error;
  }
  return exitCode;
}
