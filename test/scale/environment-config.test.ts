/**
 * One Temporal profile file for every process: the TypeScript side (client, worker command) and the Python GPU
 * worker read the same TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE. The dev server offers no TLS, so the TLS section is
 * checked as both sides load it (certificates read, server name kept) and the connection on a plain profile.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { pythonActivitiesDirectory, readyEnvironment } from '../../scripts/python-environment.mjs';
import { connectClient } from '../../src/client.ts';
import { gpuWorkerEnvironment } from '../../src/runtime/gpu-worker.ts';
import { temporalConnectConfig } from '../../src/runtime/home.ts';
import { type ManagedProcess, startProcess } from '../../src/runtime/processes.ts';

const variables = ['TEMPORAL_CONFIG_FILE', 'TEMPORAL_PROFILE', 'TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE'] as const;
const saved = Object.fromEntries(variables.map((name) => [name, process.env[name]]));

async function profileFile(): Promise<string> {
  const directory = await mkdtemp(join(inject('testRoot'), 'envconfig-'));
  for (const name of ['ca.pem', 'client.pem', 'client.key']) await writeFile(join(directory, name), `-----BEGIN ${name}-----\n`);
  const file = join(directory, 'temporal.toml');
  await writeFile(
    file,
    [
      '[profile.dev]',
      `address = "${inject('temporalAddress')}"`,
      'namespace = "default"',
      '',
      '[profile.cluster]',
      'address = "temporal.internal:7233"',
      'namespace = "fine-tuning"',
      '[profile.cluster.tls]',
      'server_name = "temporal.internal"',
      `server_ca_cert_path = "${join(directory, 'ca.pem')}"`,
      `client_cert_path = "${join(directory, 'client.pem')}"`,
      `client_key_path = "${join(directory, 'client.key')}"`,
      '',
    ].join('\n'),
  );
  return file;
}

describe('Temporal environment configuration', () => {
  let worker: ManagedProcess | undefined;
  afterEach(async () => {
    await worker?.stop();
    for (const name of variables) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
  });

  it('the client and the Python worker connect through the same profile, with no address given', async () => {
    const file = await profileFile();
    const environment = { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'dev' };
    delete process.env.TEMPORAL_ADDRESS;
    Object.assign(process.env, environment);
    expect(temporalConnectConfig().connectionOptions.address).toBe(inject('temporalAddress'));
    const client = await connectClient();
    await expect(client.workflowService.getSystemInfo({})).resolves.toBeDefined();
    await client.connection.close();

    worker = await startProcess(readyEnvironment().python, ['-m', 'tuneflow_activities.worker'], {
      cwd: pythonActivitiesDirectory,
      logFile: join(file, '..', 'gpu-worker.log'),
      readyPattern: /gpu-worker ready/,
      readyTimeoutMilliseconds: 180_000,
      env: gpuWorkerEnvironment({ ...environment, TEMPORAL_ADDRESS: undefined }),
    });
  });

  it("both sides read a profile's mTLS section: server name and certificates", async () => {
    Object.assign(process.env, { TEMPORAL_CONFIG_FILE: await profileFile(), TEMPORAL_PROFILE: 'cluster' });
    delete process.env.TEMPORAL_ADDRESS;
    const { connectionOptions, namespace } = temporalConnectConfig();
    expect(connectionOptions.address).toBe('temporal.internal:7233');
    expect(namespace).toBe('fine-tuning');
    const tls = connectionOptions.tls as {
      serverNameOverride?: string;
      serverRootCACertificate?: Uint8Array;
      clientCertPair?: { crt: Uint8Array; key: Uint8Array };
    };
    expect(tls.serverNameOverride).toBe('temporal.internal');
    expect(Buffer.from(tls.clientCertPair!.crt).toString()).toContain('client.pem');
    expect(Buffer.from(tls.serverRootCACertificate!).toString()).toContain('ca.pem');

    const python = spawnSync(
      readyEnvironment().python,
      [
        '-c',
        'import json; from tuneflow_activities.worker import connect_config; c = connect_config(None, None); t = c["tls"]; print(json.dumps([c["target_host"], c["namespace"], t.domain, t.client_cert.decode()]))',
      ],
      { cwd: pythonActivitiesDirectory, env: gpuWorkerEnvironment({ TEMPORAL_ADDRESS: undefined }), encoding: 'utf8' },
    );
    expect(python.stderr).toBe('');
    expect(JSON.parse(python.stdout)).toEqual(['temporal.internal:7233', 'fine-tuning', 'temporal.internal', expect.stringContaining('client.pem')]);
  });
});
