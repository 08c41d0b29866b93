import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The workflow bundle's entry, located from this module's URL (ESM has no __dirname). It sits in the same tree as
 * this module with the same extension: `workflows/index.ts` beside the sources under tsx, `workflows/index.js`
 * in the built package's `dist/`.
 */
export const workflowsPath = fileURLToPath(new URL(`../workflows/index${extname(import.meta.url)}`, import.meta.url));
