/**
 * `softphone-backend secret rotate [--revoke-all]` (README "Key rotation"): a new signing key with
 * a new kid in the ring next to the key file; the server reads it within a second.
 */
import { existsSync } from 'node:fs'
import { unixSeconds, type Clock } from '../clock'
import type { Config } from '../config/schema'
import { databasePath } from '../serve'
import { SessionStore } from '../sessions/session-store'
import { endAllSessions } from '../sessions/sessions'
import { openStore } from '../store/database'
import { CLOCK_TOLERANCE_SECONDS } from '../tokens/tokens'
import { readRingFile, ringPathFor, rotated, serializeRing, writeFileAtomically } from '../tokens/key-ring'
import { Revocations } from '../tokens/revocations'
import { loadOrCreateSecretKey } from '../tokens/secret-key'
import { UsageError, type ParsedArgs } from './args'
import type { Audit } from './store-command'

export const SECRET_SWITCHES = ['revoke-all'] as const

export const SECRET_HELP = `softphone-backend secret rotate [--revoke-all]
  rotate        sign new tokens with a new key (a new kid); tokens signed with the previous
                keys stay valid until refresh_ttl has passed, then those keys retire
  --revoke-all  the compromise procedure: every previous key, the legacy key file's too,
                retires at once and every session ends, so every app logs in again
A running server picks the new key up within a second.`

export interface OperatorContext {
  config: Config
  clock: Clock
  audit: Audit
}

/** A command that needs the configuration but not the `users`/`sessions` store plumbing. */
export type OperatorCommand = (context: OperatorContext) => Promise<void>

export function parseSecretCommand(args: ParsedArgs): OperatorCommand {
  if (args.positionals[1] !== 'rotate' || args.positionals.length > 2) throw new UsageError(SECRET_HELP)
  const revokeAll = args.switches.has('revoke-all')
  return async (context) => rotateSecret(context, revokeAll)
}

function rotateSecret({ config, clock, audit }: OperatorContext, revokeAll: boolean): void {
  const now = unixSeconds(clock)
  // Every token signed so far expires within the longest TTL; the tolerance covers skewed clocks.
  const graceSeconds = Math.max(config.access_ttl, config.refresh_ttl) + CLOCK_TOLERANCE_SECONDS
  loadOrCreateSecretKey(config.secret_key_path)
  const path = ringPathFor(config.secret_key_path)
  const ring = rotated(readRingFile(path), { now, graceSeconds, revokeAll })
  writeFileAtomically(path, serializeRing(ring))
  const kid = ring.keys.at(-1)!.kid
  const until = revokeAll ? 'now' : new Date((now + graceSeconds) * 1000).toISOString()
  audit('KEY_ROTATED', undefined, `new kid ${kid}; previous keys retire ${revokeAll ? 'now (revoke-all)' : `at ${until}`}`)
  console.log(`new signing key ${kid} in ${path}; tokens signed with the previous keys are valid until ${until}`)
  if (revokeAll) console.log(`ended ${endEverySession(config, clock)} sessions`)
}

/** Every active session of every user, as `sessions revoke` ends one user's; none without a database yet. */
function endEverySession(config: Config, clock: Clock): number {
  const now = unixSeconds(clock)
  const path = databasePath(config)
  if (!existsSync(path)) return 0
  const db = openStore(path)
  try {
    const store = new SessionStore(db)
    const revocations = new Revocations(db, clock)
    let ended = 0
    for (const username of store.activeUsernames(now)) ended += endAllSessions(store, revocations, username, 'revoke-all', now)
    return ended
  } finally {
    db.close()
  }
}
