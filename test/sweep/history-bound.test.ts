/**
 * A sweep of 120 trials keeps its history bounded: it continues as new at rung ends, carrying its trials, plans and
 * results, and every execution stays far under Temporal's 10,000 events. Training is a fake Python worker (real
 * training of 120 trials would take hours on a CPU) that answers like the real train activity: it trains to the
 * request's stop_at_step from where the trial's last rung stopped, and its validation loss is a known function of
 * the trial's rank, learning rate and steps, so the halving, the best trial and the steps spent are known exactly.
 * Preparation and planning are tuneflow's real activities.
 */
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import type { ResolvedModel, TokenStatistics, TrainRequest, TrainResult } from '../../src/contract/index.ts';
import { TaskQueue } from '../../src/contract/index.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { planSweep, TrialOutcome } from '../../src/sweep/index.ts';
import { type SweepInput, sweep } from '../../workflows/index.ts';
import { fakeResolvedModel, fakeTokenStatistics, historyLengths, useFakeAcceleratorWorkers } from '../support/histories.ts';

const ranks = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
const learningRates = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1];
/** Lowest at rank 6 and learning rate 1e-3, lower with more steps. */
const validationLoss = (rank: number, learningRate: number, step: number) => 1 + Math.abs(Math.log10(learningRate) + 3) + Math.abs(rank - 6) / 10 + 1 / step;

function fakeAccelerator() {
  const reached = new Map<string, number>();
  return {
    resolve_model: async (): Promise<ResolvedModel> => fakeResolvedModel,
    token_statistics: async (): Promise<TokenStatistics> => fakeTokenStatistics,
    async train(request: TrainRequest): Promise<TrainResult> {
      const step = request.stop_at_step ?? request.spec.train.max_steps!;
      const from = reached.get(request.run_uri) ?? 0;
      reached.set(request.run_uri, step);
      const loss = validationLoss(request.spec.lora.r, request.spec.train.learning_rate, step);
      return {
        adapter_uri: `${request.run_uri}/adapter`,
        final_step: step,
        total_steps: request.spec.train.max_steps!,
        stopped_early: false,
        train_loss: loss,
        val_loss: loss,
        best: { val_loss: loss, step },
        resumed_from_step: from,
        steps_trained: step - from,
        steps_redone: 0,
        corrupt_checkpoints_skipped: 0,
        last_checkpoint_uri: `${request.run_uri}/checkpoints/step-${String(step).padStart(8, '0')}`,
        backend: 'hf-peft',
        device: 'cpu',
        dtype: 'float32',
        optimizer: 'adamw_torch',
        gradient_checkpointing: false,
        train_rows: 100,
        packing: false,
        train_sequences: 100,
        processes: 1,
        parallelism: 'single',
        tokens_per_second: 1e4,
        model_load_seconds: 0,
        seconds_to_first_step: 0,
      };
    },
  };
}

describe('a sweep of 120 trials', () => {
  const client = useFakeAcceleratorWorkers(fakeAccelerator);
  let artifactRoot: string;
  beforeAll(async () => {
    artifactRoot = await mkdtemp(join(inject('workflowTestRoot'), 'sweep-history-'));
  });

  it('continues as new, keeps every execution small, and halves to the best trial', { timeout: 900_000 }, async () => {
    const dataset = fileURLToPath(new URL('../../examples/quickstart/data.jsonl', import.meta.url));
    const spec = parseSpec(
      { model: { source: 'tiny-random-llama' }, dataset: { path: dataset }, merge: { enabled: false }, evaluate: { enabled: false } },
      '/',
    );
    const plan = planSweep(spec, [`lora.r=${ranks.join(',')}`, `train.learning_rate=${learningRates.join(',')}`], { steps: 64, reduction_factor: 3 });
    expect(plan.trials).toHaveLength(120);
    expect(plan.rungs).toEqual([1, 2, 7, 21, 64]);
    const workflowId = `sweep-history-${Date.now()}`;
    const input: SweepInput = { spec, sweep: plan, artifact_root_uri: pathToFileURL(artifactRoot).href, max_history_events: 500 };
    const result = await client().workflow.execute(sweep, { taskQueue: TaskQueue.Orchestration, workflowId, args: [input] });

    const { table } = result;
    expect(result.executions).toBeGreaterThanOrEqual(2);
    expect(table.best).toBe('lora.r=6,train.learning_rate=0.001');
    // 120 → 40 → 14 → 5 → 2 trials, each rung training only its own steps.
    expect(table.trials.filter((row) => row.outcome === TrialOutcome.Completed)).toHaveLength(2);
    expect(table.steps_spent).toBe(120 * 1 + 40 * 1 + 14 * 5 + 5 * 14 + 2 * 43);
    expect(table.steps_without_halving).toBe(120 * 64);
    for (const row of table.trials) {
      const rank = row.parameters['lora.r'] as number;
      const learningRate = row.parameters['train.learning_rate'] as number;
      expect(row.rungs.map(({ val_loss }) => val_loss)).toEqual(row.rungs.map(({ steps }) => validationLoss(rank, learningRate, steps)));
    }

    const histories = await historyLengths(client(), workflowId);
    expect(histories).toHaveLength(result.executions);
    for (const length of histories) expect(length).toBeLessThan(1_500);
  });
});
