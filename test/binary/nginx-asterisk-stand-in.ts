/**
 * A WebSocket server posing as Asterisk's HTTP server behind /pbxcore/softphone/ws (nginx.test.ts):
 * it echoes every frame and records every request that reaches it, so a test can prove that a
 * refused client never got here and that what did get here carries no token.
 */
import type { Server } from 'bun'
import { freePort } from './nginx-process'

/** What one request to the stand-in looked like. */
export interface UpstreamRequest {
  /** Path and query, as nginx sent them. */
  target: string
  headers: Record<string, string>
}

export class AsteriskStandIn {
  readonly requests: UpstreamRequest[] = []
  private readonly server: Server<undefined>

  constructor() {
    const requests = this.requests
    this.server = Bun.serve({
      hostname: '127.0.0.1',
      port: freePort(),
      fetch(request, server) {
        const url = new URL(request.url)
        requests.push({ target: url.pathname + url.search, headers: Object.fromEntries(request.headers) })
        // Asterisk answers the SIP subprotocol (RFC 7118) when the client offers it.
        const offered = request.headers.get('sec-websocket-protocol') ?? ''
        const headers = offered.split(',').map((name) => name.trim()).includes('sip') ? { 'sec-websocket-protocol': 'sip' } : undefined
        if (server.upgrade(request, { headers })) return undefined
        return new Response('WebSocket only', { status: 426 })
      },
      websocket: {
        message(socket, message) {
          socket.send(message)
        },
      },
    })
  }

  get port(): number {
    return this.server.port!
  }

  stop(): void {
    this.server.stop(true)
  }
}
