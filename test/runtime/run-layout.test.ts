/** A run is a value: a workflow's runs each have their own folder and training child, named by the run. */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RunLayout } from '../../src/runtime/layout.ts';
import { trainingWorkflowId } from '../../workflows/train-adapter.ts';

describe('runs of one workflow', () => {
  it("keep the default run where fineTune's run always was, and nest each named run in the workflow's folder", () => {
    expect(RunLayout.of('file:///store', 'pipeline-1').root).toBe('file:///store/runs/pipeline-1');
    expect(RunLayout.of('file:///store', 'pipeline-1', 'sft').checkpoints).toBe('file:///store/runs/pipeline-1/sft/checkpoints');
    expect(RunLayout.of('file:///store', 'pipeline-1', 'dpo').merged).toBe('file:///store/runs/pipeline-1/dpo/merged');
  });

  it("keep a workflow id holding '/' (a sweep's trial) in one folder, whether the store is a URI or a path", () => {
    const trial = 'sweep-1/trial-lora.r=8';
    // On disk the folder is the escaped id; the URI escapes that name once more, so decoding it once gives it back.
    expect(RunLayout.of('/store', trial).root).toBe('/store/runs/sweep-1%2Ftrial-lora.r%3D8');
    const uri = RunLayout.of('file:///store', trial).checkpoints;
    expect(fileURLToPath(uri)).toBe('/store/runs/sweep-1%2Ftrial-lora.r%3D8/checkpoints');
    expect(decodeURIComponent(new URL(RunLayout.of('s3://bucket/store', trial).root).pathname)).toBe('/store/runs/sweep-1%2Ftrial-lora.r%3D8');
  });

  it('give each named run its own training child', () => {
    expect(trainingWorkflowId('pipeline-1')).toBe('pipeline-1/train');
    expect(trainingWorkflowId('pipeline-1', 'sft')).toBe('pipeline-1/train/sft');
    expect(trainingWorkflowId('pipeline-1', 'dpo')).not.toBe(trainingWorkflowId('pipeline-1', 'sft'));
  });

  it("refuse names that are not one path segment, or that a run folder's own entries take", () => {
    expect(RunLayout.runNameProblem('rank-16.v2')).toBeNull();
    expect(RunLayout.runNameProblem('a/b')).toMatch(/letters, digits/);
    expect(RunLayout.runNameProblem('..')).toMatch(/letters, digits/);
    expect(RunLayout.runNameProblem('')).toMatch(/letters, digits/);
    expect(RunLayout.runNameProblem('checkpoints')).toMatch(/taken by the run folder/);
    expect(RunLayout.runNameProblem('Merged')).toMatch(/taken by the run folder/);
  });
});
