/**
 * The client's address (README "Security notes and decisions"): the socket peer, unless that peer
 * is a trusted proxy, in which case the X-Real-IP it set, if that is one IP address. X-Forwarded-For
 * is client-controlled through nginx, so never read. Addresses are canonical, so that one host is
 * one throttle key.
 */
import { BlockList, isIP } from 'node:net'

export interface ClientIp {
  ip: string
  /** Why `ip` is the peer although a trusted proxy sent X-Real-IP; never the header's value. */
  ipNote?: string
}

export type ClientIpOf = (request: Request) => ClientIp

const INVALID_REAL_IP = 'invalid X-Real-IP'

/**
 * One IP address literal in canonical form, or null: IPv4 dotted decimal; IPv6 lowercase and compressed
 * (RFC 5952, as the WHATWG URL serialiser writes it); IPv4-mapped IPv6 as its IPv4 address. Zone ids
 * (`fe80::1%eth0`) are refused: they name an interface of the sender, and would make one host many keys.
 */
export function canonicalIp(text: string): string | null {
  const family = isIP(text)
  if (family === 4) return text
  if (family !== 6 || text.includes('%')) return null
  const compressed = new URL(`http://[${text}]/`).hostname.slice(1, -1)
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(compressed)
  return mapped ? ipv4Of(parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)) : compressed
}

const ipv4Of = (high: number, low: number) => [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.')

/** `::ffff:127.0.0.1` and `127.0.0.1` are one host; anything that isn't an address is left as it is. */
export function unmapIpv4(address: string): string {
  return canonicalIp(address) ?? address
}

/** A matcher for `trusted_proxies`: addresses and CIDR ranges, IPv4 and IPv6, as the config schema checks them. */
export function addressMatcher(entries: readonly string[]): (address: string) => boolean {
  const list = new BlockList()
  for (const entry of entries) {
    const range = parseRange(entry)
    if (!range) throw new Error(`not an IP address or CIDR range: ${entry}`)
    list.addSubnet(range.base, range.prefix, range.family)
  }
  return (address) => {
    const family = isIP(address)
    return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6')
  }
}

interface Range {
  base: string
  prefix: number
  family: 'ipv4' | 'ipv6'
}

/** `10.0.0.0/8`, `fd00::/8`, or one address (a /32 or /128); null if it is none of these. */
export function parseRange(entry: string): Range | null {
  const [address = '', prefixText, ...rest] = entry.split('/')
  const base = canonicalIp(address)
  if (!base || rest.length > 0) return null
  const family = isIP(base) === 4 ? 'ipv4' : 'ipv6'
  const bits = family === 'ipv4' ? 32 : 128
  if (prefixText === undefined) return { base, prefix: bits, family }
  if (!/^(0|[1-9]\d{0,2})$/.test(prefixText) || Number(prefixText) > bits) return null
  return { base, prefix: Number(prefixText), family }
}

export function clientIp(peer: string | undefined, realIp: string | null | undefined, isTrusted: (address: string) => boolean): ClientIp {
  if (!peer) return { ip: 'unknown' }
  const address = unmapIpv4(peer)
  if (realIp === null || realIp === undefined || !isTrusted(address)) return { ip: address }
  // Two X-Real-IP fields arrive joined by ", ", which is no address either.
  const client = canonicalIp(realIp)
  return client ? { ip: client } : { ip: address, ipNote: INVALID_REAL_IP }
}

export function clientIpResolver(trustedProxies: readonly string[], peerOf: (request: Request) => string | undefined): ClientIpOf {
  const isTrusted = addressMatcher(trustedProxies)
  return (request) => clientIp(peerOf(request), request.headers.get('x-real-ip'), isTrusted)
}
