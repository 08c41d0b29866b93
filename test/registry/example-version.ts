import type { NewModelVersion } from '../../src/registry/index.ts';

/** A registry entry with plausible lineage; the registry only records it, so no training is needed to make one. */
export function exampleVersion(name: string, options: { workflowId: string; valLoss: number; datasetHash?: string }): NewModelVersion {
  return {
    name,
    adapter_uri: `file:///artifacts/runs/${options.workflowId}/adapter`,
    merged_uri: `file:///artifacts/runs/${options.workflowId}/merged`,
    lineage: {
      spec_hash: 'spec-a',
      dataset_hash: options.datasetHash ?? 'dataset-a',
      base_model: 'tiny-random-llama',
      parent_checkpoint: `file:///artifacts/runs/${options.workflowId}/checkpoints/step-00000012`,
      workflow_id: options.workflowId,
    },
    metrics: { val_loss: options.valLoss },
    evaluated_on: 'heldout-a',
  };
}
