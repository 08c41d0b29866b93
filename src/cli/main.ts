/**
 * The `tuneflow` command. Each subcommand is small: the work lives in the library (client, runtime, data,
 * planner, report), so that what the CLI does a TypeScript program can do too.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { Command, CommanderError } from 'commander';
import { registerModelsCommand } from './commands/models.ts';
import { registerPlanCommand } from './commands/plan.ts';
import { registerPrepareCommand } from './commands/prepare.ts';
import { registerReportCommand } from './commands/report.ts';
import { registerRunCommands } from './commands/runs.ts';
import { registerScheduleCommand } from './commands/schedule.ts';
import { registerServiceCommands } from './commands/services.ts';
import { registerSweepCommand } from './commands/sweep.ts';
import { ExitCode, exitCodeHelp } from './exit-code.ts';
import { reportError } from './output.ts';

export function buildProgram(): Command {
  const program = new Command('tuneflow')
    .description('Fine-tune LLMs with LoRA as durable Temporal workflows')
    .option('--verbose', 'print the stack trace of an unexpected error')
    .addHelpText(
      'after',
      `
Environment:
  TEMPORAL_ADDRESS   the Temporal server (default localhost:7233)
  TUNEFLOW_HOME      the Temporal database, the artifact store and the logs (default ./.tuneflow)
  NO_COLOR           no colours (they are off anyway when the output is not a terminal)
${exitCodeHelp}

Get started:
  $ tuneflow dev                              # in one terminal
  $ tuneflow run examples/tiny/spec.yaml      # in another
  $ tuneflow report <id>                      # charts, evaluation, samples as HTML`,
    )
    .showHelpAfterError('(add --help for usage and examples)')
    .exitOverride();
  registerServiceCommands(program);
  registerRunCommands(program);
  registerReportCommand(program);
  registerPrepareCommand(program);
  registerPlanCommand(program);
  registerModelsCommand(program);
  registerScheduleCommand(program);
  registerSweepCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  // tuneflow owns SIGINT/SIGTERM (cli/signals.ts): the runtime must not shut workers down behind its back.
  // The SDK's INFO lines (worker state changes) would bury the progress bar; warnings and errors still show.
  Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    // exitOverride turns commander's exits (usage errors, --help) into throws; commander already printed them.
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? ExitCode.Ok : ExitCode.InvalidInput;
      return;
    }
    process.exitCode = reportError(error, program.opts<{ verbose?: boolean }>().verbose === true);
  }
  // A finished command exits now: after its last worker has shut down, Temporal's native runtime can hold the
  // event loop open for minutes (measured: `tuneflow dev` exited 2.5 min after "stopped"). Writes to stdout and
  // stderr are synchronous for files and pipes on Linux, so nothing printed is lost.
  process.exit(process.exitCode ?? ExitCode.Ok);
}
