/**
 * Who may publish (README "Presence: publish and subscribe"): a TCP peer on loopback, with no proxy
 * headers. nginx connects from loopback too, but always sets X-Real-IP (our snippet does), so
 * anything it forwards is refused.
 */
import { unmapIpv4 } from '../http/client-ip'

const PROXY_HEADERS = ['x-forwarded-for', 'x-real-ip', 'forwarded'] as const

export function isLocalPublisher(peer: string | undefined, headers: Headers): boolean {
  if (!peer) return false
  const address = unmapIpv4(peer)
  const loopback = address === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address)
  return loopback && PROXY_HEADERS.every((name) => !headers.has(name))
}
