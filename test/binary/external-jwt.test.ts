/**
 * The binary with an external JWT issuer (README "External tokens"): a config file naming the key
 * file, a profile call with the issuer's token, a bad token, a key rollover on SIGHUP, and a
 * missing key file that stops the start.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT } from 'jose'
import { keyPair, type KeyPair } from '../external-jwt-fixture'
import { runCli, ServerProcess } from './server-process'

setDefaultTimeout(30_000)

const ISSUER = 'https://idp.example.test/realms/pbx'
const AUDIENCE = 'softphone-backend'

let scratch: string
let keyFile: string
let server: ServerProcess
let issuerKey: KeyPair

const configFile = (keyPath: string) => {
  const path = join(scratch, `config-${Math.random().toString(36).slice(2)}.toml`)
  writeFileSync(path, `external_jwt_issuer = "${ISSUER}"\nexternal_jwt_audience = "${AUDIENCE}"\nexternal_jwt_key_file = "${keyPath}"\nexternal_jwt_algorithms = ["ES256"]\n`)
  return path
}

const tokenFrom = (pair: KeyPair, claims: Record<string, unknown> = {}) =>
  new SignJWT({ sub: '201', iss: ISSUER, aud: AUDIENCE, ...claims }).setProtectedHeader({ alg: 'ES256', typ: 'JWT' }).setIssuedAt().setExpirationTime('5m').sign(pair.privateKey)

/** Lines after the listening line arrive on their own schedule. */
async function outputContains(text: string): Promise<string> {
  const deadline = Date.now() + 5000
  while (!server.stdout.includes(text) && Date.now() < deadline) await Bun.sleep(20)
  return server.stdout
}

const profile = (token: string) => fetch(`${server.baseUrl}/profile`, { headers: { authorization: `Bearer ${token}` } })

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'softphone-extjwt-bin-'))
  issuerKey = keyPair('ES256')
  keyFile = join(scratch, 'issuer.pem')
  writeFileSync(keyFile, issuerKey.pem)
  server = new ServerProcess()
  await server.addUser('201', 'Secret-201')
  await server.start(['--config', configFile(keyFile)])
})
afterAll(async () => {
  await server.cleanup()
  rmSync(scratch, { recursive: true, force: true })
})

test('the start-up output says external JWTs are on', async () => {
  const line = `external JWTs: issuer ${ISSUER}, 1 key(s) from ${keyFile}`
  expect(await outputContains(line)).toContain(line)
})

test('a profile call with the issuer\'s token: 200 for the user of sub', async () => {
  const response = await profile(await tokenFrom(issuerKey))
  expect(response.status).toBe(200)
  expect(((await response.json()) as { user: { username: string } }).user.username).toBe('201')
})

test('a bad token: 401 invalid_token and the envelope', async () => {
  const stranger = keyPair('ES256')
  for (const token of [await tokenFrom(stranger), await tokenFrom(issuerKey, { aud: 'other' })]) {
    const response = await profile(token)
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="softphone", error="invalid_token"')
    expect(await response.json()).toMatchObject({ success: false, code: 'invalid_token' })
  }
})

test('SIGHUP reads the key file again: the old key\'s tokens stop, the new key\'s start', async () => {
  const old = await tokenFrom(issuerKey)
  expect((await profile(old)).status).toBe(200)
  const next = keyPair('ES256')
  writeFileSync(keyFile, next.pem)
  server.signal('SIGHUP')
  const line = `external JWT keys reloaded: 1 from ${keyFile}`
  expect(await outputContains(line)).toContain(line)
  expect((await profile(old)).status).toBe(401)
  expect((await profile(await tokenFrom(next))).status).toBe(200)
})

test('a missing key file stops the start: one line, exit 78', async () => {
  const missing = join(scratch, 'nowhere.pem')
  const result = await runCli(['serve', '--config', configFile(missing), '--data-dir', join(scratch, 'data'), '--port', '0'])
  expect(result.exitCode).toBe(78)
  expect(result.stderr).toBe(`softphone-backend: config error: external_jwt_key_file ${missing} does not exist\n`)
  expect(result.stdout).not.toContain('listening')
})

test('config check reads the key file as serve does', async () => {
  const ok = await runCli(['config', 'check', '--config', configFile(keyFile), '--data-dir', join(scratch, 'data')])
  expect(ok.exitCode).toBe(0)
  expect(ok.stdout).toContain(`\nexternal JWTs: ${keyFile} ok, 1 key(s) (ES256)\n`)
  const missing = join(scratch, 'nowhere.pem')
  const refused = await runCli(['config', 'check', '--config', configFile(missing), '--data-dir', join(scratch, 'data')])
  expect(refused.exitCode).toBe(78)
  expect(refused.stderr).toBe(`softphone-backend: config error: external_jwt_key_file ${missing} does not exist\n`)
})

test('an HMAC algorithm in the config stops the start: exit 78', async () => {
  const path = join(scratch, 'hmac.toml')
  writeFileSync(path, `external_jwt_issuer = "${ISSUER}"\nexternal_jwt_audience = "${AUDIENCE}"\nexternal_jwt_key_file = "${keyFile}"\nexternal_jwt_algorithms = ["HS256"]\n`)
  const result = await runCli(['serve', '--config', path, '--data-dir', join(scratch, 'data'), '--port', '0'])
  expect(result.exitCode).toBe(78)
  expect(result.stderr).toContain('external_jwt_algorithms has HS256: HMAC algorithms are refused')
})
