/**
 * The `tuneflow` command. Each subcommand is small: the work lives in the library (client, runtime, data,
 * planner), so that what the CLI does a TypeScript program can do too.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { pythonActivitiesDirectory, readyEnvironment } from '../../scripts/python-environment.mjs';
import { displayLocation } from '../artifacts/index.ts';
import { cancelRun, checkpointRun, connectClient, getRunStatus, pauseRun, resumeRun, startFineTune, waitForResult } from '../client.ts';
import { isTemporalUnreachableError, isTuneflowError, TemporalUnreachableError } from '../errors/index.ts';
import { startDevServer } from '../runtime/dev-server.ts';
import { gpuWorkerEnvironment } from '../runtime/gpu-worker.ts';
import { homeLayout, temporalConnectConfig } from '../runtime/home.ts';
import { loadSpec } from '../spec/load.ts';
import { createOrchestrationWorker } from '../worker.ts';
import type { FineTuneResult } from '../../workflows/index.ts';
import { registerPlanCommand } from './commands/plan.ts';
import { registerPrepareCommand } from './commands/prepare.ts';
import { evaluationTable, progressLine } from './format.ts';
import { startStack } from './stack.ts';

const log = (line: string) => process.stderr.write(`[tuneflow] ${line}\n`);

function integer(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) throw new InvalidArgumentError('expected a positive integer');
  return parsed;
}

/** Resolves on the first SIGINT/SIGTERM: long-running commands stop their children in order, then exit. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

/** Follows a run until it ends, redrawing one progress line (a line every 10 s when not on a terminal). */
async function follow(workflowId: string): Promise<FineTuneResult> {
  const client = await connectClient();
  let lastLine = '';
  let lastPrinted = 0;
  try {
    return await waitForResult(client, workflowId, (status) => {
      const line = progressLine(status);
      if (process.stderr.isTTY) {
        process.stderr.write(`\r\x1b[2K${line}`);
      } else if (line !== lastLine && Date.now() - lastPrinted > 10_000) {
        process.stderr.write(`${line}\n`);
        lastPrinted = Date.now();
      }
      lastLine = line;
    });
  } finally {
    if (process.stderr.isTTY) process.stderr.write('\n');
    await client.connection.close();
  }
}

function printResult(result: FineTuneResult, workflowId: string): void {
  const path = (uri: string | null) => (uri ? displayLocation(uri) : '—');
  process.stdout.write(
    [
      `run ${workflowId} completed: ${result.training.final_step} steps on ${result.training.device} (${result.training.backend}), ` +
        `train loss ${result.metrics.final_train_loss?.toFixed(4) ?? '—'}`,
      '',
      evaluationTable(result),
      '',
      `adapter : ${path(result.artifacts.adapter)}`,
      `merged  : ${path(result.artifacts.merged)}`,
      `run     : ${path(result.run_uri)} (run.json, train_log.jsonl, checkpoints/)`,
      '',
    ].join('\n'),
  );
}

interface RunOptions {
  id?: string;
  detach?: boolean;
  json?: boolean;
  /** Follow the run with this id if it is still running (an interrupted demo), instead of starting another. */
  attach?: boolean;
}

async function startOrAttach(specPath: string, options: RunOptions): Promise<string> {
  const spec = loadSpec(specPath);
  const client = await connectClient();
  try {
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
    const handle = await startFineTune(client, spec, { workflowId: options.id, artifactRootUri: homeLayout().artifactRootUri });
    log(`started ${handle.workflowId}`);
    return handle.workflowId;
  } finally {
    await client.connection.close();
  }
}

async function runCommand(specPath: string, options: RunOptions): Promise<number> {
  const workflowId = await startOrAttach(specPath, options);
  if (options.detach) {
    process.stdout.write(options.json ? `${JSON.stringify({ workflow_id: workflowId })}\n` : `${workflowId}\n`);
    return 0;
  }
  try {
    const result = await follow(workflowId);
    if (options.json) {
      const statusClient = await connectClient();
      process.stdout.write(`${JSON.stringify(await getRunStatus(statusClient, workflowId), null, 2)}\n`);
      await statusClient.connection.close();
    } else {
      printResult(result, workflowId);
    }
    return 0;
  } catch (error) {
    if (error instanceof WorkflowFailedError) {
      const cause = error.cause?.cause ?? error.cause;
      log(`run ${workflowId} failed: ${cause instanceof Error ? cause.message : error.message}`);
      return 1;
    }
    throw error;
  }
}

async function demoCommand(options: PortOptions): Promise<number> {
  const layout = homeLayout();
  const specPath = fileURLToPath(new URL('../../examples/quickstart/spec.yaml', import.meta.url));
  const stack = await startStack(layout, options, log);
  const previousAddress = process.env.TEMPORAL_ADDRESS;
  process.env.TEMPORAL_ADDRESS = stack.server.address;
  try {
    log(`fine-tuning SmolLM2-135M-Instruct on examples/quickstart (watch it at ${stack.server.uiUrl})`);
    return await runCommand(specPath, { id: 'tuneflow-quickstart-demo', attach: true });
  } finally {
    process.env.TEMPORAL_ADDRESS = previousAddress;
    await stack.stop();
    log(`stopped; the server's database stays in ${layout.temporalDatabase}`);
  }
}

