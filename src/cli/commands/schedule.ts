import { ScheduleAlreadyRunning, ScheduleNotFoundError } from '@temporalio/client';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { connectClient } from '../../client.ts';
import { homeLayout } from '../../runtime/home.ts';
import { CommandError } from '../command-error.ts';
import { ExitCode } from '../exit-code.ts';
import {
  backfillSchedule,
  createRetrainSchedule,
  decideApproval,
  defaultCatchupWindow,
  defaultGate,
  deleteSchedule,
  describeSchedule,
  listRetrainSchedules,
  pauseSchedule,
  triggerSchedule,
  unpauseSchedule,
} from '../../schedules/index.ts';

/** `tuneflow schedule create|list|describe|pause|unpause|trigger|backfill|delete`: scheduled retraining. */

const print = (text: string): void => {
  process.stdout.write(`${text}\n`);
};

function date(value: string): Date {
  const parsed = new Date(value);
  if (Number.isNaN(parsed.getTime())) throw new InvalidArgumentError('expected a date such as 2026-11-01 or 2026-11-01T03:00:00Z');
  return parsed;
}

function fraction(value: string): number {
  const parsed = Number(value);
  if (value.trim() === '' || !(parsed >= 0 && parsed < 1)) throw new InvalidArgumentError('expected a number from 0 to below 1');
  return parsed;
}

/** Connects, runs, closes; a schedule that does not exist (or already does) is one line with a hint, not a stack. */
async function withClient(name: string | undefined, work: (client: Awaited<ReturnType<typeof connectClient>>) => Promise<void>): Promise<void> {
  const client = await connectClient();
  try {
    await work(client);
  } catch (error) {
    if (error instanceof ScheduleNotFoundError) {
      throw new CommandError(`no schedule named ${name}`, ExitCode.InvalidInput, '`tuneflow schedule list` shows them', { cause: error });
    }
    if (error instanceof ScheduleAlreadyRunning) {
      throw new CommandError(`schedule ${name} exists`, ExitCode.InvalidInput, `\`tuneflow schedule delete ${name}\` first, or choose another name`, {
        cause: error,
      });
    }
    throw error;
  } finally {
    await client.connection.close();
  }
}

interface CreateOptions {
  spec: string;
  cron?: string;
  every?: string;
  timezone?: string;
  model?: string;
  margin: number;
  requireApproval?: boolean;
  approvalTimeout: string;
  evaluationActivity?: string;
  evaluationTaskQueue: string;
  export?: ('f16' | 'q8_0')[];
  catchupWindow: string;
  paused?: boolean;
}

