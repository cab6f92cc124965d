/**
 * The AMI engine's sink when several nodes watch one PBX (README "Several nodes"): every node's
 * engine follows AMI, but only the holder of the PBX's producer lock (producer-lock.ts) publishes.
 * The latest snapshot of each kind is kept, so a node that becomes the holder publishes at once
 * instead of waiting for the next change.
 */
import type { ProducerLock } from './producer-lock'
import type { SnapshotKind, SnapshotOf, SnapshotSink } from './snapshot'

export function producerSink(target: SnapshotSink, lock: Pick<ProducerLock, 'isLeader' | 'onChange'>): SnapshotSink {
  const latest = new Map<SnapshotKind, SnapshotOf<SnapshotKind>>()
  lock.onChange((leader) => {
    if (leader) for (const [kind, snapshot] of latest) target.full(kind, snapshot)
  })
  return {
    full(kind, snapshot) {
      latest.set(kind, snapshot)
      if (lock.isLeader()) target.full(kind, snapshot)
    },
  }
}
