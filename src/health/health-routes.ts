/** `health` (README "Walkthrough with curl"): the legacy fields, plus the AMI link's state (README "Live PBX state"). */
import { Elysia } from 'elysia'
import { unixSeconds, type Clock } from '../clock'
import type { PbxStateView } from '../pbx/pbx-state'

export function healthRoutes({ clock, pbx }: { clock: Clock; pbx?: PbxStateView }) {
  return new Elysia({ name: 'health-routes' }).get('/health', () => ({
    success: true,
    status: 'ok',
    timestamp: unixSeconds(clock),
    ami: pbx?.ami ?? 'off',
  }))
}
