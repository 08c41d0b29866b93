/**
 * The commands about runs: `run`, `status`, `list`, `logs`, and the controls `pause`, `resume`, `cancel`,
 * `checkpoint`. Every read command takes `--json`.
 */
import type { Client } from '@temporalio/client';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { match } from 'ts-pattern';
import {
  cancelRun,
  checkpointRun,
  connectClient,
  getRunStatus,
  pauseRun,
  type RunStatusReport,
  resumeRun,
  startFineTune,
  startFineTuneRuns,
} from '../../client.ts';
import { Stage } from '../../contract/index.ts';
import type { TrainLogRecord } from '../../report/data.ts';
import { homeLayout } from '../../runtime/home.ts';
import { loadSpecFile } from '../../spec/load.ts';
import { describeRollback, type FineTuneResult, type FineTuneRunResult } from '../../../workflows/index.ts';
import { CommandError } from '../command-error.ts';
import { ExitCode } from '../exit-code.ts';
import { followRun } from '../follow.ts';
import { evaluationTable, progressLine, qualityLines, runStatusLine } from '../format.ts';
import { colours, log, printJson } from '../output.ts';
import { completedResult, listRuns, type RunSummary, runDirectory } from '../runs.ts';
import { listenForStopSignal } from '../signals.ts';
import { examples } from './examples.ts';

function positiveInteger(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) throw new InvalidArgumentError('expected a positive integer');
  return parsed;
}

/** Connects, runs `use`, closes: every command that talks to the server goes through here. */
async function withClient<T>(use: (client: Client) => Promise<T>): Promise<T> {
  const client = await connectClient();
  try {
    return await use(client);
  } finally {
    await client.connection.close();
  }
}

const endedUnsuccessfully = (status: string) => status !== 'completed';

const path = (uri: string | null) => (uri ? fileURLToPath(uri) : '—');

/** One run's outcome: steps, loss, base vs tuned, where its artifacts are. */
function runOutcome(result: FineTuneRunResult, title: string): string[] {
  return [
    `${title} completed: ${result.training.final_step} steps on ${result.training.device} (${result.training.backend}), ` +
      `train loss ${result.metrics.final_train_loss?.toFixed(4) ?? '—'}`,
    '',
    evaluationTable(result),
    '',
    `adapter : ${path(result.artifacts.adapter)}`,
    `merged  : ${path(result.artifacts.merged)}`,
    `run     : ${path(result.run_uri)} (run.json, train_log.jsonl, checkpoints/)`,
  ];
}

function printResult(result: FineTuneResult, workflowId: string): void {
  const runs = result.runs ?? [];
  const blocks =
    runs.length === 0
      ? runOutcome(result, `run ${workflowId}`)
      : [
          `${workflowId} completed: ${runs.length} runs`,
          ...runs.flatMap(({ name, from, result: run }) => ['', ...runOutcome(run, `── run ${name}${from === null ? '' : ` (from ${from})`}`)]),
        ];
  process.stdout.write([...blocks, `report  : tuneflow report ${workflowId}`, ''].join('\n'));
}

interface RunOptions {
  id?: string;
  detach?: boolean;
  json?: boolean;
  /** Follow the run with this id if it is still running (an interrupted demo), instead of starting another. */
  attach?: boolean;
}

async function startOrAttach(client: Client, specPath: string, options: RunOptions): Promise<string> {
  const file = loadSpecFile(specPath);
  if (options.attach && options.id) {
    const running = await client.workflow
      .getHandle(options.id)
      .describe()
      .then((description) => description.status.name === 'RUNNING')
      .catch(() => false);
    if (running) {
      log(`${options.id} is still running from before: following it (it resumes from its last checkpoint)`);
      return options.id;
    }
  }
  const startOptions = { workflowId: options.id, artifactRootUri: homeLayout().artifactRootUri };
  const handle = await match(file)
    .with({ kind: 'run' }, ({ spec }) => startFineTune(client, spec, startOptions))
    .with({ kind: 'runs' }, ({ runs }) => startFineTuneRuns(client, runs, startOptions))
    .exhaustive();
  const runNames = file.kind === 'runs' ? ` (runs ${file.runs.runs.map(({ name }) => name).join(' → ')})` : '';
  log(`started ${handle.workflowId}${runNames}`);
  return handle.workflowId;
}

/**
 * Follows a run to its end and prints its outcome. `interrupted` stops the following, not the run:
 * the run goes on on the server, and the exit code says Interrupted.
 */
