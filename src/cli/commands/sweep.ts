/**
 * `tuneflow sweep SPEC --grid …`: plans every trial, trains them by successive halving and prints the table;
 * `tuneflow sweep show|pause|resume|cancel ID` read and control a sweep (docs/sweeps.md).
 */
import type { Client } from '@temporalio/client';
import { execFileSync } from 'node:child_process';
import type { Command } from 'commander';
import { connectClient } from '../../client.ts';
import { homeLayout } from '../../runtime/home.ts';
import { loadSpec } from '../../spec/load.ts';
import { cancelSweep, pauseSweep, resumeSweep, startSweep, sweepResult, waitForSweep, writeSweepTable } from '../../sweep/client.ts';
import { formatSweepTable, planSweep, type SweepTable } from '../../sweep/index.ts';
import type { SweepState } from '../../../workflows/index.ts';
import { ExitCode } from '../exit-code.ts';
import { colours, log, printJson } from '../output.ts';
import { examples } from './examples.ts';

async function withClient<T>(use: (client: Client) => Promise<T>): Promise<T> {
  const client = await connectClient();
  try {
    return await use(client);
  } finally {
    await client.connection.close();
  }
}

interface SweepOptions {
  grid: string[];
  budget?: string;
  steps?: string;
  parallel?: string;
  id?: string;
  detach?: boolean;
  json?: boolean;
}

/** Each trial's plan, printed once before training starts, and a line per rung as the sweep reaches it. */
function narrator() {
  let shownPlan = false;
  let shownRung: number | null = null;
  return (state: SweepState) => {
    if (!shownPlan && state.phase === 'training') {
      shownPlan = true;
      log(`planned: ${Math.round(state.planned_seconds ?? 0)} s for ${state.records.length} trials, rungs at ${state.rungs.join(', ')} steps`);
      for (const trial of state.records) {
        const planned = trial.planned;
        log(
          planned
            ? `  ${trial.key}: peak ${planned.peak_vram_gib.toFixed(2)} of ${planned.available_gib.toFixed(1)} GiB, ${planned.step_seconds.toFixed(2)} s/step, ${Math.round(planned.seconds)} s through every rung`
            : `  ${trial.key}: ${colours.stderr.yellow('not started')}: ${trial.reason}`,
        );
      }
    }
    if (state.rung_index !== null && state.rung_index !== shownRung) {
      shownRung = state.rung_index;
      log(
        `rung ${shownRung + 1}/${state.rungs.length}: ${state.live.length} trials to ${state.rungs[shownRung]} steps${state.status === 'paused' ? ' (paused)' : ''}`,
      );
    }
  };
}

const gitCommit = () => {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
};

async function sweepCommand(specPath: string, options: SweepOptions): Promise<void> {
  const spec = loadSpec(specPath);
  const section = {
    ...spec.sweep,
    ...(options.budget === undefined ? {} : { budget: options.budget }),
    ...(options.steps === undefined ? {} : { steps: Number(options.steps) }),
    ...(options.parallel === undefined ? {} : { parallel: Number(options.parallel) }),
  };
  const plan = planSweep(spec, options.grid, section);
  const { artifactRootUri } = homeLayout();
  await withClient(async (client) => {
    const handle = await startSweep(client, spec, plan, { ...(options.id ? { workflowId: options.id } : {}), artifactRootUri });
    log(`started ${handle.workflowId}: ${plan.trials.length} trials, rungs at ${plan.rungs.join(', ')} steps`);
    if (options.detach) {
      if (options.json) printJson({ workflow_id: handle.workflowId });
      else process.stdout.write(`${handle.workflowId}\n`);
      return;
    }
    const result = await waitForSweep(client, handle.workflowId, narrator());
    const written = await writeSweepTable(artifactRootUri, handle.workflowId, result.table, {
      command: ['tuneflow', 'sweep', ...process.argv.slice(3)].join(' '),
      date: new Date().toISOString(),
      commit: gitCommit(),
    });
    if (options.json) printJson(result.table);
    else process.stdout.write(`${result.text}\n${written ? `\ntable: ${written}\n` : ''}`);
  });
}

async function showCommand(workflowId: string, options: { json?: boolean }): Promise<void> {
  await withClient(async (client) => {
    const { status } = await client.workflow.getHandle(workflowId).describe();
    if (status.name !== 'COMPLETED') {
      log(`sweep ${workflowId} is ${status.name.toLowerCase()}`);
      process.exitCode = ExitCode.Unsuccessful;
      return;
    }
    const table: SweepTable = (await sweepResult(client, workflowId)).table;
    if (options.json) printJson(table);
    else process.stdout.write(`${formatSweepTable(table)}\n`);
  });
}

export function registerSweepCommand(program: Command): void {
  const command = program
    .command('sweep')
    .description('Train a grid of LoRA ranks, learning rates… by successive halving, each trial planned first; prints the result table')
    .argument('<spec>', 'run spec (YAML or JSON); its sweep: section gives the grid, rungs and budget')
    .option('--grid <parameter=values...>', 'parameters and their values, such as lora.r=8,16,64 train.learning_rate=1e-4,2e-4', [])
    .option('--budget <duration>', 'refuse to start when the planned sweep takes longer (45m, 2h, 1.5d)')
    .option('--steps <n>', "steps of the last rung (default: the spec's sweep.steps or train.max_steps)")
    .option('--parallel <n>', 'trials training at once: one per GPU worker')
    .option('--id <id>', 'workflow id of the sweep')
    .option('--detach', 'print the id and return; `tuneflow sweep show <id>` prints the table once it is done')
    .option('--json', 'print the table as JSON')
    .addHelpText(
      'after',
      examples([
        'tuneflow sweep examples/sweep/spec.yaml',
        'tuneflow sweep examples/tiny/spec.yaml --grid lora.r=8,16,64 train.learning_rate=1e-4,2e-4 --budget 2h',
        'tuneflow sweep show tuneflow-sweep-tiny-20260101T000000',
      ]),
    )
    .action(sweepCommand);
  command
    .command('show')
    .description("a finished sweep's result table")
    .argument('<id>', 'workflow id of the sweep')
    .option('--json', 'as JSON')
    .action(showCommand);
  for (const [name, description, act] of [
    ['pause', 'checkpoint and stop every training trial; no rung starts until resumed', pauseSweep],
    ['resume', 'go on from the checkpoints the pause wrote', resumeSweep],
    ['cancel', 'stop the sweep; every trial keeps its checkpoints', cancelSweep],
  ] as const) {
    command
      .command(name)
      .description(description)
      .argument('<id>', 'workflow id of the sweep')
      .action((workflowId: string) => withClient((client) => act(client, workflowId)));
  }
}