interface PortOptions {
  port: number;
  uiPort: number;
}

/** The server's ports, shared by every command that starts one. */
function withPorts(command: Command): Command {
  return command.option('--port <port>', 'Temporal frontend port', integer, 7233).option('--ui-port <port>', 'Web UI port', integer, 8233);
}

export function buildProgram(): Command {
  const program = new Command('tuneflow')
    .description('Fine-tune LLMs with LoRA as durable Temporal workflows')
    .showHelpAfterError()
    .exitOverride();

  withPorts(program.command('dev').description('Temporal dev server + TypeScript worker + Python worker in one command; Ctrl-C stops all')).action(
    async (options: PortOptions) => {
      const stack = await startStack(homeLayout(), options, log);
      log(`ready: TEMPORAL_ADDRESS=${stack.server.address}; Ctrl-C to stop`);
      const signal = await untilSignal();
      log(`${signal}: stopping workers, then the server`);
      await stack.stop();
    },
  );

  withPorts(program.command('server').description('Only the Temporal dev server (persisted under the tuneflow home)'))
    .option('--ip <ip>', 'address to bind', '127.0.0.1')
    .action(async (options: PortOptions & { ip: string }) => {
      const layout = homeLayout();
      const server = await startDevServer({ databaseFile: layout.temporalDatabase, logFile: `${layout.logs}/temporal.log`, echo: true, ...options });
      log(`serving at ${server.address}, Web UI ${server.uiUrl}`);
      await untilSignal();
      await server.stop();
    });

  program
    .command('worker')
    .description('Only the TypeScript worker (task queue tuneflow), for TEMPORAL_ADDRESS')
    .action(async () => {
      const { connectionOptions, namespace } = temporalConnectConfig();
      const address = connectionOptions.address;
      const connection = await NativeConnection.connect(connectionOptions).catch((error: unknown) => {
        throw new TemporalUnreachableError(address, { cause: error });
      });
      const worker = await createOrchestrationWorker({ connection, namespace });
      const running = worker.run();
      log(`worker polling task queue tuneflow at ${address}`);
      await untilSignal();
      worker.shutdown();
      await running;
      await connection.close();
    });

  program
    .command('gpu-worker')
    .description('Only the Python worker (task queue tuneflow-gpu), for TEMPORAL_ADDRESS')
    .action(async () => {
      // No --address: the Python worker reads the same environment configuration (profile file, TLS, API key).
      const child = spawn(readyEnvironment().python, ['-m', 'tuneflow_activities.worker'], {
        cwd: pythonActivitiesDirectory,
        stdio: 'inherit',
        env: gpuWorkerEnvironment(),
      });
      const forward = (signal: NodeJS.Signals) => child.kill(signal);
      process.on('SIGINT', forward).on('SIGTERM', forward);
      process.exitCode = await new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
    });

  program
    .command('run')
    .description('Start a fine-tune from a spec (YAML or JSON) and follow it')
    .argument('<spec>', 'run spec file')
    .option('--id <id>', 'workflow id (default tuneflow-<name>-<time>)')
    .option('--detach', 'start and print the id without waiting')
    .option('--json', 'print the final status object as JSON')
    .action(async (specPath: string, options: { id?: string; detach?: boolean; json?: boolean }) => {
      process.exitCode = await runCommand(specPath, options);
    });

  program
    .command('status')
    .description('Stage, step, loss, ETA and (once done) artifacts and metrics of a run')
    .argument('<id>', 'workflow id')
    .option('--json', 'print JSON')
    .action(async (workflowId: string, options: { json?: boolean }) => {
      const client = await connectClient();
      const status = await getRunStatus(client, workflowId);
      await client.connection.close();
      process.stdout.write(options.json ? `${JSON.stringify(status, null, 2)}\n` : `${workflowId}: ${status.status} · ${progressLine(status)}\n`);
    });

  const control = [
    ['pause', 'Checkpoint, stop training and free the GPU; the run waits until resumed', pauseRun, 'paused'],
    ['resume', 'Resume a paused run from its checkpoint', resumeRun, 'resumed'],
    ['cancel', 'Checkpoint, stop and end the run as CANCELLED (artifacts are kept)', cancelRun, 'cancelled'],
    ['checkpoint', 'Write a checkpoint at the next step, without stopping', checkpointRun, 'checkpoint requested'],
  ] as const;
  for (const [name, description, act, done] of control) {
    program
      .command(name)
      .description(description)
      .argument('<id>', 'workflow id')
      .action(async (workflowId: string) => {
        const client = await connectClient();
        try {
          await act(client, workflowId);
          log(`${workflowId}: ${done}`);
        } finally {
          await client.connection.close();
        }
      });
  }

  withPorts(program.command('demo').description('Everything in one: server, workers, the quickstart fine-tune of SmolLM2-135M, the evaluation table')).action(
    async (options: PortOptions) => {
      process.exitCode = await demoCommand(options);
    },
  );

  registerPrepareCommand(program);
  registerPlanCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  // The SDK's INFO lines (worker state changes) would bury the progress line; warnings and errors still show.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error && typeof error === 'object' && 'exitCode' in error && 'code' in error && String(error.code).startsWith('commander.')) {
      process.exitCode = Number(error.exitCode);
      return;
    }
    log(isTuneflowError(error) || isTemporalUnreachableError(error) ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 2;
  }
}
