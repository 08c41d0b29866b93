import { existsSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { match } from 'ts-pattern';
import {
  type AutoAlternative,
  checkPayload,
  type ModelFacts,
  modelFactsSchema,
  type TokenStatistics,
  tokenStatisticsSchema,
  type WorkerFacts,
} from '../../contract/index.ts';
import { InvalidSpecError, isTuneflowError, ModelNotFoundError } from '../../errors/index.ts';
import {
  architectureFromHuggingFaceConfig,
  describeWeightPrecision,
  findArchitecture,
  findGpu,
  gpuCatalog,
  inferenceMemory,
  largestFittingMicroBatch,
  type ModelArchitecture,
  type Plan,
  type PlannedSpec,
  type PlannerOptimizer,
  type PlanRequest,
  plannedTokensFrom,
  planTrainingRun,
  type Quantization,
  rankTradeOffs,
  type RunPlanInput,
  type TrainingBackend,
  unknownGpuError,
} from '../../planner/index.ts';
import { examples } from './examples.ts';
import { loadSpecFile } from '../../spec/load.ts';
import type { RunSpec } from '../../spec/schema.ts';

/**
 * `tuneflow plan`: will a run fit, how fast will it go, what to change. Exit code 0 when the plan fits, 1 when it
 * does not (so scripts can gate on it), 2 when the input is wrong.
 */

export const PlanExitCode = {
  Fits: 0,
  DoesNotFit: 1,
  InvalidInput: 2,
} as const;
export type PlanExitCode = (typeof PlanExitCode)[keyof typeof PlanExitCode];

export interface PlanCommandResult {
  exit_code: PlanExitCode;
  output: string;
}

export interface PlanCommandOptions {
  model?: string;
  gpu?: string;
  gpus?: number;
  parallelism?: RunSpec['device']['parallelism'];
  cpuProcesses?: number;
  gpuMemory?: number;
  backend?: TrainingBackend;
  quant?: Quantization;
  rank?: number;
  targetModules?: string;
  seq?: number;
  microBatch?: number | 'auto';
  gradAccum?: number;
  batchSize?: number;
  gradCkpt?: boolean;
  optimizer?: PlannerOptimizer;
  tokens?: number;
  epochs?: number;
  ranks?: number[];
  effectiveBatch?: number;
  facts?: string;
  tokenStatistics?: string;
  json?: boolean;
}

const positiveInteger = (value: string): number => {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) throw new InvalidArgumentError('expected a positive integer');
  return parsed;
};
const positiveNumber = (value: string): number => {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0) throw new InvalidArgumentError('expected a positive number');
  return parsed;
};
const positiveIntegerOrAuto = (value: string): number | 'auto' => (value === 'auto' ? 'auto' : positiveInteger(value));
const positiveIntegerList = (value: string): number[] => value.split(',').map((part) => positiveInteger(part.trim()));

/** Where the command's text and exit code go: the process by default, a buffer in runPlanCommand. */
export interface PlanCommandIo {
  write: (text: string) => void;
  exit: (code: PlanExitCode) => void;
}

const processIo: PlanCommandIo = {
  write: (text) => process.stdout.write(text),
  exit: (code) => {
    process.exitCode = code;
  },
};

