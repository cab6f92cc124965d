/**
 * Failures of the shared store a client can retry later (README "Several nodes", failure
 * behaviour): Redis unreachable, restarting or loading. Nothing was changed. The HTTP layer answers
 * them like an unusable SQLite file: 503 with Retry-After (http/http-plugin.ts).
 */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError'
}
