/**
 * A real Digest client against the compiled binary (README "HTTP Digest"): curl --digest, with the
 * embedded directory (HA1 stored for `digest_realm`) and with MikoPBX's (HA1 from the SIP secret).
 * curl answers the last challenge of Bun's single `WWW-Authenticate` field, MD5; offered SHA-256
 * alone (a proxy here drops the MD5 challenge), it answers SHA-256.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildMikoPbxFixture, FIXTURE_PEERS } from '../mikopbx-fixture'
import { BASE, ServerProcess } from './server-process'

setDefaultTimeout(30_000)

const REALM = 'pbx.example.org'

interface CurlResult {
  status: number
  body: string
  /** The `Authorization` curl sent with its answer, from its verbose output. */
  answered: string
}

async function curlDigest(url: string, user: string, password: string, from: string): Promise<CurlResult> {
  const curl = Bun.spawn(['curl', '-s', '-v', '--digest', '-u', `${user}:${password}`, '-H', `From: ${from}`, '-w', '\n%{http_code}', url], { stdout: 'pipe', stderr: 'pipe' })
  const [stdout, stderr] = await Promise.all([new Response(curl.stdout).text(), new Response(curl.stderr).text(), curl.exited])
  const lines = stdout.split('\n')
  const status = Number(lines.pop())
  const answered = stderr.split('\n').find((line) => /^> Authorization: Digest /i.test(line)) ?? ''
  return { status, body: lines.join('\n'), answered }
}

/** Forwards to `target` and keeps only the first (SHA-256) Digest challenge of a 401. */
function sha256OnlyProxy(target: string) {
  return Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(request) {
      const url = new URL(request.url)
      const headers = new Headers(request.headers)
      headers.delete('host')
      const upstream = await fetch(`${target}${url.pathname}${url.search}`, { method: request.method, headers })
      const out = new Headers(upstream.headers)
      const challenge = out.get('www-authenticate')
      if (challenge) out.set('www-authenticate', challenge.split(/, (?=Digest )/)[0]!)
      out.delete('content-encoding')
      out.delete('content-length')
      return new Response(await upstream.arrayBuffer(), { status: upstream.status, headers: out })
    },
  })
}

describe.skipIf(!Bun.which('curl'))('curl --digest against the binary', () => {
  describe('embedded directory, digest_realm set', () => {
    let server: ServerProcess
    let proxy: ReturnType<typeof Bun.serve> | undefined

    beforeAll(async () => {
      server = new ServerProcess()
      await server.addUser('201', 'Digest-pass-201', ['--name', 'Alice', '--digest-realm', REALM])
      await server.start(['--digest-realm', REALM])
      proxy = sha256OnlyProxy(server.url)
    })
    afterAll(async () => {
      proxy?.stop(true)
      await server.cleanup()
    })

    test('both challenges offered: curl answers MD5 and gets the profile', async () => {
      const result = await curlDigest(`${server.baseUrl}/profile`, '201', 'Digest-pass-201', 'sip:201@pbx')
      expect(result.status).toBe(200)
      expect(JSON.parse(result.body)).toMatchObject({ success: true, user: { username: '201', display_name: 'Alice' } })
      expect(result.answered).toContain(`realm="${REALM}"`)
      expect(result.answered).toMatch(/algorithm=MD5/i)
    })

    test('SHA-256 offered alone: curl answers SHA-256 and gets the profile', async () => {
      const result = await curlDigest(`http://127.0.0.1:${proxy!.port}${BASE}/profile`, '201', 'Digest-pass-201', 'sip:201@pbx')
      expect(result.status).toBe(200)
      expect(JSON.parse(result.body)).toMatchObject({ success: true, user: { username: '201' } })
      expect(result.answered).toMatch(/algorithm=SHA-256/i)
    })

    test('a wrong password → 401 with the envelope and the AUTH_FAILED line', async () => {
      const result = await curlDigest(`${server.baseUrl}/profile`, '201', 'not-the-password', 'sip:201@pbx')
      expect(result.status).toBe(401)
      expect(JSON.parse(result.body)).toMatchObject({ success: false, error: 'Unauthorized' })
      const log = await Bun.file(join(server.dataDir, 'log', 'security.log')).text()
      expect(log).toContain('"event":"AUTH_FAILED"')
      expect(log).toContain('"method":"digest"')
    })

    test('without From, no Digest challenge: the Bearer 401', async () => {
      const response = await fetch(`${server.baseUrl}/profile`)
      expect(response.status).toBe(401)
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="softphone"')
    })
  })

  describe('MikoPBX directory', () => {
    const { alice } = FIXTURE_PEERS
    let scratch: string
    let server: ServerProcess

    beforeAll(async () => {
      scratch = mkdtempSync(join(tmpdir(), 'softphone-digest-pbx-'))
      buildMikoPbxFixture(join(scratch, 'mikopbx.db'))
      server = new ServerProcess()
      await server.start(['--directory', 'mikopbx', '--mikopbx-db', join(scratch, 'mikopbx.db')])
    })
    afterAll(async () => {
      await server.cleanup()
      rmSync(scratch, { recursive: true, force: true })
    })

    test('an extension with its SIP secret gets the profile', async () => {
      const result = await curlDigest(`${server.baseUrl}/profile`, alice.extension, alice.secret, `sip:${alice.extension}@pbx`)
      expect(result.status).toBe(200)
      expect(JSON.parse(result.body)).toMatchObject({ success: true, user: { username: alice.extension } })
      expect(result.answered).toContain('realm="softphone"')
    })

    test('a wrong secret → 401', async () => {
      const result = await curlDigest(`${server.baseUrl}/profile`, alice.extension, 'wrong-secret', `sip:${alice.extension}@pbx`)
      expect(result.status).toBe(401)
    })
  })
})