export function registerPlanCommand(program: Command, io: PlanCommandIo = processIo): Command {
  return program
    .command('plan')
    .description('Predict peak memory, throughput and time of a LoRA/QLoRA run, and what to change when it does not fit')
    .argument('[spec]', 'run spec (YAML or JSON); flags override its fields')
    .option('--model <model>', 'catalog name, Hugging Face id, model directory or config.json')
    .option('--gpu <gpu>', `GPU from the catalog (${gpuCatalog.map((gpu) => gpu.id).join(', ')}) or "cpu"`)
    .option('--gpus <count>', 'number of GPUs', positiveInteger)
    .addOption(
      new Option('--parallelism <parallelism>', 'how several GPUs share the run (auto: ddp where it fits, else fsdp)').choices(['auto', 'ddp', 'fsdp']),
    )
    .option('--cpu-processes <count>', 'training processes on a CPU', positiveInteger)
    .option('--gpu-memory <gib>', 'override the GPU memory (GiB), e.g. for a shared GPU', positiveNumber)
    .addOption(new Option('--backend <backend>', 'training backend').choices(['unsloth', 'hf-peft']))
    .addOption(new Option('--quant <quantization>', 'base weight quantisation').choices(['none', '8bit', '4bit']))
    .option('--rank <r>', 'LoRA rank', positiveInteger)
    .option('--target-modules <modules>', 'all-linear or a comma list such as q_proj,v_proj')
    .option('--seq <tokens>', 'sequence length', positiveInteger)
    .option('--micro-batch <size>', 'micro-batch size per GPU, or auto: the fastest split of --batch-size that fits', positiveIntegerOrAuto)
    .option('--grad-accum <steps>', 'gradient accumulation steps (with a fixed --micro-batch)', positiveInteger)
    .option('--batch-size <size>', 'effective batch per GPU: micro-batch × accumulation (train.batch_size)', positiveInteger)
    .option('--grad-ckpt', 'gradient checkpointing on')
    .option('--no-grad-ckpt', 'gradient checkpointing off')
    .addOption(new Option('--optimizer <optimizer>', 'optimizer').choices(['adamw_torch', 'adamw_8bit', 'paged_adamw_8bit']))
    .option('--tokens <count>', 'dataset tokens, for the time estimate', positiveInteger)
    .option('--epochs <count>', 'epochs over the dataset', positiveNumber)
    .option('--ranks <list>', 'rank trade-off table for these ranks, e.g. 8,16,32,64,128,256', positiveIntegerList)
    .option('--effective-batch <size>', 'find the largest micro-batch reaching this effective batch', positiveInteger)
    .option('--facts <file>', "a worker's facts (resolve_model's result, a finished run's model): plan exactly as the workflow would there")
    .option('--token-statistics <file>', "token_statistics' result (a run's tokens): plan the time on the data's real lengths, as the workflow does")
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      examples([
        'tuneflow plan examples/quickstart/spec.yaml --gpu cpu',
        'tuneflow plan --model llama-3.1-8b --gpu rtx-4090 --quant 4bit',
        'tuneflow plan --model qwen2.5-7b --gpu a100-80gb --ranks 8,16,32,64 --json',
        'tuneflow plan --model llama-3.1-70b --gpu rtx-4090 --gpus 2 --quant 4bit',
      ]),
    )
    .action((spec: string | undefined, options: PlanCommandOptions) => {
      const result = executePlanCommand(spec, options);
      io.write(result.output);
      io.exit(result.exit_code);
    });
}

/** Runs `tuneflow plan ARGS` in-process and returns what it would print and its exit code. */
export async function runPlanCommand(args: readonly string[]): Promise<PlanCommandResult> {
  let output = '';
  let exitCode: PlanExitCode = PlanExitCode.Fits;
  const capture = { writeOut: (text: string) => (output += text), writeErr: (text: string) => (output += text) };
  const program = new Command('tuneflow').exitOverride().configureOutput(capture);
  registerPlanCommand(program, { write: (text) => (output += text), exit: (code) => (exitCode = code) })
    .exitOverride()
    .configureOutput(capture);
  try {
    await program.parseAsync(['plan', ...args], { from: 'user' });
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    // --help exits 0 through the same path; anything else commander rejects is bad input.
    return { exit_code: error.exitCode === 0 ? PlanExitCode.Fits : PlanExitCode.InvalidInput, output };
  }
  return { exit_code: exitCode, output };
}

/** One run's plan: its JSON document and its text, and whether it fits. */
function planOf(spec: RunSpec | undefined, specPath: string | undefined, options: PlanCommandOptions) {
  const { setup, request, plan } = planTrainingRun(planInputFrom(spec, specPath, options));
  const extras = {
    ...(options.ranks === undefined ? {} : { rank_trade_offs: rankTradeOffs(request, options.ranks) }),
    inference_memory: inferenceMemory(request.architecture, request.sequence_length),
    ...(options.effectiveBatch === undefined ? {} : { micro_batch_search: microBatchSearch(request, options.effectiveBatch) }),
  };
  return { fits: plan.fits, document: { ...plan, setup, request: describeRequest(request), ...extras }, text: formatPlan(request, plan, extras) };
}

