/**
 * The long-running commands: `dev`, `server`, `worker`, `gpu-worker`, `demo`. Each listens for SIGINT/SIGTERM from
 * its first line (signals.ts), stops its children in reverse order of start, and frees its ports.
 */
import { NativeConnection } from '@temporalio/worker';
import { fileURLToPath } from 'node:url';
import { type Command, InvalidArgumentError } from 'commander';
import { TemporalUnreachableError } from '../../errors/index.ts';
import { startDevServer } from '../../runtime/dev-server.ts';
import { gpuWorkerLogFile, startGpuWorker } from '../../runtime/gpu-worker.ts';
import { homeLayout, temporalConnectConfig } from '../../runtime/home.ts';
import { ExitCode } from '../exit-code.ts';
import { log } from '../output.ts';
import { listenForStopSignal } from '../signals.ts';
import { runOrchestrationWorker, startStack } from '../stack.ts';
import { examples } from './examples.ts';
import { runCommand } from './runs.ts';

interface PortOptions {
  port: number;
  uiPort: number;
}

function port(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0 || parsed > 65_535) throw new InvalidArgumentError('expected a port number (1-65535)');
  return parsed;
}

/** The server's ports, shared by every command that starts one. */
function withPorts(command: Command): Command {
  return command.option('--port <port>', 'Temporal frontend port', port, 7233).option('--ui-port <port>', 'Web UI port', port, 8233);
}

async function dev(options: PortOptions): Promise<number> {
  const stopSignal = listenForStopSignal();
  const stack = await startStack(homeLayout(), options, log);
  stopSignal.running();
  log(`ready: TEMPORAL_ADDRESS=${stack.server.address}; Ctrl-C to stop`);
  const signal = await stopSignal.received;
  log(`${signal}: stopping the workers, then the server`);
  await stack.stop();
  log('stopped');
  return ExitCode.Ok;
}

async function server(options: PortOptions & { ip: string }): Promise<number> {
  const stopSignal = listenForStopSignal();
  const layout = homeLayout();
  const devServer = await startDevServer({ databaseFile: layout.temporalDatabase, logFile: `${layout.logs}/temporal.log`, echo: true, ...options });
  stopSignal.running();
  log(`serving at ${devServer.address}, Web UI ${devServer.uiUrl}; Ctrl-C to stop`);
  const outcome = await Promise.race([stopSignal.received, devServer.process.exited.then((code) => ({ code }))]);
  if (typeof outcome === 'object') {
    log(`the Temporal server exited by itself (code ${outcome.code}); see ${devServer.process.logFile}`);
    return ExitCode.Internal;
  }
  log(`${outcome}: stopping the server`);
  await devServer.stop();
  return ExitCode.Ok;
}

async function worker(): Promise<number> {
  const stopSignal = listenForStopSignal();
  // Temporal's environment configuration: profile file, address, namespace, TLS, API key (runtime/home.ts).
  const { connectionOptions, namespace } = temporalConnectConfig();
  const address = connectionOptions.address;
  const connection = await NativeConnection.connect(connectionOptions).catch((error: unknown) => {
    throw new TemporalUnreachableError(address, { cause: error });
  });
  const running = await runOrchestrationWorker(connection, namespace);
  stopSignal.running();
  log(`worker polling task queue tuneflow at ${address}; Ctrl-C to stop`);
  // A worker that stops on its own (a fatal error) ends the command with that error.
  const signal = await Promise.race([stopSignal.received, running.finished.then(() => null)]);
  if (signal === null) return ExitCode.Internal;
  log(`${signal}: stopping the worker`);
  await running.stop();
  await connection.close();
  return ExitCode.Ok;
}

async function gpuWorker(): Promise<number> {
  const stopSignal = listenForStopSignal();
  const layout = homeLayout();
  // No address: the Python worker reads the same environment configuration (profile file, TLS, API key).
  const child = await startGpuWorker({ logFile: gpuWorkerLogFile(layout.logs), echo: true });
  stopSignal.running();
  const outcome = await Promise.race([stopSignal.received, child.exited.then((code) => ({ code }))]);
  if (typeof outcome === 'object') {
    log(`the Python worker exited by itself (code ${outcome.code}); see ${child.logFile}`);
    return ExitCode.Internal;
  }
  log(`${outcome}: stopping the Python worker (it hands its activity back first)`);
  await child.stop();
  return ExitCode.Ok;
}

const demoRunId = 'tuneflow-quickstart-demo';

async function demo(options: PortOptions): Promise<number> {
  const stopSignal = listenForStopSignal();
  const layout = homeLayout();
  const specPath = fileURLToPath(new URL('../../../examples/quickstart/spec.yaml', import.meta.url));
  const stack = await startStack(layout, options, log);
  stopSignal.running();
  const previousAddress = process.env.TEMPORAL_ADDRESS;
  process.env.TEMPORAL_ADDRESS = stack.server.address;
  try {
    log(`fine-tuning SmolLM2-135M-Instruct on examples/quickstart (watch it at ${stack.server.uiUrl})`);
    const exitCode = await runCommand(specPath, { id: demoRunId, attach: true }, stopSignal.received);
    if (exitCode === ExitCode.Interrupted) log('stopping; `npm run demo` again continues the run from its last checkpoint');
    return exitCode;
  } finally {
    process.env.TEMPORAL_ADDRESS = previousAddress;
    await stack.stop();
    log(`stopped; the server's database stays in ${layout.temporalDatabase}`);
  }
}

export function registerServiceCommands(program: Command): void {
  withPorts(
    program
      .command('dev')
      .summary('Temporal dev server + both workers in one command')
      .description(
        'Starts the Temporal dev server (database, artifacts and logs under TUNEFLOW_HOME), the TypeScript worker and the Python worker. Ctrl-C or SIGTERM stops all of them and frees the ports.',
      ),
  )
    .addHelpText('after', examples(['tuneflow dev', 'TUNEFLOW_HOME=/data/tuneflow tuneflow dev --port 7300 --ui-port 8300']))
    .action(async (options: PortOptions) => {
      process.exitCode = await dev(options);
    });

  withPorts(program.command('server').description('Only the Temporal dev server, persisted under TUNEFLOW_HOME'))
    .option('--ip <ip>', 'address to bind', '127.0.0.1')
    .addHelpText('after', examples(['tuneflow server', 'tuneflow server --ip 0.0.0.0 --port 7233']))
    .action(async (options: PortOptions & { ip: string }) => {
      process.exitCode = await server(options);
    });

  program
    .command('worker')
    .description('Only the TypeScript worker (task queue tuneflow), for TEMPORAL_ADDRESS')
    .addHelpText('after', examples(['TEMPORAL_ADDRESS=temporal.internal:7233 tuneflow worker']))
    .action(async () => {
      process.exitCode = await worker();
    });

  program
    .command('gpu-worker')
    .description('Only the Python worker (task queue tuneflow-gpu), for TEMPORAL_ADDRESS; its log goes to TUNEFLOW_HOME/logs too')
    .addHelpText('after', examples(['TEMPORAL_ADDRESS=temporal.internal:7233 tuneflow gpu-worker']))
    .action(async () => {
      process.exitCode = await gpuWorker();
    });

  withPorts(program.command('demo').description('Everything in one: server, workers, the quickstart fine-tune of SmolLM2-135M, the evaluation table'))
    .addHelpText('after', examples(['tuneflow demo', 'npm run demo']))
    .action(async (options: PortOptions) => {
      process.exitCode = await demo(options);
    });
}
