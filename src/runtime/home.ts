import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * The tuneflow home holds everything a deployment keeps: the Temporal database (runs survive a server restart),
 * the artifact store and the logs. Default `./.tuneflow`, or TUNEFLOW_HOME.
 */
export function tuneflowHome(): string {
  return resolve(process.env.TUNEFLOW_HOME ?? '.tuneflow');
}

export interface HomeLayout {
  home: string;
  temporalDatabase: string;
  artifactRoot: string;
  artifactRootUri: string;
  logs: string;
}

export function homeLayout(home: string = tuneflowHome()): HomeLayout {
  const artifactRoot = join(home, 'artifacts');
  for (const directory of [home, artifactRoot, join(home, 'logs')]) mkdirSync(directory, { recursive: true });
  return {
    home,
    temporalDatabase: join(home, 'temporal.db'),
    artifactRoot,
    // TUNEFLOW_ARTIFACT_ROOT=s3://bucket/prefix puts the store on object storage (src/artifacts, docs/deployment.md).
    artifactRootUri: process.env.TUNEFLOW_ARTIFACT_ROOT ?? pathToFileURL(artifactRoot).href,
    logs: join(home, 'logs'),
  };
}

/**
 * Where and how to reach Temporal, from Temporal's standard environment configuration: the profile
 * `TEMPORAL_PROFILE` (default "default") of the TOML file `TEMPORAL_CONFIG_FILE` (default
 * ~/.config/temporalio/temporal.toml), overridden by TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY and
 * TEMPORAL_TLS_* — the same file and variables the Python worker (worker.py) and the temporal CLI read. Address and
 * namespace default to a local dev server.
 */
export function temporalConnectConfig(): { connectionOptions: NativeConnectionOptions & { address: string }; namespace: string } {
  const { connectionOptions, namespace } = loadClientConnectConfig();
  return { connectionOptions: { ...connectionOptions, address: connectionOptions.address ?? 'localhost:7233' }, namespace: namespace ?? 'default' };
}

export const temporalAddress = (): string => temporalConnectConfig().connectionOptions.address;
export const temporalNamespace = (): string => temporalConnectConfig().namespace;
