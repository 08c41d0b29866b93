import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { appendEvent, readEvents } from './log.ts';
import { ModelVersionNotFoundError } from './model-version-not-found-error.ts';
import { RegistryConflictError } from './registry-conflict-error.ts';
import type { ChampionChange, ModelExport, ModelVersion, NewModelVersion, ProposedEvent, RegistryEvent } from './schema.ts';

/** One model name's state, folded from the log. */
export interface ModelState {
  name: string;
  versions: ModelVersion[];
  champion: ModelVersion | null;
  /** Champions in the order they took over, the current one last; rollback pops it. */
  championStack: number[];
  history: ChampionChange[];
}

export interface PromoteOptions {
  /**
   * Compare-and-swap: promote only while this is still the champion (null: while there is none). Without it the
   * promotion applies to whatever champion the log holds when it is written.
   */
  expectedChampion?: number | null;
  reason?: string;
  /** Who overrode failed gates: recorded with the promotion. */
  forcedBy?: string;
}

/** A promotion or rollback as the history lists it. */
function championChange(event: Extract<RegistryEvent, { event: 'promoted' | 'rolled_back' }>): ChampionChange {
  const { sequence, at, version, previous, reason } = event;
  return {
    sequence,
    at,
    event: event.event,
    version,
    previous,
    reason,
    ...(event.event === 'promoted' && event.forced_by ? { forced_by: event.forced_by } : {}),
  };
}

/** The registry folded from its events: pure, so that every reader and every writer agree on it. */
export function foldEvents(events: readonly RegistryEvent[]): Map<string, ModelState> {
  const models = new Map<string, ModelState>();
  const state = (name: string) => {
    let model = models.get(name);
    if (!model) {
      model = { name, versions: [], champion: null, championStack: [], history: [] };
      models.set(name, model);
    }
    return model;
  };
  for (const event of events) {
    if (event.event === 'registered') {
      state(event.model.name).versions.push(event.model);
      continue;
    }
    const model = state(event.name);
    if (event.event === 'exported') {
      const version = model.versions.find((candidate) => candidate.version === event.version);
      if (version) version.exports = [...version.exports, ...event.exports];
      continue;
    }
    if (event.event === 'promoted') model.championStack.push(event.version);
    else model.championStack.pop();
    model.history.push(championChange(event));
  }
  for (const model of models.values()) {
    const current = model.championStack.at(-1);
    model.champion = model.versions.find((version) => version.version === current) ?? null;
  }
  return models;
}

function findVersion(model: ModelState | undefined, name: string, version: number): ModelVersion {
  const found = model?.versions.find((candidate) => candidate.version === version);
  if (!found) throw new ModelVersionNotFoundError(`model ${name} has no version ${version}`, { name, version });
  return found;
}

/**
 * The model registry in the artifact store (`<artifacts>/registry/log/`, docs/registry.md): every adapter and merged
 * model with its lineage, metrics and exports, and per model name a champion with its history. Any number of
 * processes may write at once: each write is one event appended by link(2), so one writer wins each slot and none
 * corrupts the log.
 */
export class ModelRegistry {
  readonly logDirectory: string;

  constructor(artifactRoot: string) {
    this.logDirectory = join(artifactRoot.startsWith('file:') ? fileURLToPath(artifactRoot) : artifactRoot, 'registry', 'log');
  }

  async models(): Promise<Map<string, ModelState>> {
    return foldEvents(await readEvents(this.logDirectory));
  }

  async model(name: string): Promise<ModelState> {
    const model = (await this.models()).get(name);
    if (!model) throw new ModelVersionNotFoundError(`the registry has no model named ${name}`, { name });
    return model;
  }

  async version(name: string, version?: number): Promise<ModelVersion> {
    const model = await this.model(name);
    if (version === undefined) {
      if (!model.champion) throw new ModelVersionNotFoundError(`model ${name} has no champion`, { name });
      return model.champion;
    }
    return findVersion(model, name, version);
  }

  async champion(name: string): Promise<ModelVersion | null> {
    return (await this.models()).get(name)?.champion ?? null;
  }

  async register(model: NewModelVersion): Promise<ModelVersion> {
    const event = await this.append((models) => {
      const versions = models.get(model.name)?.versions ?? [];
      const version = Math.max(0, ...versions.map((existing) => existing.version)) + 1;
      return { event: 'registered', model: { ...model, exports: model.exports ?? [], version, created_at: new Date().toISOString() } };
    });
    if (event.event !== 'registered') throw new Error('unreachable');
    return event.model;
  }

  async recordExports(name: string, version: number, exports: ModelExport[]): Promise<void> {
    await this.append((models) => {
      findVersion(models.get(name), name, version);
      return { event: 'exported', name, version, exports };
    });
  }

  async promote(name: string, version: number, options: PromoteOptions = {}): Promise<ChampionChange> {
    return this.changeChampion((models) => {
      const model = models.get(name);
      findVersion(model, name, version);
      const current = model?.championStack.at(-1) ?? null;
      if (options.expectedChampion !== undefined && options.expectedChampion !== current) {
        throw new RegistryConflictError(
          `cannot promote ${name} version ${version}: the champion is ${current ?? 'none'}, not ${options.expectedChampion ?? 'none'} as expected`,
          { name, version, champion: current, expected: options.expectedChampion },
        );
      }
      return {
        event: 'promoted',
        name,
        version,
        previous: current,
        reason: options.reason ?? '',
        ...(options.forcedBy ? { forced_by: options.forcedBy } : {}),
      };
    });
  }

  /** Restores the champion before the current one. */
  async rollback(name: string, options: PromoteOptions = {}): Promise<ChampionChange> {
    return this.changeChampion((models) => {
      const stack = models.get(name)?.championStack ?? [];
      const current = stack.at(-1);
      const restored = stack.at(-2);
      if (current === undefined || restored === undefined) {
        throw new ModelVersionNotFoundError(`model ${name} has no earlier champion to roll back to`, { name, champion: current ?? null });
      }
      if (options.expectedChampion !== undefined && options.expectedChampion !== current) {
        throw new RegistryConflictError(`cannot roll back ${name}: the champion is ${current}, not ${options.expectedChampion ?? 'none'} as expected`, {
          name,
          champion: current,
          expected: options.expectedChampion,
        });
      }
      return { event: 'rolled_back', name, version: restored, previous: current, reason: options.reason ?? '' };
    });
  }

  private async changeChampion(decide: (models: Map<string, ModelState>) => ProposedEvent): Promise<ChampionChange> {
    const event = await this.append(decide);
    if (event.event !== 'promoted' && event.event !== 'rolled_back') throw new Error('unreachable');
    return championChange(event);
  }

  private append(decide: (models: Map<string, ModelState>) => ProposedEvent): Promise<RegistryEvent> {
    return appendEvent(this.logDirectory, (events) => decide(foldEvents(events)));
  }
}
