/**
 * No import cycle in tuneflow's TypeScript: type-only imports count too, because a cycle of types is still a cycle of
 * ideas (the vocabulary that contract, planner and errors share lives in src/contract/vocabulary.ts, a leaf). madge
 * walks the imports with the TypeScript resolver of tsconfig.json.
 */
import madge from 'madge';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repositoryRoot = fileURLToPath(new URL('../../', import.meta.url));

describe('imports', () => {
  it('form no cycle in src/, workflows/ and activities/', async () => {
    const graph = await madge(['src', 'workflows', 'activities'], {
      baseDir: repositoryRoot,
      fileExtensions: ['ts'],
      tsConfig: `${repositoryRoot}tsconfig.json`,
      detectiveOptions: { ts: { skipTypeImports: false }, tsx: { skipTypeImports: false } },
    });
    // A graph that lost its files would have no cycle either.
    expect(Object.keys(graph.obj()).length).toBeGreaterThan(100);
    expect(graph.circular()).toEqual([]);
  }, 60_000);
});
