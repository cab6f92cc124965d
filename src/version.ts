import { version } from '../package.json'

/** Bundled into the binary at build time, so `--version` needs no file at run time. */
export const VERSION: string = version