export function executePlanCommand(specPath: string | undefined, options: PlanCommandOptions): PlanCommandResult {
  try {
    const file = specPath === undefined ? undefined : loadSpecFile(specPath);
    if (file?.kind === 'runs') {
      // Every run of the spec, as `tuneflow run` plans them before the first trains; a run started from another
      // is planned on the model it starts from (its merged model has the same architecture).
      const plans = file.runs.runs.map((run) => ({ run, ...planOf(run.spec, specPath, options) }));
      const output =
        options.json === true
          ? `${JSON.stringify({ runs: plans.map(({ run, document }) => ({ name: run.name, from: run.from, ...document })) }, null, 2)}\n`
          : plans
              .map(({ run, text }) => `── run ${run.name} (${run.spec.train.objective.kind}${run.from === null ? '' : `, from ${run.from}`})\n${text}`)
              .join('\n');
      return { exit_code: plans.every(({ fits }) => fits) ? PlanExitCode.Fits : PlanExitCode.DoesNotFit, output };
    }
    const { fits, document, text } = planOf(file?.spec, specPath, options);
    const output = options.json === true ? `${JSON.stringify(document, null, 2)}\n` : text;
    return { exit_code: fits ? PlanExitCode.Fits : PlanExitCode.DoesNotFit, output };
  } catch (error) {
    if (!isTuneflowError(error)) throw error;
    return {
      exit_code: PlanExitCode.InvalidInput,
      output: options.json === true ? `${JSON.stringify({ error: error.message, details: error.details })}\n` : `error: ${error.message}\n`,
    };
  }
}

function microBatchSearch(request: PlanRequest, effectiveBatch: number) {
  const choice = largestFittingMicroBatch(request, effectiveBatch);
  return choice === null
    ? { effective_batch_size: effectiveBatch, fits: false }
    : {
        effective_batch_size: effectiveBatch,
        fits: true,
        micro_batch_size: choice.micro_batch_size,
        gradient_accumulation_steps: choice.gradient_accumulation_steps,
        peak_vram_gib: choice.plan.peak_vram_gib,
        tokens_per_s: choice.plan.tokens_per_s,
      };
}

/**
 * The planner's input, by the same path as the workflow's plan stage: spec values first, flags over them, and as
 * the worker either the facts one reported (--facts) or the machine the flags name. 'auto' stays 'auto' here:
 * resolveTrainingSetup decides it, as it does for a run.
 */
export function planInputFrom(spec: RunSpec | undefined, specPath: string | undefined, options: PlanCommandOptions): RunPlanInput {
  const planned = plannedSpecFrom(spec, options);
  const tokens =
    options.tokenStatistics !== undefined
      ? plannedTokensFrom(readTokenStatistics(options.tokenStatistics))
      : options.tokens === undefined
        ? {}
        : { dataset_tokens: options.tokens };
  if (options.facts !== undefined) {
    const facts = readModelFacts(options.facts);
    const name = options.model ?? spec?.model.source ?? facts.source;
    return { spec: planned, worker: facts, architecture: architectureFromHuggingFaceConfig(facts.config, name), tokens };
  }
  const source = options.model ?? spec?.model.source;
  if (source === undefined) throw new InvalidSpecError('give a run spec or --model', { field: 'model.source' });
  const architecture = resolveArchitecture(source, specPath === undefined ? undefined : dirname(specPath));
  return { spec: planned, worker: assumedWorker(planned.device), architecture, tokens };
}

/** Each batch flag over its spec field; how the three combine is resolveTrainingSetup's rule (setup/batch.ts), as for a run. */
function plannedBatch(
  spec: RunSpec | undefined,
  options: PlanCommandOptions,
): Pick<PlannedSpec['train'], 'micro_batch_size' | 'gradient_accumulation_steps' | 'batch_size'> {
  const accumulation = options.gradAccum ?? spec?.train.gradient_accumulation_steps;
  const batchSize = options.batchSize ?? spec?.train.batch_size;
  return {
    micro_batch_size: options.microBatch ?? spec?.train.micro_batch_size ?? 'auto',
    ...(accumulation === undefined ? {} : { gradient_accumulation_steps: accumulation }),
    ...(batchSize === undefined ? {} : { batch_size: batchSize }),
  };
}

