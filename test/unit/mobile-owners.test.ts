/** Mobile legs find their user through the directory's `mobile` field (README "Presence snapshots, schema version 2"). */
import { expect, test } from 'bun:test'
import type { DirectoryUser } from '../../src/directory/directory'
import { mobileOwners } from '../../src/pbx/mobile-owners'
import { ManualClock } from '../helpers'

const user = (username: string, mobile: string, disabled = false): DirectoryUser => ({ id: Number(username), username, displayName: username, role: 'user', mobile, disabled })

test('a dialed number ending with a mobile is its user; prefixes and punctuation do not matter; short or disabled mobiles match nothing', () => {
  const users = [user('201', '9161234567'), user('202', '1234'), user('203', '9169999999', true), user('204', '')]
  const ownerOf = mobileOwners(() => users, new ManualClock())
  expect(['89161234567', '+7 (916) 123-45-67', '9161234567', '79161234568', '1234', '81234', '9169999999', ''].map(ownerOf)).toEqual([
    '201',
    '201',
    '201',
    null,
    null,
    null,
    null,
    null,
  ])
})

test('the directory is listed again after 30 s, not per lookup', () => {
  const users = [user('201', '9161234567')]
  let listed = 0
  const clock = new ManualClock()
  const ownerOf = mobileOwners(() => {
    listed++
    return users
  }, clock)
  ownerOf('89161234567')
  users[0] = user('201', '9160000000')
  expect(ownerOf('89161234567')).toBe('201')
  expect(listed).toBe(1)
  clock.advance(31)
  expect(ownerOf('89161234567')).toBeNull()
  expect(ownerOf('89160000000')).toBe('201')
  expect(listed).toBe(2)
})
