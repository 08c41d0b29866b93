import { z } from 'zod';
import { gateSchema, gateVerdictSchema, judgedAgainstSchema } from '../quality/gates.ts';

/**
 * The registry's records. The registry is an append-only log of events; a model's versions, its champion and the
 * champion's history are a fold over that log (registry.ts), never stored twice.
 */

/** What a model was made from: enough to say whether retraining would change anything, and to reproduce it. */
export const lineageSchema = z.strictObject({
  /** sha256 of the spec's training-relevant fields (specHash in lineage.ts). */
  spec_hash: z.string().min(1),
  /** The prepared dataset's content hash (its key in the artifact store). */
  dataset_hash: z.string().min(1),
  /** The spec's model.source: a builtin name, a directory or a .gguf file. */
  base_model: z.string().min(1),
  /** The checkpoint the final adapter came from, when training wrote one. */
  parent_checkpoint: z.string().nullable(),
  workflow_id: z.string().min(1),
});
export type Lineage = z.infer<typeof lineageSchema>;

export const modelExportSchema = z.strictObject({
  format: z.string().min(1),
  uri: z.string().min(1),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().min(1),
});
export type ModelExport = z.infer<typeof modelExportSchema>;

export const modelVersionSchema = z.strictObject({
  name: z.string().min(1),
  version: z.number().int().positive(),
  adapter_uri: z.string().min(1),
  merged_uri: z.string().nullable(),
  lineage: lineageSchema,
  /** val_loss and friends; comparable between versions only when evaluated_on is the same. */
  metrics: z.record(z.string(), z.number().nullable()),
  /** Content hash of the held-out set the metrics were measured on. */
  evaluated_on: z.string().nullable(),
  exports: z.array(modelExportSchema),
  created_at: z.string().min(1),
  /**
   * The spec's promotion gates and their verdict when registered (src/quality). The suites' scores are in metrics:
   * `<suite>.<metric>` the version's own, `base.<suite>.<metric>` its base model's, `champion.…` the champion's.
   */
  quality: z.strictObject({ gates: z.array(gateSchema), verdict: gateVerdictSchema }).optional(),
  /**
   * What each judge suite's metrics (`<suite>.win_rate`…) compare this version with: the champion version it was
   * judged against in retraining, or its base. Absent in versions registered before it was recorded.
   */
  judged_against: judgedAgainstSchema.optional(),
});
export type ModelVersion = z.infer<typeof modelVersionSchema>;

/** A model version as a caller registers it: the registry assigns the version number and the time. */
export type NewModelVersion = Omit<ModelVersion, 'version' | 'created_at' | 'exports'> & { exports?: ModelExport[] };

const eventBase = { sequence: z.number().int().positive(), at: z.string().min(1) };

export const registryEventSchema = z.discriminatedUnion('event', [
  z.strictObject({ ...eventBase, event: z.literal('registered'), model: modelVersionSchema }),
  z.strictObject({
    ...eventBase,
    event: z.literal('promoted'),
    name: z.string().min(1),
    version: z.number().int().positive(),
    previous: z.number().int().positive().nullable(),
    reason: z.string(),
    /** Who promoted it past failed gates (`tuneflow models promote --force`); absent when the gates passed. */
    forced_by: z.string().min(1).optional(),
  }),
  z.strictObject({
    ...eventBase,
    event: z.literal('rolled_back'),
    name: z.string().min(1),
    /** The champion restored. */
    version: z.number().int().positive(),
    /** The champion demoted. */
    previous: z.number().int().positive(),
    reason: z.string(),
  }),
  z.strictObject({
    ...eventBase,
    event: z.literal('exported'),
    name: z.string().min(1),
    version: z.number().int().positive(),
    exports: z.array(modelExportSchema),
  }),
]);
export type RegistryEvent = z.infer<typeof registryEventSchema>;
/** An event as an operation proposes it, before the log gives it a sequence number and a time. */
export type ProposedEvent = RegistryEvent extends infer Event ? (Event extends RegistryEvent ? Omit<Event, 'sequence' | 'at'> : never) : never;

/** One change of champion, as `tuneflow models show` lists them. */
export interface ChampionChange {
  sequence: number;
  at: string;
  event: 'promoted' | 'rolled_back';
  version: number;
  previous: number | null;
  reason: string;
  forced_by?: string;
}
