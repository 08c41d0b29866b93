import { fileURLToPath } from 'node:url';

/** Under ESM there is no __dirname: the workflow bundle's entry is located from this module's URL. */
export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));