export function registerScheduleCommand(program: Command): Command {
  const schedule = program.command('schedule').description('Scheduled retraining on Temporal Schedules');

  schedule
    .command('create')
    .description('Retrain a spec on a schedule; a run with unchanged spec and data is skipped, a better model is promoted')
    .argument('<name>', 'schedule name (and the registry model name, unless --model)')
    .requiredOption('--spec <file>', 'run spec (read afresh by every run)')
    .addOption(new Option('--cron <expression>', 'cron expression, e.g. "0 3 * * 1"').conflicts('every'))
    .option('--every <interval>', 'interval, e.g. 7d, 12h')
    .option('--timezone <zone>', 'IANA time zone for --cron (default UTC)')
    .option('--model <name>', 'registry model name')
    .option('--margin <fraction>', 'promote only at val loss ≤ champion × (1 − margin)', fraction, defaultGate.margin)
    .option('--require-approval', 'wait for `tuneflow schedule approve RUN` before promoting')
    .option('--approval-timeout <duration>', 'how long to wait for approval', defaultGate.approval_timeout)
    .option('--evaluation-activity <name>', 'an activity of yours that must also pass the challenger (GateEvaluationRequest → {passes, reason})')
    .option('--evaluation-task-queue <queue>', 'the task queue your evaluation activity runs on', 'tuneflow-evaluations')
    .addOption(new Option('--export <format...>', 'GGUF files to export from a promoted model').choices(['f16', 'q8_0']))
    .option('--catchup-window <duration>', 'after an outage, take a missed run this late at most', defaultCatchupWindow)
    .option('--paused', 'create paused')
    .action(async (name: string, options: CreateOptions) => {
      await withClient(name, async (client) => {
        await createRetrainSchedule(client, {
          name,
          specPath: options.spec,
          artifactRootUri: homeLayout().artifactRootUri,
          cron: options.cron,
          every: options.every,
          timezone: options.timezone,
          modelName: options.model,
          gate: {
            margin: options.margin,
            require_approval: options.requireApproval ?? false,
            approval_timeout: options.approvalTimeout,
            ...(options.evaluationActivity ? { evaluation: { activity: options.evaluationActivity, task_queue: options.evaluationTaskQueue } } : {}),
          },
          exportFormats: options.export,
          catchupWindow: options.catchupWindow,
          paused: options.paused,
        });
        const report = await describeSchedule(client, name);
        print(`schedule ${name} created${report.paused ? ' (paused)' : ''}; next run ${report.next_runs[0] ?? '—'}`);
      });
    });

  schedule
    .command('list')
    .description('Every retrain schedule')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      await withClient(undefined, async (client) => {
        const schedules = await listRetrainSchedules(client);
        if (options.json) return print(JSON.stringify(schedules, null, 2));
        print(
          schedules.length
            ? schedules.map((entry) => `${entry.name}  ${entry.paused ? 'paused' : `next ${entry.next_run ?? '—'}`}`).join('\n')
            : 'no retrain schedules',
        );
      });
    });

  schedule
    .command('describe')
    .description('Spec, model, next and recent runs of a schedule')
    .argument('<name>', 'schedule name')
    .option('--json', 'print JSON')
    .action(async (name: string, options: { json?: boolean }) => {
      await withClient(name, async (client) => {
        const report = await describeSchedule(client, name);
        if (options.json) return print(JSON.stringify(report, null, 2));
        print(`${name}: ${report.paused ? 'paused' : 'active'} · model ${report.model_name ?? '—'} · spec ${report.spec_path ?? '—'}`);
        print(`  next: ${report.next_runs.slice(0, 3).join(', ') || '—'}`);
        print(
          `  runs taken ${report.runs_taken ?? 0}, skipped while one ran ${report.runs_skipped_overlap ?? 0}, running ${report.running.join(', ') || 'none'}`,
        );
        for (const run of report.recent_runs) print(`  ${run.scheduled_at}  ${run.workflow_id}`);
      });
    });

  const simple = [
    ['pause', 'Stop taking runs until unpaused', pauseSchedule, 'paused'],
    ['unpause', 'Take runs again', unpauseSchedule, 'unpaused'],
    ['trigger', 'Run now (skipped while a run of this schedule is in progress)', triggerSchedule, 'triggered'],
    ['delete', 'Delete the schedule (runs it started and the registry are kept)', deleteSchedule, 'deleted'],
  ] as const;
  for (const [verb, description, act, done] of simple) {
    schedule
      .command(verb)
      .description(description)
      .argument('<name>', 'schedule name')
      .action(async (name: string) => {
        await withClient(name, async (client) => {
          await act(client, name);
          print(`schedule ${name} ${done}`);
        });
      });
  }

  schedule
    .command('backfill')
    .description('Take the runs the schedule would have taken in a past period')
    .argument('<name>', 'schedule name')
    .requiredOption('--from <date>', 'start of the period', date)
    .requiredOption('--to <date>', 'end of the period', date)
    .action(async (name: string, options: { from: Date; to: Date }) => {
      await withClient(name, async (client) => {
        await backfillSchedule(client, name, options.from, options.to);
        print(`schedule ${name}: backfill ${options.from.toISOString()} → ${options.to.toISOString()} requested`);
      });
    });
  for (const [verb, approved] of [
    ['approve', true],
    ['reject', false],
  ] as const) {
    schedule
      .command(verb)
      .description(`${approved ? 'Promote' : 'Do not promote'} the challenger of a retrain run waiting for approval`)
      .argument('<run>', "the retrain run's workflow id (tuneflow schedule describe lists them)")
      .option('--by <name>', 'who decided', process.env.USER)
      .option('--reason <text>', "recorded in the run's result")
      .action(async (run: string, options: { by?: string; reason?: string }) => {
        await withClient(undefined, async (client) => {
          await decideApproval(client, run, { approved, by: options.by, reason: options.reason });
          print(`${run}: ${approved ? 'approved' : 'rejected'}`);
        });
      });
  }
  return schedule;
}
