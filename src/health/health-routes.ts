/**
 * `health` (README "Walkthrough with curl"): the legacy fields, then the AMI link's state
 * (README "Live PBX state"), the version, the database's last-known state and the shared store's
 * (README "Several nodes"): while Redis is unreachable, `store` and `status` are "degraded" but the
 * answer stays 200, since the node still verifies tokens from memory. `health?deep=1`
 * reads the store and the MikoPBX file for real, for local monitoring only (README "Metrics").
 */
import { Elysia } from 'elysia'
import * as v from 'valibot'
import { accessDetail } from '../auth/route-access'
import { queryOf } from '../auth/credentials'
import { unixSeconds, type Clock } from '../clock'
import { ErrorEnvelope } from '../http/envelope-schema'
import { ERRORS, errorBody } from '../http/errors'
import { jsonResponses } from '../openapi/responses'
import type { PbxStateView } from '../pbx/pbx-state'
import { isLocalPublisher } from '../presence/publisher'
import { VERSION } from '../version'
import type { StoreHealth } from '../store/state-store'
import type { CheckState, DeepCheck, StoreStatus } from './store-status'

const CheckStateSchema = v.picklist(['ok', 'error'])

/** For the OpenAPI document (README "OpenAPI"); `checks` only with `deep=1`. */
const HealthResponse = v.object({
  success: v.boolean(),
  status: v.picklist(['ok', 'degraded']),
  timestamp: v.number(),
  ami: v.picklist(['up', 'down', 'off']),
  version: v.string(),
  db: CheckStateSchema,
  store: v.picklist(['ok', 'degraded']),
  checks: v.optional(v.object({ db: v.optional(CheckStateSchema), mikopbx: v.optional(CheckStateSchema) })),
})

export interface HealthDeps {
  clock: Clock
  pbx?: PbxStateView
  storeStatus: StoreStatus
  /** The shared store's link (StateStore.health); always "ok" for SQLite. */
  storeHealth: () => StoreHealth
  /** The store's check first; the MikoPBX file's when that directory is active. */
  deepChecks: readonly DeepCheck[]
  peerOf: (request: Request) => string | undefined
}

export function healthRoutes({ clock, pbx, storeStatus, storeHealth, deepChecks, peerOf }: HealthDeps) {
  return new Elysia({ name: 'health-routes' }).get('/health', ({ request, status }) => {
    const store = storeHealth()
    const shallow = { success: true, status: store, timestamp: unixSeconds(clock), ami: pbx?.ami ?? 'off', version: VERSION, db: storeStatus.state, store }
    if (!wantsDeep(request.url)) return shallow
    if (!isLocalPublisher(peerOf(request), request.headers)) return status(403, errorBody(ERRORS.deepHealthForbidden, unixSeconds(clock)))
    const results = runChecks(deepChecks)
    if (results.db === 'ok') storeStatus.recovered()
    const readable = Object.values(results).every((state) => state === 'ok')
    const body = { ...shallow, success: readable, status: readable ? store : 'degraded', db: results.db ?? shallow.db, checks: results }
    return readable ? body : status(503, body)
  }, { detail: { ...accessDetail('public'), responses: jsonResponses({ 200: HealthResponse, 403: ErrorEnvelope, 503: HealthResponse }) } })
}

/** `deep=1` (or any value) in the query; read without Elysia's query parsing, which /health would pay on every call. */
function wantsDeep(url: string): boolean {
  const query = queryOf(url)
  return query !== null && new URLSearchParams(query).has('deep')
}

function runChecks(checks: readonly DeepCheck[]): Partial<Record<DeepCheck['name'], CheckState>> {
  const results: Partial<Record<DeepCheck['name'], CheckState>> = {}
  for (const check of checks) {
    try {
      check.run()
      results[check.name] = 'ok'
    } catch (error) {
      console.error(JSON.stringify({ level: 'warn', path: 'health', check: check.name, error: (error as { code?: string }).code ?? String(error) }))
      results[check.name] = 'error'
    }
  }
  return results
}
