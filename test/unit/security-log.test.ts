import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SecurityLog } from '../../src/security-log/security-log'
import { ManualClock } from '../helpers'

let dir: string
let clock: ManualClock
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'softphone-log-'))
  clock = new ManualClock()
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

const lines = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean)

describe('security log', () => {
  test('writes one JSON object per line with ts first, file mode 0640', () => {
    const path = join(dir, 'log', 'security.log')
    const log = new SecurityLog(path, clock)
    log.record({ event: 'AUTH_FAILED', user: '201', ip: '10.0.0.5', method: 'password', reason: 'invalid credentials', ua: 'Phone/1' })
    log.close()
    expect(statSync(path).mode & 0o777).toBe(0o640)
    expect(lines(path)).toEqual([
      '{"ts":"2026-11-23T12:00:00.000Z","event":"AUTH_FAILED","ip":"10.0.0.5","user":"201","method":"password","reason":"invalid credentials","ua":"Phone/1"}',
    ])
  })

  test('operator events carry the Unix user and SUDO_USER last, after the fields fail2ban reads', () => {
    const path = join(dir, 'security.log')
    const log = new SecurityLog(path, clock)
    log.record({ event: 'USER_PASSWORD_CHANGED', user: '201', operator: 'softphone-backend', sudo_user: 'alice' })
    log.close()
    expect(lines(path)).toEqual([
      '{"ts":"2026-11-23T12:00:00.000Z","event":"USER_PASSWORD_CHANGED","user":"201","operator":"softphone-backend","sudo_user":"alice"}',
    ])
  })

  test('admin API events name the actor after the fields fail2ban reads', () => {
    const path = join(dir, 'security.log')
    const log = new SecurityLog(path, clock)
    log.record({ event: 'USER_UPDATED', user: '201', ip: '10.0.0.5', reason: 'role user->admin', ua: 'curl/8', actor: 'boss' })
    log.close()
    expect(lines(path)).toEqual([
      '{"ts":"2026-11-23T12:00:00.000Z","event":"USER_UPDATED","ip":"10.0.0.5","user":"201","reason":"role user->admin","ua":"curl/8","actor":"boss"}',
    ])
  })

  test('a note on the address comes right after it, before any client-controlled text', () => {
    const path = join(dir, 'security.log')
    const log = new SecurityLog(path, clock)
    log.record({ event: 'AUTH_FAILED', user: '201', ip: '127.0.0.1', ipNote: 'invalid X-Real-IP', method: 'password' })
    log.close()
    expect(lines(path)).toEqual([
      '{"ts":"2026-11-23T12:00:00.000Z","event":"AUTH_FAILED","ip":"127.0.0.1","ip_note":"invalid X-Real-IP","user":"201","method":"password"}',
    ])
  })

  test('newlines and control characters stay inside one line; long fields are truncated', () => {
    const path = join(dir, 'security.log')
    const log = new SecurityLog(path, clock)
    log.record({ event: 'AUTH_FAILED', user: `201\n{"event":"AUTH_SUCCESS"}\r\u0000\u001b[31m${'x'.repeat(100)}`, ua: 'a\nb'.repeat(200) })
    log.close()
    const written = lines(path)
    expect(written).toHaveLength(1)
    const event = JSON.parse(written[0]!)
    expect(event.event).toBe('AUTH_FAILED')
    expect(event.user).toHaveLength(64)
    expect(event.user.startsWith('201\n{"event"')).toBe(true)
    expect(event.ua).toHaveLength(200)
  })

  test('rotates by size, keeping the configured number of files', () => {
    const path = join(dir, 'security.log')
    const log = new SecurityLog(path, clock, { maxBytes: 400, keep: 2 })
    for (let i = 0; i < 20; i++) log.record({ event: 'AUTH_FAILED', user: `user-${i}`, ip: '10.0.0.1', reason: 'invalid credentials' })
    log.close()
    const files = [path, `${path}.1`, `${path}.2`]
    for (const file of files) {
      expect(statSync(file).size).toBeLessThanOrEqual(400)
      expect(lines(file).every((line) => JSON.parse(line).event === 'AUTH_FAILED')).toBe(true)
    }
    expect(() => statSync(`${path}.3`)).toThrow()
    const newest = lines(path).map((line) => JSON.parse(line).user)
    expect(newest.at(-1)).toBe('user-19')
    // Nothing lost between the live file and .1: their users run consecutively.
    const recent = [...lines(`${path}.1`), ...lines(path)].map((line) => Number(JSON.parse(line).user.slice(5)))
    expect(recent).toEqual(Array.from({ length: recent.length }, (_, i) => 20 - recent.length + i))
  })

  test('reopen() follows logrotate: after a rename, new events go to a new file at the path', () => {
    const path = join(dir, 'security.log')
    const log = new SecurityLog(path, clock)
    log.record({ event: 'STARTUP' })
    renameSync(path, `${path}.1`)
    log.record({ event: 'AUTH_SUCCESS', user: '201' })
    log.reopen()
    log.record({ event: 'SHUTDOWN' })
    log.close()
    expect(lines(`${path}.1`).map((line) => JSON.parse(line).event)).toEqual(['STARTUP', 'AUTH_SUCCESS'])
    expect(lines(path).map((line) => JSON.parse(line).event)).toEqual(['SHUTDOWN'])
  })

  test('an unwritable log keeps the service going and is reported at most once a minute', () => {
    // A directory where the file should be: opening it for append fails, even for root.
    const path = join(dir, 'security.log')
    mkdirSync(path)
    const reports: string[] = []
    const log = new SecurityLog(path, clock, undefined, (message) => reports.push(message))
    for (let i = 0; i < 5; i++) log.record({ event: 'AUTH_FAILED', user: '201' })
    expect(reports).toHaveLength(1)
    expect(reports[0]).toContain('EISDIR')
    clock.advance(59)
    log.record({ event: 'AUTH_FAILED' })
    log.flush()
    expect(reports).toHaveLength(1)
    clock.advance(2)
    log.record({ event: 'AUTH_FAILED' })
    log.flush()
    expect(reports).toHaveLength(2)
    // Once the path is writable again, reopen() resumes logging.
    rmSync(path, { recursive: true })
    log.reopen()
    log.record({ event: 'STARTUP' })
    log.close()
    expect(lines(path)).toHaveLength(1)
  })
})