/**
 * The spec fields the planner reads, flags over the spec's; without a spec, the spec's defaults (micro-batch auto
 * over an effective batch of 4).
 */
function plannedSpecFrom(spec: RunSpec | undefined, options: PlanCommandOptions): PlannedSpec {
  const gpu = options.gpu === 'cpu' ? undefined : options.gpu;
  const type = options.gpu === undefined ? (spec?.device.type ?? 'auto') : gpu === undefined ? 'cpu' : 'cuda';
  const targetModules =
    options.targetModules === undefined
      ? spec?.lora.target_modules
      : options.targetModules === 'all-linear'
        ? 'all-linear'
        : options.targetModules.split(',').map((module) => module.trim());
  return {
    model: { max_seq_length: options.seq ?? spec?.model.max_seq_length ?? 2048 },
    lora: { r: options.rank ?? spec?.lora.r ?? 16, target_modules: targetModules ?? 'all-linear' },
    train: {
      ...plannedBatch(spec, options),
      epochs: options.epochs ?? spec?.train.epochs ?? 1,
      optimizer: options.optimizer ?? spec?.train.optimizer ?? 'auto',
      gradient_checkpointing: options.gradCkpt ?? spec?.train.gradient_checkpointing ?? 'auto',
      packing: spec?.train.packing ?? 'auto',
      ...(spec?.train.max_steps === undefined ? {} : { max_steps: spec.train.max_steps }),
    },
    device: {
      type,
      gpu: gpu ?? spec?.device.gpu ?? 'auto',
      gpu_count: options.gpus ?? spec?.device.gpu_count ?? 1,
      parallelism: options.parallelism ?? spec?.device.parallelism ?? 'auto',
      cpu_processes: options.cpuProcesses ?? spec?.device.cpu_processes ?? 1,
      gpu_memory_gib: options.gpuMemory ?? spec?.device.gpu_memory_gib,
      backend: options.backend ?? spec?.device.backend ?? 'auto',
      quantization: options.quant ?? spec?.device.quantization ?? 'none',
    },
  };
}

/**
 * The worker a run would get on the machine the flags name. A GPU is taken to have what a tuneflow GPU worker
 * installs (Unsloth, bitsandbytes) and bf16 (every catalog GPU is Ampere or newer); a CPU is this machine.
 */
function assumedWorker(device: PlannedSpec['device']): WorkerFacts {
  if (device.type === 'cpu') {
    return {
      device: { kind: 'cpu', name: 'this machine', memory_gib: totalmem() / 2 ** 30, count: 1, cores: availableParallelism() },
      cuda_bf16_supported: false,
      unsloth_importable: false,
      bitsandbytes_importable: false,
    };
  }
  if (device.gpu === 'auto') {
    throw new InvalidSpecError(`which device? pass --gpu (a catalog GPU or "cpu") or --facts (a worker's facts); the spec says device.gpu: auto`, {
      field: 'device.gpu',
    });
  }
  const memory = device.gpu_memory_gib ?? findGpu(device.gpu)?.memory_gib;
  if (memory === undefined) throw unknownGpuError(device.gpu);
  return {
    device: { kind: 'cuda', name: device.gpu, memory_gib: memory, count: device.gpu_count },
    cuda_bf16_supported: true,
    unsloth_importable: true,
    bitsandbytes_importable: true,
  };
}

function readTokenStatistics(path: string): TokenStatistics {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new InvalidSpecError(`--token-statistics ${path} is not a readable JSON file: ${(error as Error).message}`, { field: 'token-statistics' });
  }
  return checkPayload(tokenStatisticsSchema, parsed, `--token-statistics ${path} (token_statistics' result)`);
}

function readModelFacts(path: string): ModelFacts {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new InvalidSpecError(`--facts ${path} is not a readable JSON file: ${(error as Error).message}`, { field: 'facts' });
  }
  return checkPayload(modelFactsSchema, parsed, `--facts ${path} (a worker's facts, resolve_model's result)`);
}

/**
 * A catalog name (or alias, or builtin), a Hugging Face model directory, or a config.json; a relative path in a
 * spec starts at the spec's directory.
 */
