/** `WWW-Authenticate` values for the Bearer scheme (RFC 6750 §3). ASCII only: Bun rejects other header bytes. */
const REALM = 'softphone'

export type BearerErrorCode = 'invalid_request' | 'invalid_token' | 'insufficient_scope'

/** Without an error code when the request simply had no credentials (RFC 6750 §3.1). */
export function bearerChallenge(error?: BearerErrorCode): string {
  return error ? `Bearer realm="${REALM}", error="${error}"` : `Bearer realm="${REALM}"`
}
