/**
 * With `metrics_port`, `/metrics` gets a listener of its own on 127.0.0.1 (README "Metrics"), and
 * the main one answers 404 for it. Other paths there get the usual 404 envelope.
 */
import { Elysia } from 'elysia'
import type { ServerControls } from '../app'
import type { Clock } from '../clock'
import { httpPlugin, RouteIndex } from '../http/http-plugin'
import type { Metrics } from './metrics'
import { metricsRoutes } from './metrics-routes'

export const METRICS_HOST = '127.0.0.1'

export function listenMetrics({ clock, metrics, port }: { clock: Clock; metrics: Metrics; port: number }) {
  const routes = new RouteIndex()
  let server: ServerControls | null = null
  const peerOf = (request: Request): string | undefined => server?.requestIP(request)?.address
  const app = new Elysia().use(httpPlugin({ clock, routes })).use(metricsRoutes({ clock, metrics, peerOf }))
  routes.load(app.routes)
  app.listen({ hostname: METRICS_HOST, port, reusePort: false })
  server = app.server
  return app
}
