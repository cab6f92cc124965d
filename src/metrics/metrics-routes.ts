/**
 * `GET /metrics` (README "Metrics"), outside the base path: only for a loopback peer that came
 * without proxy headers, the same rule as `pub/`, so nothing nginx forwards ever reads it. With
 * `metrics_port` it is served by a listener of its own on 127.0.0.1 instead (serve.ts).
 */
import { Elysia, ElysiaCustomStatusResponse } from 'elysia'
import { accessDetail } from '../auth/route-access'
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
  }, { detail: accessDetail('public') })
}

/**
 * Counts every request by route pattern and status, and times the routes in TIMED_ROUTES. The hooks
 * note a timestamp in a decorated field (every context has it, so its shape never changes) and bump
 * pre-bound series: nothing is allocated per request (bench/metrics.ts). The hooks never pass
 * their context to a function: Elysia then parses headers, query and cookies for every route. Errors are counted by the http plugin's error handler, which sets
 * their status; they are not timed, since the transform hook may not have run.
 */
export function metricsHooks(metrics: Metrics) {
  return new Elysia({ name: 'metrics-hooks' })
    .decorate('metricsStartedAt', 0)
    .onTransform({ as: 'global' }, (timing) => {
      timing.metricsStartedAt = performance.now()
    })
    .onAfterHandle({ as: 'global' }, ({ route, responseValue, set, metricsStartedAt }) => {
      metrics.requestDone(route, responseValue instanceof ElysiaCustomStatusResponse ? (responseValue.code as number) : statusOf(set.status), metricsStartedAt)
    })
}

/** `set.status` as a number: Elysia also accepts its name (`"Not Found"`), which no route here uses. */
const statusOf = (status: number | string | undefined): number => (typeof status === 'number' ? status : 200)
