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
    artifactRootUri: pathToFileURL(artifactRoot).href,
    logs: join(home, 'logs'),
  };
}

export const temporalAddress = (): string => process.env.TEMPORAL_ADDRESS ?? 'localhost:7233';
export const temporalNamespace = (): string => process.env.TEMPORAL_NAMESPACE ?? 'default';