function resolveArchitecture(source: string, specDirectory: string | undefined): ModelArchitecture {
  const catalogued = findArchitecture(source);
  if (catalogued !== undefined) return catalogued;
  const location = specDirectory === undefined || isAbsolute(source) ? source : resolve(specDirectory, source);
  if (!existsSync(location)) {
    throw new ModelNotFoundError(`unknown model "${source}": neither a catalog model nor a directory with config.json (try --model llama-3.1-8b)`, { source });
  }
  const configPath = statSync(location).isDirectory() ? join(location, 'config.json') : location;
  if (configPath.endsWith('.gguf')) {
    throw new InvalidSpecError(`the planner reads a Hugging Face config.json, not ${basename(configPath)}; plan with --model set to the model's catalog name`, {
      field: 'model.source',
    });
  }
  if (!existsSync(configPath)) throw new ModelNotFoundError(`${location} has no config.json`, { source });
  const name = basename(location === configPath ? dirname(location) : location);
  return architectureFromHuggingFaceConfig(JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>, name);
}

function describeRequest(request: PlanRequest) {
  const { architecture, ...rest } = request;
  return { model: architecture.name, ...rest };
}

type PlanExtras = {
  rank_trade_offs?: ReturnType<typeof rankTradeOffs>;
  inference_memory: ReturnType<typeof inferenceMemory>;
  micro_batch_search?: ReturnType<typeof microBatchSearch>;
};

/** What 'auto' chose and what it was chosen over, each with its predicted tokens/s and peak. */
function autoChoiceLines(plan: Plan): string[] {
  const choice = plan.auto_choice;
  if (choice === undefined) return [];
  const describe = (alternative: AutoAlternative) =>
    `micro-batch ${alternative.micro_batch_size} × ${alternative.gradient_accumulation_steps}, gradient checkpointing ${alternative.gradient_checkpointing ? 'on' : 'off'} (${formatCount(alternative.tokens_per_s)} tokens/s, peak ${alternative.peak_vram_gib.toFixed(2)} GiB)`;
  return [
    `Auto: ${describe(choice.chosen)}: ${choice.reason}`,
    ...choice.rejected.map((alternative) => `  rejected ${describe(alternative)}: ${alternative.why}`),
  ];
}

