/**
 * What each kind of credential costs on check-media-access, the hottest route (README "API keys", "External
 * tokens"): the compiled binary with our own access token, a self-made API key, and an issuer's RS256, ES256 and
 * EdDSA token, on one server configured with all three keys. The server is pinned to CPU 0 and wrk to CPU 1 when possible; each round measures every token, rotating the
 * order, and each ratio is other/own req/s within its round. An API key is checked from memory, its last use
 * noted for the next batched write. A repeated external token is answered from the
 * verified cache, so this is the steady state of an app reusing its token; the first use of each token costs one
 * asymmetric verification, measured in process as well.
 *   node_modules/.bin/bun bench/credentials.ts [--duration 5] [--rounds 3] [--json]
 */
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { SignJWT } from 'jose'
import { ExternalJwtIssuer } from '../src/auth/external-jwt'
import { parseIssuerKeys, type ExternalAlgorithm } from '../src/auth/external-jwt-keys'
import { ServerProcess } from '../test/binary/server-process'
import { ManualClock } from '../test/helpers'
import { ALGORITHMS, AUDIENCE, ISSUER, keyPair, settingsFor, type KeyPair } from '../test/external-jwt-fixture'
import { CLIENT_CPU as WRK_CPU, cpuMs, get, median, onExit, pinningUnavailable, pinProcess, positiveInt, printTable, progress, requireBinary, runBench, runWrk, SERVER_CPU, TASKSET, WRK } from './common'

const USER = { name: '201', password: 'bench-password-201' }
const CONNECTIONS = 64
const WARMUP_SECONDS = 1
const FIRST_USES = 2000
const WATCHDOG_MS = 20 * 60 * 1000

const { values: options } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
})
const duration = positiveInt('--duration', options.duration)
const rounds = positiveInt('--rounds', options.rounds)

await runBench(main, { watchdogMs: WATCHDOG_MS })

type Target = 'own' | 'api_key' | ExternalAlgorithm
type Other = Exclude<Target, 'own'>

interface Measured {
  rps: number
  /** Server CPU time (user + system) per request, µs. */
  cpuUs: number
}

async function main(): Promise<void> {
  if (!existsSync(WRK)) throw new Error(`${WRK} not found; install it with: apt-get install wrk`)
  requireBinary()
  const pairs = Object.fromEntries(ALGORITHMS.map((algorithm) => [algorithm, keyPair(algorithm)])) as Record<ExternalAlgorithm, KeyPair>
  progress(`in process: ${FIRST_USES} first uses per algorithm (one verification each)`)
  const firstUseUs = await firstUseCost(pairs)
  const unpinnedWhy = pinningUnavailable()
  if (unpinnedWhy) console.error(`warning: running unpinned, ${unpinnedWhy}; ratios will be noisier`)
  const { pid, url, tokens } = await startServer(pairs, unpinnedWhy === undefined)
  const wrkPrefix = unpinnedWhy ? [] : [TASKSET, '-c', String(WRK_CPU)]
  const targets: Target[] = ['own', 'api_key', ...ALGORITHMS]
  const others: Other[] = ['api_key', ...ALGORITHMS]

  const perRound: Array<Record<Target, Measured>> = []
  for (let round = 0; round < rounds; round++) {
    const measured = {} as Record<Target, Measured>
    for (const target of [...targets.slice(round % targets.length), ...targets.slice(0, round % targets.length)]) {
      progress(`round ${round + 1}/${rounds}: ${target} token (${WARMUP_SECONDS}s warm-up + ${duration}s)`)
      const args = ['-t1', `-c${CONNECTIONS}`, '-H', credentialHeader(target, tokens[target]), url]
      await runWrk(target, wrkPrefix, args, WARMUP_SECONDS)
      const cpuBefore = cpuMs(pid)
      const { rps, out } = await runWrk(target, wrkPrefix, args, duration)
      const requests = Number(/(\d+) requests in/.exec(out)?.[1])
      measured[target] = { rps, cpuUs: ((cpuMs(pid) - cpuBefore) * 1000) / requests }
    }
    perRound.push(measured)
  }

  const ratio = (other: Other) => perRound.map((round) => (round[other].rps / round.own.rps) * 100)
  const cpuRatio = (other: Other) => perRound.map((round) => (round.own.cpuUs / round[other].cpuUs) * 100)
  const range = (values: number[]) => `${median(values).toFixed(1)} % (${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)} %)`
  const cpu = (target: Target) => median(perRound.map((round) => round[target].cpuUs)).toFixed(1)
  const pinning = unpinnedWhy ? `unpinned (${unpinnedWhy})` : `server pinned to CPU ${SERVER_CPU}, wrk to CPU ${WRK_CPU}`
  if (options.json) {
    console.log(JSON.stringify({ settings: { connections: CONNECTIONS, durationSeconds: duration, rounds, pinning, bun: Bun.version, pid }, perRound, firstUseUs }, null, 2))
    return
  }
  console.log(`\ncheck-media-access, wrk -t1 -c${CONNECTIONS} -d${duration}s, ${rounds} rounds; ${pinning}`)
  printTable([
    ['credential', 'req/s', 'req/s of own\'s: median (range)', 'server CPU µs/req', 'own/other CPU: median (range)', 'first use µs (in process)'],
    ['own HS256 token', median(perRound.map((round) => round.own.rps)).toFixed(0), '100 %', cpu('own'), '100 %', '-'],
    ...others.map((other) => [
      other === 'api_key' ? 'API key (x-api-key)' : `external ${other}`,
      median(perRound.map((round) => round[other].rps)).toFixed(0),
      range(ratio(other)),
      cpu(other),
      range(cpuRatio(other)),
      other === 'api_key' ? '-' : firstUseUs[other].toFixed(0),
    ]),
  ])
  console.log('own/other CPU is the req/s share the other credential leaves when the server is CPU-bound; steadier than req/s on a busy machine')
}

