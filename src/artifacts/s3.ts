import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { open, readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { ArtifactStore, StoredObject } from './store.ts';

/** Files above this go up in parts of this size (S3 allows 10,000 parts: 640 GB at 64 MiB). */
export const multipartBytes = 64 * 1024 * 1024;

/** `s3://bucket/key`; keys join with '/' the way paths do. */
export class ObjectLocation {
  constructor(
    readonly bucket: string,
    readonly key: string,
  ) {}

  static parse(uri: string): ObjectLocation {
    const url = new URL(uri);
    if (url.protocol !== 's3:' || !url.hostname) throw new Error(`not an s3://bucket/key URI: ${uri}`);
    return new ObjectLocation(url.hostname, decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, ''));
  }

  child(...parts: string[]): ObjectLocation {
    return new ObjectLocation(this.bucket, [this.key, ...parts].filter(Boolean).join('/'));
  }

  get uri(): string {
    return `s3://${this.bucket}/${this.key.split('/').map(encodeURIComponent).join('/')}`;
  }
}

/**
 * The S3 client from the standard AWS configuration: AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) for an
 * S3-compatible server, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE and ~/.aws/config, AWS_REGION.
 * A custom endpoint is addressed path-style (bucket in the path), which every S3-compatible server serves; AWS
 * itself, without an endpoint override, keeps virtual-hosted addressing. The Python worker decides the same
 * (object_store.ObjectStore).
 */
export function s3ClientFromEnvironment(): S3Client {
  const customEndpoint = Boolean(process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL);
  return new S3Client({ forcePathStyle: customEndpoint, region: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1' });
}

async function filesUnder(directory: string): Promise<string[]> {
  const entries = await readdir(directory, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

/** S3-compatible object storage (AWS S3, SeaweedFS, MinIO, R2, GCS's S3 API). */
export class S3ArtifactStore implements ArtifactStore {
  readonly scheme = 's3';

  constructor(private readonly client: S3Client = s3ClientFromEnvironment()) {}

  private async putFile(path: string, location: ObjectLocation): Promise<void> {
    const { size } = await stat(path);
    const file = await open(path, 'r');
    try {
      if (size <= multipartBytes) {
        const body = await file.readFile();
        await this.client.send(new PutObjectCommand({ Bucket: location.bucket, Key: location.key, Body: body }));
        return;
      }
      // Part by part, one part in memory at a time: a prepared dataset may be far larger than the worker's RAM.
      const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket: location.bucket, Key: location.key }));
      const parts = [];
      for (let offset = 0, PartNumber = 1; offset < size; offset += multipartBytes, PartNumber += 1) {
        const buffer = Buffer.alloc(Math.min(multipartBytes, size - offset));
        await file.read(buffer, 0, buffer.length, offset);
        const { ETag } = await this.client.send(new UploadPartCommand({ Bucket: location.bucket, Key: location.key, UploadId, PartNumber, Body: buffer }));
        parts.push({ ETag, PartNumber });
      }
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: location.bucket, Key: location.key, UploadId, MultipartUpload: { Parts: parts } }));
    } finally {
      await file.close();
    }
  }

  async putDirectory(directory: string, uri: string, last?: string): Promise<void> {
    const target = ObjectLocation.parse(uri);
    const files = (await filesUnder(directory)).sort((a, b) => Number(a.endsWith(`${sep}${last}`)) - Number(b.endsWith(`${sep}${last}`)));
    for (const file of files) await this.putFile(file, target.child(...relative(directory, file).split(sep)));
  }

  async putText(uri: string, text: string): Promise<void> {
    const location = ObjectLocation.parse(uri);
    await this.client.send(new PutObjectCommand({ Bucket: location.bucket, Key: location.key, Body: text }));
  }

  async getText(uri: string): Promise<string | null> {
    const location = ObjectLocation.parse(uri);
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: location.bucket, Key: location.key }));
      return (await response.Body?.transformToString('utf8')) ?? null;
    } catch (error) {
      if (error instanceof NoSuchKey) return null;
      throw error;
    }
  }

  async list(uri: string): Promise<StoredObject[]> {
    const prefix = ObjectLocation.parse(uri);
    const objects: StoredObject[] = [];
    let ContinuationToken: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: prefix.bucket, Prefix: `${prefix.key}/`, ContinuationToken }));
      for (const entry of page.Contents ?? []) {
        if (entry.Key) objects.push({ uri: new ObjectLocation(prefix.bucket, entry.Key).uri, bytes: entry.Size ?? 0 });
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
    return objects.sort((a, b) => a.uri.localeCompare(b.uri));
  }
}
