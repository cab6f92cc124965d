/** The shipped unit must pass `systemd-analyze verify` with the binary where ExecStart expects it. */
import { expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BINARY } from './server-process'

const UNIT = 'systemd/softphone-backend.service'

test('systemd-analyze verify accepts the unit', () => {
  const analyze = Bun.which('systemd-analyze')
  if (!analyze) throw new Error('systemd-analyze not found: apt-get install systemd')
  const dir = mkdtempSync(join(tmpdir(), 'softphone-unit-'))
  try {
    const unit = readFileSync(UNIT, 'utf8')
    expect(unit).toContain('ExecStart=/usr/local/bin/softphone-backend serve')
    const path = join(dir, 'softphone-backend.service')
    writeFileSync(path, unit.replaceAll('/usr/local/bin/softphone-backend', BINARY))
    const result = Bun.spawnSync([analyze, 'verify', path], { stderr: 'pipe', stdout: 'pipe' })
    expect({ exitCode: result.exitCode, stderr: result.stderr.toString() }).toEqual({ exitCode: 0, stderr: '' })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('systemd-analyze security rates the unit 2.0 or lower ("OK")', () => {
  const analyze = Bun.which('systemd-analyze')
  if (!analyze) throw new Error('systemd-analyze not found: apt-get install systemd')
  const result = Bun.spawnSync([analyze, 'security', '--offline=yes', '--no-pager', UNIT], { stderr: 'pipe', stdout: 'pipe' })
  const output = result.stdout.toString() + result.stderr.toString()
  const overall = /Overall exposure level for softphone-backend\.service: (\d+\.\d) (\w+)/.exec(output)
  if (!overall) throw new Error(`no overall exposure level in: ${output}`)
  expect(Number(overall[1])).toBeLessThanOrEqual(2.0)
  expect(overall[2]).toBe('OK')
})

test('the unit carries the hardening README "Build and install by hand" describes', () => {
  const unit = readFileSync(UNIT, 'utf8')
  for (const line of [
    'ProtectSystem=strict',
    'StateDirectory=softphone-backend',
    'LogsDirectory=softphone-backend',
    'NoNewPrivileges=yes',
    'CapabilityBoundingSet=\n',
    'SystemCallFilter=@system-service',
    'MemoryMax=',
    'Environment=NODE_ENV=production',
    'RestartPreventExitStatus=64 69 73 78',
  ]) {
    expect(unit).toContain(line)
  }
  expect(unit).not.toMatch(/^LimitAS=/m)
})