async function followToEnd(client: Client, workflowId: string, interrupted: Promise<unknown>, json: boolean): Promise<ExitCode> {
  const outcome = await followRun(client, workflowId, interrupted);
  if (!outcome.ended) {
    log(`stopped following; ${workflowId} goes on (tuneflow status ${workflowId} --follow)`);
    return ExitCode.Interrupted;
  }
  const { status } = outcome;
  if (json) printJson(status);
  else if (status.status === 'completed') printResult(await completedResult(client, workflowId), workflowId);
  else log(`${colours.stderr.red(`run ${workflowId} ${status.status}`)}${status.error ? `: ${status.error}` : ''}`);
  return endedUnsuccessfully(status.status) ? ExitCode.Unsuccessful : ExitCode.Ok;
}

/** `tuneflow run` (and the demo): start or attach, then follow unless detached. */
export async function runCommand(specPath: string, options: RunOptions, interrupted?: Promise<unknown>): Promise<ExitCode> {
  const ownSignal = interrupted === undefined ? listenForStopSignal() : undefined;
  try {
    return await withClient(async (client) => {
      const workflowId = await startOrAttach(client, specPath, options);
      if (options.detach) {
        if (options.json) printJson({ workflow_id: workflowId });
        else process.stdout.write(`${workflowId}\n`);
        return ExitCode.Ok;
      }
      ownSignal?.running();
      return followToEnd(client, workflowId, interrupted ?? ownSignal!.received, options.json === true);
    });
  } finally {
    ownSignal?.dispose();
  }
}

function describeStatus(status: RunStatusReport): string {
  const lines = [`${status.workflow_id}: ${status.status} · ${progressLine(status)}`];
  if (status.error) lines.push(`error: ${status.error}`);
  // Each rollback on its own line: the step refused, its values, the rows skipped from then on.
  for (const rollback of status.rollbacks) lines.push(`rollback: ${describeRollback(rollback)}`);
  if (status.metrics) {
    const { base_val_loss: base, tuned_val_loss: tuned } = status.metrics;
    lines.push(`validation loss: base ${base?.toFixed(4) ?? '—'} → tuned ${tuned?.toFixed(4) ?? '—'}`);
  }
  if (status.quality) lines.push(...qualityLines(status.quality));
  if (status.artifacts) lines.push(`adapter: ${status.artifacts.adapter}`, `run: ${status.artifacts.run}`);
  for (const run of status.runs ?? []) lines.push(runStatusLine(run));
  return `${lines.join('\n')}\n`;
}

async function statusCommand(workflowId: string, options: { json?: boolean; follow?: boolean }): Promise<ExitCode> {
  if (!options.follow) {
    const status = await withClient((client) => getRunStatus(client, workflowId));
    if (options.json) printJson(status);
    else process.stdout.write(describeStatus(status));
    return ExitCode.Ok;
  }
  const stopSignal = listenForStopSignal();
  try {
    return await withClient(async (client) => {
      stopSignal.running();
      return followToEnd(client, workflowId, stopSignal.received, options.json === true);
    });
  } finally {
    stopSignal.dispose();
  }
}

