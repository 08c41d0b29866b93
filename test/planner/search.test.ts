import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isPlanDoesNotFitError } from '../../src/errors/index.ts';
import {
  evaluatePlan,
  largestFittingMicroBatch,
  nextSmallerMicroBatch,
  planDoesNotFitError,
  planRun,
  suggestChanges,
  SuggestionKind,
} from '../../src/planner/index.ts';
import { requestFor } from './helpers.ts';

describe('nextSmallerMicroBatch', () => {
  it('halves through divisors and keeps the effective batch', () => {
    expect(nextSmallerMicroBatch({ micro_batch_size: 8, gradient_accumulation_steps: 2 })).toEqual({ micro_batch_size: 4, gradient_accumulation_steps: 4 });
    expect(nextSmallerMicroBatch({ micro_batch_size: 6, gradient_accumulation_steps: 1 })).toEqual({ micro_batch_size: 3, gradient_accumulation_steps: 2 });
    expect(nextSmallerMicroBatch({ micro_batch_size: 5, gradient_accumulation_steps: 1 })).toEqual({ micro_batch_size: 1, gradient_accumulation_steps: 5 });
    expect(nextSmallerMicroBatch({ micro_batch_size: 1, gradient_accumulation_steps: 16 })).toBeNull();
  });

  it('keeps the other fields of a plan request', () => {
    const request = requestFor('llama-3.2-1b', { micro_batch_size: 4, gradient_accumulation_steps: 3 });
    expect(nextSmallerMicroBatch(request)).toEqual({ ...request, micro_batch_size: 3, gradient_accumulation_steps: 4 });
  });

  it('always returns a strictly smaller micro-batch with the same effective batch, or null at 1', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 512 }), fc.integer({ min: 1, max: 64 }), (micro, accumulation) => {
        const next = nextSmallerMicroBatch({ micro_batch_size: micro, gradient_accumulation_steps: accumulation });
        if (micro === 1) return next === null;
        return next !== null && next.micro_batch_size < micro && next.micro_batch_size * next.gradient_accumulation_steps === micro * accumulation;
      }),
    );
  });
});

describe('largestFittingMicroBatch', () => {
  it('finds the largest micro-batch that fits and reaches the effective batch exactly', () => {
    const request = requestFor('llama-3.1-8b', { device: { gpu: 'rtx-4090' }, quantization: '4bit', backend: 'unsloth', optimizer: 'adamw_8bit' });
    const choice = largestFittingMicroBatch(request, 32);
    expect(choice).not.toBeNull();
    expect(choice!.micro_batch_size * choice!.gradient_accumulation_steps).toBe(32);
    expect(choice!.plan.fits).toBe(true);
    const twice = choice!.micro_batch_size * 2;
    if (twice <= 32) expect(evaluatePlan({ ...request, micro_batch_size: twice }).fits).toBe(false);
  });

  it('counts each GPU as taking its own micro-batch', () => {
    const choice = largestFittingMicroBatch(requestFor('llama-3.2-1b', { device: { gpu: 'h100', count: 4 } }), 16);
    expect(choice!.micro_batch_size * choice!.gradient_accumulation_steps * 4).toBe(16);
  });

  it('is null when nothing fits', () => {
    expect(largestFittingMicroBatch(requestFor('llama-3.3-70b', { device: { gpu: 'rtx-4090' } }), 8)).toBeNull();
  });
});

