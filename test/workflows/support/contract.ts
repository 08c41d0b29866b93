/**
 * Each activity a workflow calls, with the schemas its request and result must match: the contract's own schemas
 * (src/contract/) for the Python activities and the planner's bookkeeping, the registry's for its records. A fake
 * that receives a request, or would return a result, outside these fails the test (see FakeRun.violations).
 */
import { z } from 'zod';
import {
  acceleratorActivitySchemas,
  planRunRequestSchema,
  prepareDatasetRequestSchema,
  preparedDatasetReportSchema,
  replanRequestSchema,
  replanSchema,
  runPlanSchema,
  verifiedCheckpointsSchema,
} from '../../../src/contract/index.ts';
import { runQualitySchema } from '../../../src/quality/index.ts';
import { modelExportSchema, modelVersionSchema } from '../../../src/registry/schema.ts';
import { runSpecSchema } from '../../../src/spec/schema.ts';

const artifactUri = z.string().regex(/^(file|s3):\/\//);

export const bookkeepingActivitySchemas = {
  prepareDataset: { request: prepareDatasetRequestSchema, result: preparedDatasetReportSchema },
  planRun: { request: planRunRequestSchema, result: runPlanSchema },
  replanAfterOutOfMemory: { request: replanRequestSchema, result: replanSchema },
  recordCheckpoints: {
    request: z.object({ run_uri: artifactUri, summary: z.record(z.string(), z.unknown()), checkpoints: verifiedCheckpointsSchema }),
    result: verifiedCheckpointsSchema.extend({ run_manifest_uri: artifactUri }),
  },
  recordRunQuality: { request: z.object({ run_uri: artifactUri, quality: runQualitySchema }), result: z.void() },
  loadRetrainSpec: { request: z.object({ spec_path: z.string().min(1) }), result: runSpecSchema },
  compareWithChampion: {
    request: z.object({ artifact_root_uri: artifactUri, model_name: z.string().min(1), spec: runSpecSchema, dataset_hash: z.string().regex(/^[0-9a-f]{64}$/) }),
    result: z.object({ spec_hash: z.string(), champion: modelVersionSchema.nullable(), unchanged: z.boolean() }),
  },
  registerModel: {
    request: z.object({ artifact_root_uri: artifactUri, model: modelVersionSchema.omit({ version: true, created_at: true, exports: true }) }),
    result: modelVersionSchema,
  },
  promoteModel: {
    request: z.object({
      artifact_root_uri: artifactUri,
      name: z.string().min(1),
      version: z.number().int().positive(),
      expected_champion: z.number().int().positive().nullable(),
      reason: z.string().min(1),
    }),
    result: z.unknown(),
  },
  recordModelExports: {
    request: z.object({ artifact_root_uri: artifactUri, name: z.string().min(1), version: z.number().int().positive(), exports: z.array(modelExportSchema) }),
    result: z.void(),
  },
} as const;

export const activitySchemas = { ...acceleratorActivitySchemas, ...bookkeepingActivitySchemas } as const;
export type ActivityName = keyof typeof activitySchemas;
export type ActivityRequest<Name extends ActivityName> = z.infer<(typeof activitySchemas)[Name]['request']>;
export type ActivityResult<Name extends ActivityName> = z.infer<(typeof activitySchemas)[Name]['result']>;
