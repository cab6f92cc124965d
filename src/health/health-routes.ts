import { Elysia } from 'elysia'
import { unixSeconds, type Clock } from '../clock'

export function healthRoutes({ clock }: { clock: Clock }) {
  return new Elysia({ name: 'health-routes' }).get('/health', () => ({
    success: true,
    status: 'ok',
    timestamp: unixSeconds(clock),
  }))
}