async function startServer(pairs: Record<ExternalAlgorithm, KeyPair>, pin: boolean) {
  const server = new ServerProcess()
  onExit(() => server.cleanup())
  const keyFile = join(server.dataDir, 'issuer.pem')
  writeFileSync(keyFile, ALGORITHMS.map((algorithm) => pairs[algorithm].pem).join('\n'))
  await server.addUser(USER.name, USER.password)
  await server.start(['--external-jwt-issuer', ISSUER, '--external-jwt-audience', AUDIENCE, '--external-jwt-key-file', keyFile])
  if (pin) pinProcess(server.pid!, SERVER_CPU)
  const url = `${server.baseUrl}/check-media-access`
  const tokens = { own: (await server.login(USER.name, USER.password)).access_token } as Record<Target, string>
  tokens.api_key = await selfMadeKey(server.baseUrl, tokens.own)
  for (const algorithm of ALGORITHMS) tokens[algorithm] = await sign(pairs[algorithm], algorithm, Math.floor(Date.now() / 1000), 'bench')
  for (const [target, token] of Object.entries(tokens)) {
    const [name, value] = credentialHeader(target as Target, token).split(': ') as [string, string]
    const check = await get(url, { [name]: value })
    if (check.status !== 200) throw new Error(`${target}: check-media-access answered ${check.status}: ${check.text}`)
  }
  return { pid: server.pid!, url, tokens }
}

function credentialHeader(target: Target, credential: string): string {
  return target === 'api_key' ? `x-api-key: ${credential}` : `Authorization: Bearer ${credential}`
}

/** A key the user makes for itself, bound to loopback, where wrk connects from. */
async function selfMadeKey(baseUrl: string, accessToken: string): Promise<string> {
  const response = await fetch(`${baseUrl}/accounts/me/api_key`, { method: 'POST', headers: { authorization: `Bearer ${accessToken}` } })
  if (response.status !== 200) throw new Error(`accounts/me/api_key answered ${response.status}: ${await response.text()}`)
  return ((await response.json()) as { api_key: string }).api_key
}

function sign(pair: KeyPair, algorithm: ExternalAlgorithm, now: number, jti: string): Promise<string> {
  return new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: USER.name, iat: now, exp: now + 3600, jti }).setProtectedHeader({ alg: algorithm, typ: 'JWT' }).sign(pair.privateKey)
}

/** µs per first use of a token (screening, one verification, the claims), in this process, with the user found. */
async function firstUseCost(pairs: Record<ExternalAlgorithm, KeyPair>): Promise<Record<ExternalAlgorithm, number>> {
  const clock = new ManualClock()
  const user = { id: 1, username: USER.name, role: 'user' as const, displayName: '', mobile: '', disabled: false }
  const directory = { findByUsername: (name: string) => (name === USER.name ? user : null) } as unknown as ConstructorParameters<typeof ExternalJwtIssuer>[2]
  const issuer = new ExternalJwtIssuer(settingsFor(), parseIssuerKeys(ALGORITHMS.map((algorithm) => pairs[algorithm].pem).join('\n')), directory, clock)
  const result = {} as Record<ExternalAlgorithm, number>
  for (const algorithm of ALGORITHMS) {
    const tokens = await Promise.all(Array.from({ length: FIRST_USES }, (_, i) => sign(pairs[algorithm], algorithm, clock.seconds, `t${i}`)))
    const started = performance.now()
    for (const token of tokens) {
      const attempt = await issuer.authenticate(token)
      if (attempt.kind !== 'ok') throw new Error(`${algorithm}: first use refused`)
    }
    result[algorithm] = ((performance.now() - started) * 1000) / FIRST_USES
  }
  return result
}