describe('writes per turn', () => {
  test('lines recorded in one turn reach the file, in order, before anything awaiting after them resumes', async () => {
    const path = join(dir, 'security.log')
    const log = new SecurityLog(path, clock)
    for (let i = 0; i < 3; i++) log.record({ event: 'AUTH_SUCCESS', user: `20${i}` })
    expect(readFileSync(path, 'utf8')).toBe('')
    await Promise.resolve()
    expect(lines(path).map((line) => JSON.parse(line).user)).toEqual(['200', '201', '202'])
    log.close()
  })

  test('close writes what is still pending', () => {
    const path = join(dir, 'security.log')
    const log = new SecurityLog(path, clock)
    log.record({ event: 'SHUTDOWN' })
    log.close()
    expect(lines(path).map((line) => JSON.parse(line).event)).toEqual(['SHUTDOWN'])
  })
})

describe('request-rate events are coalesced', () => {
  test('identical MEDIA_ACCESS_DENIED and LOGIN_THROTTLED events are written once per 10 s, then with a count', () => {
    const path = join(dir, 'security.log')
    const log = new SecurityLog(path, clock)
    for (let i = 0; i < 50; i++) log.record({ event: 'MEDIA_ACCESS_DENIED', ip: '10.0.0.1', reason: 'no token' })
    log.record({ event: 'MEDIA_ACCESS_DENIED', ip: '10.0.0.2', reason: 'no token' })
    for (let i = 0; i < 3; i++) log.record({ event: 'LOGIN_THROTTLED', ip: '10.0.0.1', user: '201' })
    for (let i = 0; i < 3; i++) log.record({ event: 'AUTH_FAILED', ip: '10.0.0.1', user: '201' })
    clock.advance(10)
    log.record({ event: 'MEDIA_ACCESS_DENIED', ip: '10.0.0.1', reason: 'no token' })
    log.close()
    const events = lines(path).map((line) => JSON.parse(line))
    expect(events.map((event) => [event.event, event.ip, event.repeated])).toEqual([
      ['MEDIA_ACCESS_DENIED', '10.0.0.1', undefined],
      ['MEDIA_ACCESS_DENIED', '10.0.0.2', undefined],
      ['LOGIN_THROTTLED', '10.0.0.1', undefined],
      ['AUTH_FAILED', '10.0.0.1', undefined],
      ['AUTH_FAILED', '10.0.0.1', undefined],
      ['AUTH_FAILED', '10.0.0.1', undefined],
      ['MEDIA_ACCESS_DENIED', '10.0.0.1', 49],
    ])
  })
})
