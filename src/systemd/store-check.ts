/**
 * The watchdog's question to the store (README "systemd readiness and watchdog"): does it answer a
 * read, and could a login take the write lock right now? Neither waits: the busy timeout is 0
 * for the check, so a held lock fails it at once and the event loop never stalls on it.
 */
import type { Database } from 'bun:sqlite'

export type StoreCheck = { ok: true; sessions: number } | { ok: false; reason: string }

const LIVE_SESSIONS = 'SELECT count(*) AS live FROM sessions WHERE revoked_at IS NULL AND current_exp > ?'

function reasonOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : (error as Error).message
}

export function checkStore(db: Database, nowSeconds: number): StoreCheck {
  // Every transaction here is synchronous: one still open between two turns of the loop leaked.
  if (db.inTransaction) return { ok: false, reason: 'store: a transaction was left open' }
  const { timeout } = db.query<{ timeout: number }, []>('PRAGMA busy_timeout').get()!
  try {
    db.run('PRAGMA busy_timeout = 0')
    const { live } = db.query<{ live: number }, [number]>(LIVE_SESSIONS).get(nowSeconds)!
    db.run('BEGIN IMMEDIATE')
    db.run('ROLLBACK')
    return { ok: true, sessions: live }
  } catch (error) {
    if (db.inTransaction) db.run('ROLLBACK')
    return { ok: false, reason: `store: ${reasonOf(error)}` }
  } finally {
    db.run(`PRAGMA busy_timeout = ${timeout}`)
  }
}
