/**
 * The client's address (README "Security notes and decisions"): the socket peer, unless that peer
 * is a trusted proxy, in which case the X-Real-IP it set. X-Forwarded-For is client-controlled
 * through nginx, so never read.
 */
export function clientIp(peer: string | undefined, realIp: string | null | undefined, trustedProxies: ReadonlySet<string>): string {
  if (!peer) return 'unknown'
  const address = unmapIpv4(peer)
  if (realIp && trustedProxies.has(address)) return unmapIpv4(realIp.trim())
  return address
}

/** `::ffff:127.0.0.1` and `127.0.0.1` are one host. */
export function unmapIpv4(address: string): string {
  return address.toLowerCase().startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address
}

export type ClientIpOf = (request: Request) => string

export function clientIpResolver(trustedProxies: readonly string[], peerOf: (request: Request) => string | undefined): ClientIpOf {
  const trusted = new Set(trustedProxies.map(unmapIpv4))
  return (request) => clientIp(peerOf(request), request.headers.get('x-real-ip'), trusted)
}
