/**
 * One class per way an `Authorization: Digest` request fails (README "HTTP Digest"), so the caller
 * maps each to its answer: 400 for a malformed header, an unsupported parameter or a `uri` that is
 * not the request target; 401 with fresh challenges for the rest, with `stale=true` after
 * DigestStaleNonceError. Messages name the failure, never a value from the request.
 */
export abstract class DigestError extends Error {}

/** The header breaks RFC 7616 §3.4's syntax: quoting, a repeated or missing parameter, a bad nc, its size. */
export class DigestMalformedError extends DigestError {
  override name = 'DigestMalformedError'
}

/** Well-formed, but asks for what this server doesn't do: another algorithm, `qop=auth-int`, `userhash=true`. */
export class DigestUnsupportedError extends DigestError {
  override name = 'DigestUnsupportedError'
}

/** The request has no `From: sip:<user>@<domain>` header, or one that isn't exactly that. */
export class DigestFromHeaderError extends DigestError {
  override name = 'DigestFromHeaderError'
}

/** `username` is not the user of the `From` header. */
export class DigestUserMismatchError extends DigestError {
  override name = 'DigestUserMismatchError'
}

/** `realm` is not this server's `digest_realm`. */
export class DigestRealmMismatchError extends DigestError {
  override name = 'DigestRealmMismatchError'
}

/** `uri` is not the request target as received (RFC 7616 §3.4.6): the caller answers 400. */
export class DigestUriMismatchError extends DigestError {
  override name = 'DigestUriMismatchError'
}

/** The nonce or opaque wasn't issued by this server to this client address. */
export class DigestInvalidNonceError extends DigestError {
  override name = 'DigestInvalidNonceError'
}

/** A correct response to a nonce past its lifetime: the caller challenges again with `stale=true` (RFC 7616 §3.3). */
export class DigestStaleNonceError extends DigestError {
  override name = 'DigestStaleNonceError'
}

/** A correct response whose nonce count isn't above the last one accepted for that nonce. */
export class DigestReplayError extends DigestError {
  override name = 'DigestReplayError'
}

/** Wrong response, or a user the directory has no HA1 for: the two are indistinguishable. */
export class DigestInvalidResponseError extends DigestError {
  override name = 'DigestInvalidResponseError'
}
