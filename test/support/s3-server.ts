/**
 * A real S3 server for tests: SeaweedFS (`weed server -filer -s3`, built by scripts/seaweedfs.mjs) on loopback, with
 * its data in the test root and one identity from an S3 config file. Every port is chosen free and passed explicitly
 * (SeaweedFS would otherwise derive gRPC ports as HTTP port + 10000, past 65535 for a high ephemeral port), and what
 * it would open or send by default beyond S3 is switched off: telemetry, the Iceberg and Lance endpoints.
 * A test may stop and start it again on the same ports and data (the restart-mid-upload test).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { seaweedfsBinary } from '../../scripts/seaweedfs.mjs';
import { type ManagedProcess, startProcess } from '../../src/runtime/processes.ts';
import { freePort } from '../setup/global-setup.ts';

export interface S3Credentials {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export interface S3TestServer extends S3Credentials {
  /** The AWS standard variables a worker or CLI reads (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, …). */
  environment: Record<string, string>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  start(): Promise<void>;
}

export function awsEnvironment(credentials: S3Credentials): Record<string, string> {
  return {
    AWS_ENDPOINT_URL: credentials.endpoint,
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    AWS_REGION: credentials.region,
    AWS_DEFAULT_REGION: credentials.region,
    // SeaweedFS serves buckets as paths (http://host/bucket/key), not as virtual hosts.
    AWS_S3_FORCE_PATH_STYLE: 'true',
    // The AWS CLI and boto3 read no user config of the machine running the tests.
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  };
}

async function waitForS3(endpoint: string, timeoutMilliseconds: number): Promise<void> {
  const deadline = Date.now() + timeoutMilliseconds;
  while (Date.now() < deadline) {
    try {
      // An unsigned request is refused (403) once the gateway is up; a connection error means not yet.
      const response = await fetch(endpoint, { signal: AbortSignal.timeout(2_000) });
      if (response.status < 500) return;
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
  throw new Error(`SeaweedFS S3 gateway at ${endpoint} did not come up in ${timeoutMilliseconds} ms`);
}

export async function startS3Server(root: string): Promise<S3TestServer> {
  const dataDirectory = join(root, 'seaweedfs');
  await mkdir(dataDirectory, { recursive: true });
  const credentials: S3Credentials = { endpoint: '', accessKeyId: 'tuneflow-test', secretAccessKey: 'tuneflow-test-secret', region: 'us-east-1' };
  const configFile = join(root, 'seaweedfs-s3.json');
  await writeFile(
    configFile,
    JSON.stringify({
      identities: [
        {
          name: 'tuneflow',
          credentials: [{ accessKey: credentials.accessKeyId, secretKey: credentials.secretAccessKey }],
          actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'],
        },
      ],
    }),
  );
  const ports: Record<string, number> = {};
  for (const name of ['master.port', 'master.port.grpc', 'volume.port', 'volume.port.grpc', 'filer.port', 'filer.port.grpc', 's3.port', 's3.port.grpc']) {
    ports[name] = await freePort();
  }
  credentials.endpoint = `http://127.0.0.1:${ports['s3.port']}`;
  const args = [
    'server',
    '-ip=127.0.0.1',
    '-ip.bind=127.0.0.1',
    `-dir=${dataDirectory}`,
    '-filer',
    '-s3',
    `-s3.config=${configFile}`,
    '-s3.port.iceberg=0',
    '-s3.port.lance=0',
    '-master.telemetry=false',
    // Small volumes: a test writes megabytes, and the default would reserve gigabytes of disk.
    '-master.volumeSizeLimitMB=64',
    '-volume.max=16',
    ...Object.entries(ports).map(([name, port]) => `-${name}=${port}`),
  ];
  let process: ManagedProcess | undefined;
  let generation = 0;
  const start = async () => {
    generation += 1;
    process = await startProcess(seaweedfsBinary(), args, { logFile: join(root, 'logs', `seaweedfs-${generation}.log`), cwd: dataDirectory });
    await waitForS3(credentials.endpoint, 60_000);
  };
  await start();
  return {
    ...credentials,
    environment: awsEnvironment(credentials),
    start,
    stop: async () => process?.stop(),
    kill: async () => process?.kill(),
  };
}
