/**
 * `softphone-backend secret rotate [--revoke-all]` (README "Key rotation"): a new signing key with
 * a new kid in the ring next to the key file; the server reads it within a second.
 */
import { existsSync } from 'node:fs'
import { unixSeconds, type Clock } from '../clock'
import type { Config } from '../config/schema'
import { databasePath } from '../serve'
import { openSessionRecords, type OpenedSessionRecords } from './redis-once'
import { openStore } from '../store/database'
import { CLOCK_TOLERANCE_SECONDS } from '../tokens/tokens'
import { readRingFile, ringPathFor, rotated, serializeRing, writeFileAtomically } from '../tokens/key-ring'
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
  return (context) => rotateSecret(context, revokeAll)
}

async function rotateSecret({ config, clock, audit }: OperatorContext, revokeAll: boolean): Promise<void> {
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
  if (revokeAll) console.log(`ended ${await endEverySession(config, clock)} sessions`)
}

/** Every active session of every user, as `sessions revoke` ends one user's; none without a database yet. */
async function endEverySession(config: Config, clock: Clock): Promise<number> {
  const now = unixSeconds(clock)
  const path = databasePath(config)
  if (!existsSync(path)) return 0
  const db = openStore(path)
  let opened: OpenedSessionRecords | null = null
  try {
    opened = await openSessionRecords(config, clock, db)
    let ended = 0
    for (const username of await opened.records.activeUsernames(now)) ended += (await opened.records.endAll(username, 'revoke-all', now)).length
    return ended
  } finally {
    opened?.close()
    db.close()
  }
}
