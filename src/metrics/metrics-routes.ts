/**
 * `GET /metrics` (README "Metrics"), outside the base path: only for a loopback peer that came
 * without proxy headers, the same rule as `pub/`, so nothing nginx forwards ever reads it. With
 * `metrics_port` it is served by a listener of its own on 127.0.0.1 instead (serve.ts).
 */
import { Elysia, ElysiaCustomStatusResponse } from 'elysia'
import { unixSeconds, type Clock } from '../clock'
import { ERRORS, errorBody } from '../http/errors'
import { isLocalPublisher } from '../presence/publisher'
import { EXPOSITION_CONTENT_TYPE } from './exposition'
import type { Metrics } from './metrics'

export const METRICS_PATH = '/metrics'

export function metricsRoutes({ clock, metrics, peerOf }: { clock: Clock; metrics: Metrics; peerOf: (request: Request) => string | undefined }) {
  return new Elysia({ name: 'metrics-routes' }).get(METRICS_PATH, ({ request, set, status }) => {
    if (!isLocalPublisher(peerOf(request), request.headers)) return status(403, errorBody(ERRORS.metricsForbidden, unixSeconds(clock)))
    set.headers['content-type'] = EXPOSITION_CONTENT_TYPE
    return metrics.text()
  })
}

/** What the request hooks keep on Elysia's per-request context. */
interface Timed {
  route?: string
  metricsStartedAt: number
}

/**
 * Counts every request by route pattern and status, and times the routes in TIMED_ROUTES. The two
 * hooks add a timestamp and a counter bump per request and allocate nothing (bench/metrics.ts);
 * errors are counted by the http plugin's error handler, which sets their status.
 */
export function metricsHooks(metrics: Metrics) {
  return new Elysia({ name: 'metrics-hooks' })
    .onRequest((context) => {
      ;(context as unknown as Timed).metricsStartedAt = performance.now()
    })
    .onAfterHandle({ as: 'global' }, (context) => {
      const { route, metricsStartedAt } = context as unknown as Timed
      metrics.requestDone(route, statusOf(context.responseValue, context.set.status), metricsStartedAt)
    })
}

/** A handler that returned `status(403, …)` has not set `set.status` yet. */
function statusOf(response: unknown, status: number | string | undefined): number {
  if (response instanceof ElysiaCustomStatusResponse) return response.code as number
  return typeof status === 'number' ? status : 200
}

/** The request's start, as the hooks noted it, for the error handler. */
export function metricsStartOf(context: object): number | undefined {
  return (context as Timed).metricsStartedAt
}
