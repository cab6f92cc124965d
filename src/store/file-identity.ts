import { statSync } from 'node:fs'

/**
 * `dev:ino` of the file at `path`, or null when there is none. A file replaced by a rename (an
 * upgrade writing a new copy) keeps its path but not its identity, so a reader still holding the
 * old one knows to reopen.
 */
export function fileIdentity(path: string): string | null {
  try {
    const { dev, ino } = statSync(path)
    return `${dev}:${ino}`
  } catch {
    return null
  }
}