describe('suggestions', () => {
  it('are empty for a plan that fits', () => {
    expect(planRun(requestFor('llama-3.2-1b')).suggestions).toEqual([]);
  });

  it('for 70B QLoRA on a 4090: four 4090s sharded or a bigger GPU, each with its new peak; two 4090s are too few', () => {
    const request = requestFor('llama-3.3-70b', { quantization: '4bit', backend: 'unsloth', device: { gpu: 'rtx-4090' }, optimizer: 'adamw_8bit' });
    const plan = planRun(request);
    expect(plan.fits).toBe(false);
    expect(plan.reasons.join(' ')).toMatch(/4-bit NF4 weights of llama-3.3-70b alone take/);
    expect(plan.suggestions.map((suggestion) => suggestion.kind)).toEqual(['more-gpus', 'bigger-gpu']);
    expect(plan.suggestions[0]).toMatchObject({
      changes: { backend: 'hf-peft', parallelism: 'fsdp', optimizer: 'adamw_torch', device: { gpu: 'rtx-4090', count: 4 } },
      description: '4 × rtx-4090 (23.99 GiB each), FSDP with hf-peft: each GPU keeps 1/4 of the weights and adapter state, optimizer adamw_torch',
      fits: true,
    });
    expect(plan.suggestions[1]).toMatchObject({ changes: { device: { gpu: 'l40s', count: 1 } }, description: '1 × l40s (44.99 GiB each)', fits: true });
    // Over two, each 4090's half of the model is more than its 23.99 GiB.
    const two = evaluatePlan({ ...request, backend: 'hf-peft', parallelism: 'fsdp', optimizer: 'adamw_torch', device: { gpu: 'rtx-4090', count: 2 } });
    expect(two.fits).toBe(false);
    for (const suggestion of plan.suggestions) {
      expect(suggestion.fits).toBe(true);
      expect(suggestion.peak_vram_gib).toBeLessThanOrEqual(suggestion.available_gib);
      expect(evaluatePlan({ ...request, ...suggestion.changes, device: suggestion.changes.device ?? request.device }).peak_vram_gib).toBe(
        suggestion.peak_vram_gib,
      );
    }
  });

  it('lists the cheapest kind of change first: checkpointing before smaller batches, quantisation, rank, sequence, money', () => {
    const request = requestFor('llama-3.1-8b', {
      device: { gpu: 'rtx-4090' },
      gradient_checkpointing: false,
      micro_batch_size: 2,
      gradient_accumulation_steps: 4,
    });
    const order: string[] = Object.values(SuggestionKind);
    const positions = suggestChanges(request).map((suggestion) => order.indexOf(suggestion.kind));
    expect(positions.length).toBeGreaterThan(1);
    expect(positions).toEqual([...positions].sort((left, right) => left - right));
    const small = requestFor('llama-3.2-1b', { device: { gpu: 'l4' }, gradient_checkpointing: false, micro_batch_size: 4 });
    const smallKinds = suggestChanges(small).map((suggestion) => suggestion.kind);
    expect(smallKinds[0]).toBe('enable-gradient-checkpointing');
    expect(smallKinds).toContain('smaller-micro-batch');
  });

  it('picks the mildest change of each kind: the largest rank and the longest sequence that fit', () => {
    const request = requestFor('llama-3.2-3b', {
      device: { gpu: 'l4' },
      micro_batch_size: 4,
      sequence_length: 8192,
      lora_rank: 256,
      gradient_checkpointing: false,
      backend: 'unsloth',
    });
    for (const suggestion of suggestChanges(request).filter((candidate) => candidate.kind === 'shorter-sequence')) {
      const longer = (suggestion.changes.sequence_length ?? 0) * 2;
      expect(evaluatePlan({ ...request, sequence_length: longer }).fits).toBe(false);
    }
  });
});

describe('planDoesNotFitError', () => {
  it('carries the reasons and the cheapest change in its message and the plan in its details', () => {
    const plan = planRun(requestFor('llama-3.3-70b', { quantization: '4bit', backend: 'unsloth', device: { gpu: 'rtx-4090' } }));
    const error = planDoesNotFitError(plan);
    expect(isPlanDoesNotFitError(error)).toBe(true);
    expect(error.nonRetryable).toBe(true);
    expect(error.message).toMatch(/alone take .* cheapest change that fits: /);
    expect(error.details.plan).toBe(plan);
  });
});
