/**
 * Writes bench/results/preference-cpu.json from a finished `tuneflow run examples/preference/spec.yaml`: the
 * workflow's result (each run's steps, losses, plan, and the dpo run's held-out reward accuracy and margin, base vs
 * tuned) as Temporal holds it, each run's train log from its folder, the workflow's wall time, versions and machine.
 * Nothing is copied by hand; the run must have completed.
 *
 *   TEMPORAL_ADDRESS=localhost:7433 TUNEFLOW_HOME=/tmp/preference-home \
 *     node --import tsx bench/preference/extract.ts <workflow id> --command "npx tuneflow run examples/preference/spec.yaml --id <id>" [--commit <sha the workers ran>]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { completedResult } from '../../src/cli/runs.ts';
import { connectClient } from '../../src/client.ts';
import { versions } from '../versions.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    command: { type: 'string' },
    /** The commit the run's workers ran (they load the code when they start); HEAD when not given. */
    commit: { type: 'string' },
    out: { type: 'string', default: join(dirname(fileURLToPath(import.meta.url)), '..', 'results', 'preference-cpu.json') },
  },
});
const workflowId = positionals[0];
if (workflowId === undefined) throw new Error('usage: extract.ts <workflow id> [--command "…"] [--out file]');

interface TrainLogRecord {
  step: number;
  loss: number;
  time: number;
  attempt: number;
  reward_accuracy?: number;
  reward_margin?: number;
}

const client = await connectClient();
const handle = client.workflow.getHandle(workflowId);
const description = await handle.describe();
const result = await completedResult(client, workflowId);
await client.connection.close();
if (result.runs === undefined) throw new Error(`${workflowId} trained one run; this reads a workflow of several (examples/preference/spec.yaml)`);

const runs = result.runs.map(({ name, from, result: run }) => {
  const log = readFileSync(join(fileURLToPath(run.run_uri), 'train_log.jsonl'), 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as TrainLogRecord);
  const manifest = JSON.parse(readFileSync(join(fileURLToPath(run.run_uri), 'run.json'), 'utf8')) as { spec: { train: { objective: unknown } } };
  const first = log[0];
  const last = log.at(-1);
  return {
    name,
    from,
    objective: manifest.spec.train.objective,
    steps: run.training.final_step,
    train_rows: run.training.train_rows,
    first_loss: first?.loss ?? null,
    final_loss: run.training.train_loss,
    val_loss: run.training.val_loss,
    losses: log.map(({ step, loss, reward_accuracy: accuracy }) => (accuracy === undefined ? { step, loss } : { step, loss, reward_accuracy: accuracy })),
    train_seconds: first && last ? Math.round((last.time - first.time) * 10) / 10 : null,
    tokens_per_second: run.training.tokens_per_second,
    planned: { steps: run.plan.run_time?.steps ?? null, peak_gib: run.plan.peak_vram_gib, eta_seconds: run.plan.eta_seconds ?? null },
    device: `${run.training.device} (${run.training.backend}, ${run.training.dtype})`,
    run_folder: fileURLToPath(run.run_uri),
  };
});

const dpo = result.runs.find(({ result: run }) => run.metrics.preference !== undefined);
if (dpo === undefined) throw new Error(`no run of ${workflowId} scored preference pairs (a dpo run with evaluate on)`);
const preference = dpo.result.metrics.preference!;
const closed = description.closeTime ?? new Date();
const measuredWith = versions();
const record = {
  workflow_id: workflowId,
  command: values.command ?? `npx tuneflow run examples/preference/spec.yaml --id ${workflowId}`,
  date: closed.toISOString(),
  commit: values.commit ?? measuredWith.tuneflow_commit,
  versions: measuredWith,
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', load_average_at_extraction: loadavg()[0] },
  wall_seconds: Math.round((closed.getTime() - description.startTime.getTime()) / 100) / 10,
  model: result.runs[0]!.result.model.source,
  preference: {
    run: dpo.name,
    beta: preference.beta,
    held_out_pairs: preference.base.pairs,
    // base: the model the dpo run started from (the sft run's merged model); tuned: with the dpo adapter.
    base: { reward_accuracy: preference.base.reward_accuracy, reward_margin: preference.base.reward_margin },
    tuned: {
      reward_accuracy: preference.tuned.reward_accuracy,
      reward_margin: preference.tuned.reward_margin,
      implicit_reward_accuracy: preference.tuned.implicit_reward_accuracy,
      implicit_reward_margin: preference.tuned.implicit_reward_margin,
    },
    tuned_above_base: preference.tuned.reward_accuracy > preference.base.reward_accuracy,
  },
  runs,
};
mkdirSync(dirname(values.out), { recursive: true });
writeFileSync(values.out, `${JSON.stringify(record, null, 2)}\n`);
console.log(
  `${values.out}: reward accuracy ${preference.base.reward_accuracy.toFixed(3)} (base) → ${preference.tuned.reward_accuracy.toFixed(3)} (tuned) on ${preference.base.pairs} pairs; margin ${preference.base.reward_margin.toFixed(3)} → ${preference.tuned.reward_margin.toFixed(3)}`,
);