function formatPlan(request: PlanRequest, plan: Plan, extras: PlanExtras): string {
  const lines: string[] = [];
  const quantization = describeWeightPrecision(request.quantization, plan.device.kind);
  const targets = request.target_modules === 'all-linear' ? 'all-linear' : request.target_modules.join(',');
  lines.push(
    `Plan: ${request.architecture.name} (${(plan.total_parameters / 1e9).toFixed(2)} B parameters), ${request.backend}, ${quantization} weights, LoRA r=${request.lora_rank} on ${targets} (${formatCount(plan.trainable_parameters)} trainable)`,
    `      sequence ${request.sequence_length} × micro-batch ${request.micro_batch_size} × ${request.gradient_accumulation_steps} accumulation = effective batch ${plan.effective_batch_size}, gradient checkpointing ${request.gradient_checkpointing ? 'on' : 'off'}, ${request.optimizer}`,
    plan.device.kind === 'cuda'
      ? `Device: ${plan.device.count} × ${plan.device.name}, ${plan.device.memory_gib} GiB each${plan.device.count > 1 ? `, ${describeParallelism(request)}` : ''}`
      : `Device: CPU, ${plan.device.count} cores, ${plan.device.memory_gib.toFixed(1)} GiB RAM (${plan.available_gib} usable${(request.cpu_processes ?? 1) > 1 ? ` by each of ${request.cpu_processes} processes), ${describeParallelism(request)}` : ')'}`,
    ...autoChoiceLines(plan),
    '',
    `  ${'memory term'.padEnd(24)} ${'GiB'.padStart(9)}`,
    ...Object.entries(plan.breakdown).map(([term, value]) => `  ${term.padEnd(24)} ${value.toFixed(3).padStart(9)}`),
    `  ${'peak per device'.padEnd(24)} ${plan.peak_vram_gib.toFixed(3).padStart(9)}   of ${plan.available_gib} GiB available`,
    '',
  );
  if (plan.fits) {
    lines.push(`FITS with ${(plan.available_gib - plan.peak_vram_gib).toFixed(2)} GiB to spare.`);
  } else {
    lines.push('DOES NOT FIT:', ...plan.reasons.map((reason) => `  - ${reason}`));
    lines.push(
      ...(plan.suggestions.length === 0
        ? ['No change the planner knows makes it fit.']
        : [
            'What would fit (cheapest change first):',
            ...plan.suggestions.map(
              (suggestion) =>
                `  - ${suggestion.description}: peak ${suggestion.peak_vram_gib.toFixed(2)} of ${suggestion.available_gib} GiB, ${formatCount(suggestion.tokens_per_s)} tokens/s`,
            ),
          ]),
    );
  }
  lines.push(
    '',
    `Throughput: ${formatCount(plan.tokens_per_s)} tokens/s, ${formatCount(plan.tokens_per_hour)} tokens/hour; ${plan.step_seconds.toFixed(2)} s per optimizer step`,
  );
  const time = plan.run_time;
  if (time !== undefined) {
    lines.push(
      `Time on the data's lengths: ${time.steps} steps ${time.packing ? 'packed' : 'unpacked'} (${Math.round(time.padding_fraction * 100)} % padding), ${formatCount(time.real_tokens_per_s)} real tokens/s; ` +
        `load ${formatDuration(time.model_load_seconds)}, first step ${formatDuration(time.first_step_seconds)} (${time.compiled_shapes} compiled shapes), training ${formatDuration(time.training_seconds)} ≈ ${formatDuration(time.eta_seconds)}`,
    );
  } else if (plan.eta_seconds !== undefined) {
    lines.push(`Time: ${formatCount(request.dataset_tokens ?? 0)} tokens × ${request.epochs ?? 1} epochs ≈ ${formatDuration(plan.eta_seconds)}`);
  }
  lines.push(...plan.notes.map((note) => `Note: ${note}`));
  if (extras.micro_batch_search !== undefined) {
    const search = extras.micro_batch_search;
    lines.push(
      search.fits
        ? `Effective batch ${search.effective_batch_size}: largest micro-batch that fits is ${search.micro_batch_size} × ${search.gradient_accumulation_steps} accumulation (peak ${search.peak_vram_gib?.toFixed(2)} GiB, ${formatCount(search.tokens_per_s ?? 0)} tokens/s)`
        : `Effective batch ${search.effective_batch_size}: no micro-batch fits`,
    );
  }
  if (extras.rank_trade_offs !== undefined) {
    lines.push(
      '',
      `  ${'rank'.padStart(5)} ${'trainable'.padStart(12)} ${'adapter MiB'.padStart(12)} ${'peak GiB'.padStart(9)} ${'tokens/s'.padStart(9)}  fits`,
    );
    lines.push(
      ...extras.rank_trade_offs.map(
        (row) =>
          `  ${String(row.rank).padStart(5)} ${formatCount(row.trainable_parameters).padStart(12)} ${row.adapter_size_mib.toFixed(1).padStart(12)} ${row.peak_vram_gib.toFixed(2).padStart(9)} ${formatCount(row.tokens_per_s).padStart(9)}  ${row.fits ? 'yes' : 'no'}`,
      ),
    );
  }
  lines.push(
    '',
    `Serving the merged model (${request.sequence_length}-token context, batch 1): ${extras.inference_memory
      .map(
        (row) =>
          `${match(row.quantization)
            .with('none', () => '16-bit')
            .with('8bit', () => '8-bit')
            .with('4bit', () => '4-bit')
            .exhaustive()} ${row.total_gib.toFixed(2)} GiB`,
      )
      .join(', ')}; training peak ${plan.peak_vram_gib.toFixed(2)} GiB`,
  );
  return `${lines.join('\n')}\n`;
}

function describeParallelism(request: PlanRequest): string {
  return request.parallelism === 'fsdp' ? 'FSDP: the model sharded over them' : 'DDP: a replica in each';
}

function formatCount(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

function formatDuration(seconds: number): string {
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.round((seconds % 3600) / 60);
  return hours > 0 ? `${hours} h ${minutes} min` : `${minutes} min`;
}