function formatRuns(runs: RunSummary[]): string {
  if (runs.length === 0) return 'no runs match\n';
  const rows = [
    ['ID', 'STATUS', 'STAGE', 'MODEL', 'STEP', 'LOSS', 'STARTED'],
    ...runs.map((run) => [
      run.workflow_id,
      run.status,
      run.stage ?? '—',
      run.model ?? '—',
      run.step === null ? '—' : String(run.step),
      run.loss === null ? '—' : run.loss.toFixed(4),
      run.started_at.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
    ]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return `${rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}

interface LogsOptions {
  json?: boolean;
  tail?: number;
  worker?: boolean;
}

/** One train-log line as people read it: `step 12  loss 10.5150  lr 1.83e-2  attempt 1  08:55:15`. */
function formatTrainLogLine(record: TrainLogRecord): string {
  const time = new Date(record.time * 1000).toISOString().slice(11, 19);
  // A step whose rows were all skipped after a rollback (train.rollback) trained nothing and has no loss.
  const loss = record.loss === null ? 'none (rows skipped)' : record.loss.toFixed(4);
  return `step ${String(record.step).padStart(6)}  loss ${loss}  lr ${record.learning_rate.toExponential(2)}  attempt ${record.attempt}  ${time}`;
}

async function logsCommand(workflowId: string, options: LogsOptions): Promise<ExitCode> {
  if (options.worker) {
    const file = join(homeLayout().logs, 'gpu-worker.log');
    if (!existsSync(file))
      throw new CommandError(
        `no Python worker log at ${file}`,
        ExitCode.InvalidInput,
        'it is written by `tuneflow dev` and `tuneflow gpu-worker` under TUNEFLOW_HOME',
      );
    const lines = readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line !== '');
    const shown = options.tail ? lines.slice(-options.tail) : lines;
    if (options.json) printJson({ file, lines: shown });
    else process.stdout.write(`${shown.join('\n')}\n`);
    return ExitCode.Ok;
  }
  const directory = await withClient((client) => runDirectory(client, workflowId));
  const file = join(directory, 'train_log.jsonl');
  if (!existsSync(file)) {
    throw new CommandError(
      `${workflowId} has no train log yet (${file})`,
      ExitCode.Unsuccessful,
      `it starts with the first training step: tuneflow status ${workflowId}`,
    );
  }
  const records = readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as TrainLogRecord);
  const shown = options.tail ? records.slice(-options.tail) : records;
  if (options.json) printJson(shown);
  else process.stdout.write(shown.map((record) => `${formatTrainLogLine(record)}\n`).join(''));
  return ExitCode.Ok;
}

export function registerRunCommands(program: Command): void {
  program
    .command('run')
    .description('Start a fine-tune from a spec (YAML or JSON) and follow it with a progress bar; Ctrl-C stops following, not the run')
    .argument('<spec>', 'run spec file')
    .option('--id <id>', 'workflow id (default tuneflow-<name>-<time>)')
    .option('--detach', 'start and print the id without waiting')
    .option('--json', 'print the final status (or, with --detach, the id) as JSON')
    .addHelpText(
      'after',
      examples(['tuneflow run examples/tiny/spec.yaml', 'tuneflow run spec.yaml --detach --id my-run', 'tuneflow run spec.yaml --json > status.json']),
    )
    .action(async (specPath: string, options: RunOptions) => {
      process.exitCode = await runCommand(specPath, options);
    });

  program
    .command('status')
    .description('Stage, step, loss, ETA and (once done) artifacts and metrics of a run')
    .argument('<id>', 'workflow id')
    .option('--json', 'print JSON')
    .option('--follow', 'follow the run with a progress bar until it ends')
    .addHelpText('after', examples(['tuneflow status my-run', 'tuneflow status my-run --follow', "tuneflow status my-run --json | jq '.loss'"]))
    .action(async (workflowId: string, options: { json?: boolean; follow?: boolean }) => {
      process.exitCode = await statusCommand(workflowId, options);
    });

  program
    .command('list')
    .description("Runs on the server, newest first, filtered through tuneflow's search attributes (TuneflowStatus, TuneflowModel, TuneflowStage)")
    .option('--status <status>', 'running, pausing, paused, completed, failed or cancelled')
    .option('--model <source>', "the spec's model.source, e.g. tiny-random-llama")
    .addOption(new Option('--stage <stage>', 'the stage a run is in (or ended in)').choices(Object.values(Stage)))
    .option('--limit <n>', 'at most this many runs', positiveInteger, 20)
    .option('--json', 'print JSON')
    .addHelpText('after', examples(['tuneflow list', 'tuneflow list --status running', 'tuneflow list --model tiny-random-llama --stage done --json']))
    .action(async (options: { status?: string; model?: string; stage?: string; limit: number; json?: boolean }) => {
      const runs = await withClient((client) => listRuns(client, options));
      if (options.json) printJson(runs);
      else process.stdout.write(formatRuns(runs));
    });

  program
    .command('logs')
    .description("A run's train log (one line per optimizer step), or with --worker the Python worker's log under TUNEFLOW_HOME")
    .argument('[id]', 'workflow id (not needed with --worker)')
    .option('--tail <n>', 'only the last n lines', positiveInteger)
    .option('--worker', "the Python worker's log instead (shared by every run it served)")
    .option('--json', 'print JSON')
    .addHelpText('after', examples(['tuneflow logs my-run', 'tuneflow logs my-run --tail 5 --json', 'tuneflow logs --worker --tail 50']))
    .action(async (workflowId: string | undefined, options: LogsOptions) => {
      if (workflowId === undefined && !options.worker)
        throw new CommandError('which run? give its id, or --worker', ExitCode.InvalidInput, 'tuneflow list shows the ids');
      process.exitCode = await logsCommand(workflowId ?? '', options);
    });

  const control = [
    ['pause', 'Checkpoint, stop training and free the GPU; the run waits (for days if need be) until resumed', pauseRun, 'paused'],
    ['resume', 'Resume a paused run from its checkpoint', resumeRun, 'resumed'],
    ['cancel', 'Checkpoint, stop and end the run as CANCELLED (artifacts are kept)', cancelRun, 'cancelled'],
    ['checkpoint', 'Write a checkpoint at the next step, without stopping', checkpointRun, 'checkpoint requested'],
  ] as const;
  for (const [name, description, act, done] of control) {
    program
      .command(name)
      .description(description)
      .argument('<id>', 'workflow id')
      .addHelpText('after', examples([`tuneflow ${name} my-run`]))
      .action(async (workflowId: string) => {
        await withClient(async (client) => {
          // The controls act on a run that exists; describe() says "no run with id …" before a signal would.
          await client.workflow.getHandle(workflowId).describe();
          await act(client, workflowId);
        });
        log(`${workflowId}: ${done}`);
      });
  }
}
