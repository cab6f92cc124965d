import { expect, test } from 'bun:test'
import { producerSink } from '../../src/presence/producer-sink'
import type { SnapshotKind } from '../../src/presence/snapshot'
import { SnapshotStamper } from '../../src/presence/snapshot'
import { ManualClock } from '../helpers'

function fakeLock() {
  let leader = false
  const listeners: Array<(leader: boolean) => void> = []
  return {
    isLeader: () => leader,
    onChange: (listener: (leader: boolean) => void) => void listeners.push(listener),
    become(value: boolean) {
      leader = value
      for (const listener of listeners) listener(value)
    },
  }
}

test('only the lock holder publishes; a node that becomes the holder publishes its latest snapshots at once', () => {
  const stamper = new SnapshotStamper(new ManualClock())
  const published: Array<[SnapshotKind, number]> = []
  const lock = fakeLock()
  const sink = producerSink({ full: (kind, snapshot) => void published.push([kind, snapshot.sequence]) }, lock)
  sink.full('users-state', stamper.stamp<'users-state'>({ states: {} }))
  sink.full('active-calls', stamper.stamp<'active-calls'>({ calls: [] }))
  sink.full('users-state', stamper.stamp<'users-state'>({ states: {} }))
  expect(published).toEqual([])
  lock.become(true)
  expect(published).toEqual([
    ['users-state', 3],
    ['active-calls', 2],
  ])
  sink.full('active-calls', stamper.stamp<'active-calls'>({ calls: [] }))
  expect(published.at(-1)).toEqual(['active-calls', 4])
  lock.become(false)
  sink.full('active-calls', stamper.stamp<'active-calls'>({ calls: [] }))
  expect(published).toHaveLength(3)
})
