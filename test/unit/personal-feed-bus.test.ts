/** README "Several nodes": snapshots travel on the shared channels through the bus; an outage is said once. */
import { expect, test } from 'bun:test'
import type { AccessGuard } from '../../src/auth/access-guard'
import type { PresenceBus } from '../../src/presence/bus'
import { messageOf, type Channel } from '../../src/presence/channel'
import { channelSpecs, PresenceHub } from '../../src/presence/hub'
import { PersonalFeed } from '../../src/presence/personal/personal-feed'
import { SnapshotStamper } from '../../src/presence/snapshot'
import { ManualClock } from '../helpers'

test('a snapshot reaches the feed only through its channel; a bus that fails is logged once per outage', async () => {
  const clock = new ManualClock()
  const hub = new PresenceHub({ channels: channelSpecs([]), maxPerUser: 10, sweepMs: 60_000 }, {} as AccessGuard, clock)
  let failing = true
  const published: string[] = []
  const bus: PresenceBus = {
    async publish(channel: Channel, body: string, contentType: string) {
      if (failing) throw new Error('redis unreachable')
      published.push(channel.name)
      // As another node would: the message comes back through the channel with an id from elsewhere.
      const message = messageOf({ time: 1_800_000_000, tag: published.length }, contentType, body)
      channel.accept(message)
      return message
    },
  }
  const logs: string[] = []
  const directory = { findByUsername: (name: string) => ({ id: 1, username: name, displayName: name, role: 'user' as const, disabled: false, mobile: '' }) }
  const feed = new PersonalFeed({ hub, clock, directory, rules: { states: 'all', calls: 'own', groups: [] }, legacy: true, bus, log: (line) => logs.push(line) })
  const stamper = new SnapshotStamper(clock)
  const snapshot = () => stamper.stamp<'users-state'>({ states: { '201': { name: 'Alice', state: 'Idle', channels: {} } } })

  feed.full('users-state', snapshot())
  feed.full('users-state', snapshot())
  await Bun.sleep(0)
  expect(logs).toEqual(['presence: snapshots not published until the store is back: redis unreachable'])
  expect(feed.snapshotFor('users-state', '201')).toBeNull()

  failing = false
  feed.full('users-state', snapshot())
  await Bun.sleep(0)
  expect(published).toEqual(['users-state'])
  expect(hub.channel('users-state')!.last()!.idText).toBe('1800000000:1')
  expect(feed.snapshotFor('users-state', '201')).toMatchObject({ states: { '201': { state: 'Idle' } } })

  failing = true
  feed.full('users-state', snapshot())
  await Bun.sleep(0)
  expect(logs).toHaveLength(2)
  hub.shutdown()
})
